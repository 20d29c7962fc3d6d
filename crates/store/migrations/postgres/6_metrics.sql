-- What /metrics reads from the database, and the unattended budget it reports.
--
-- A consent counts the refreshes it made without the customer present (those count against
-- the bank's unattended budget) on one UTC day: unattended_used on unattended_day
-- ('YYYY-MM-DD'). A count from an earlier day is stale and means none yet today.

ALTER TABLE consents ADD COLUMN unattended_day TEXT;
ALTER TABLE consents ADD COLUMN unattended_used BIGINT NOT NULL DEFAULT 0;

-- The budget gauges: today's counts per provider, read from the index alone (status is a
-- column too, which SQLite needs to see the index as covering).
CREATE INDEX consents_unattended ON consents (unattended_day, provider_id, unattended_used, status)
    WHERE status = 'authorised';

-- The queue gauges: unsettled deliveries grouped by endpoint (to leave out disabled ones, whose
-- deliveries wait outside the queue), read from the index alone.
CREATE INDEX deliveries_queue ON deliveries (endpoint_id, next_attempt_at, status)
    WHERE status IN ('pending', 'failed', 'delivering');

-- What waits in line is found by an index of what is still unsettled. The ordering index held
-- every delivery ever made with a key, so each probe for an earlier unsettled delivery read a
-- customer's whole history; this one holds only what is pending, failed or in flight.
DROP INDEX deliveries_ordering;
CREATE INDEX deliveries_in_line ON deliveries (endpoint_id, ordering_key, event_id)
    WHERE ordering_key IS NOT NULL AND status IN ('pending', 'failed', 'delivering');

-- deliveries_queue (endpoint_id, next_attempt_at, status) already serves a limited endpoint's
-- claims and counts. This copy of it only cost every write, and without statistics PostgreSQL
-- took it for the probe above: a scan of one endpoint's whole queue per refresh.
DROP INDEX deliveries_endpoint_due;

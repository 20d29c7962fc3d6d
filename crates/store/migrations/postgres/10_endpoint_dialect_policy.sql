-- What a vendor dialect's endpoint receives and when it starts. scheduled_refreshes: a vendor
-- dialect reports refreshes a client asked for, and scheduled ones only when the endpoint opts
-- in. activation: how the endpoint starts, kept so that re-enabling it starts it the same way
-- (Tatra banka: at the next full hour); endpoints that started later than they were created
-- were created for the next hour.
ALTER TABLE webhook_endpoints ADD COLUMN scheduled_refreshes BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE webhook_endpoints ADD COLUMN activation TEXT NOT NULL DEFAULT 'immediate';
UPDATE webhook_endpoints SET activation = 'next_hour' WHERE active_from > created_at;

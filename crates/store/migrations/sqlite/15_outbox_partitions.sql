-- Per-endpoint limits. (SQLite serves one node, which holds the whole outbox: no partitions.)
ALTER TABLE webhook_endpoints ADD COLUMN rate_limit INTEGER;
ALTER TABLE webhook_endpoints ADD COLUMN max_in_flight INTEGER;

-- A limited endpoint's deliveries are claimed on their own, and counted while they wait.
CREATE INDEX deliveries_endpoint_due ON deliveries (endpoint_id, next_attempt_at)
    WHERE status IN ('pending', 'failed', 'delivering');

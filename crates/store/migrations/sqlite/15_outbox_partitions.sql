-- Per-endpoint limits. (SQLite serves one node, which holds the whole outbox: no partitions.)
ALTER TABLE webhook_endpoints ADD COLUMN rate_limit INTEGER;
ALTER TABLE webhook_endpoints ADD COLUMN max_in_flight INTEGER;

-- Many nodes, one outbox: the outbox is split by endpoint into a fixed number of partitions
-- (a function of the endpoint id, so no row carries it and no row is rewritten), each held by one node under a lease.
CREATE TABLE outbox_partitions (
    partition_no INTEGER PRIMARY KEY,
    owner TEXT,
    lease_until TIMESTAMPTZ,
    acquired_at TIMESTAMPTZ
);
INSERT INTO outbox_partitions (partition_no) SELECT generate_series(0, 63);

-- Nodes say they are alive, so that each knows its fair share of the partitions.
CREATE TABLE outbox_nodes (
    node TEXT PRIMARY KEY,
    seen_until TIMESTAMPTZ NOT NULL
);

-- A limited endpoint's deliveries are claimed on their own, and counted while they wait.
CREATE INDEX deliveries_endpoint_due ON deliveries (endpoint_id, next_attempt_at)
    WHERE status IN ('pending', 'failed', 'delivering');

-- Per-endpoint limits, enforced by the node holding the endpoint's partition.
ALTER TABLE webhook_endpoints ADD COLUMN rate_limit BIGINT;
ALTER TABLE webhook_endpoints ADD COLUMN max_in_flight BIGINT;

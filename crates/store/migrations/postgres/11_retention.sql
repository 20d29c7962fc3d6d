-- Retention (issue 17): old events, their deliveries and attempts, and the accounts and
-- transactions of ended consents are purged after a retention period.
--
-- applications.retention_days: the application's own period; NULL takes the node's
-- (--retention-days). maintenance_leases: one row per background job that must run on one
-- node at a time (the purge); a node holds it until lease_until. write_probes: /healthz
-- commits a row here to learn whether the store can still write. products_delivery:
-- deleting a delivery sets products.delivery_id to NULL, which without this index scans
-- every product for each deleted delivery.
ALTER TABLE applications ADD COLUMN retention_days BIGINT;

CREATE TABLE maintenance_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL
);

CREATE TABLE write_probes (
    id UUID PRIMARY KEY,
    filler BYTEA NOT NULL
);

CREATE INDEX products_delivery ON products (delivery_id);

-- The purge's way to the accounts of ended consents (its query repeats the predicate).
CREATE INDEX consents_ended ON consents (application_id, updated_at)
    WHERE status IN ('revoked', 'expired', 'deleted_by_user');

-- The purge deletes in small batches all the time; the default thresholds (20 % of a table
-- dead before autovacuum) let the hot tables carry a fifth of dead rows and their indexes
-- grow with them. At 2 % dead rows are reclaimed soon after each batch window, so freed
-- space is reused by new rows instead of the tables growing.
ALTER TABLE events SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE delivery_attempts SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE transactions SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

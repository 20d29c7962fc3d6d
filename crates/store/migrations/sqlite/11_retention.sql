-- Retention (issue 17): old events, their deliveries and attempts, and the accounts and
-- transactions of ended consents are purged after a retention period.
--
-- applications.retention_days: the application's own period; NULL takes the node's
-- (--retention-days). maintenance_leases: one row per background job that must run on one
-- node at a time (the purge); a node holds it until lease_until. write_probes: /healthz
-- commits a row here to learn whether the store can still write (a full disk can leave
-- reads working). products_delivery: deleting a delivery sets products.delivery_id to NULL,
-- which without this index scans every product for each deleted delivery.
ALTER TABLE applications ADD COLUMN retention_days INTEGER;

CREATE TABLE maintenance_leases (
    name TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    lease_until INTEGER NOT NULL
) STRICT;

CREATE TABLE write_probes (
    id BLOB PRIMARY KEY NOT NULL,
    filler BLOB NOT NULL
) STRICT;

CREATE INDEX products_delivery ON products (delivery_id);

-- The purge's way to the accounts of ended consents (its query repeats the predicate).
CREATE INDEX consents_ended ON consents (application_id, updated_at)
    WHERE status IN ('revoked', 'expired', 'deleted_by_user');

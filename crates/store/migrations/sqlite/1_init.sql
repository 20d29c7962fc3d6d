-- Tenants, their API keys and their customers.
-- Types: UUIDs are 16-byte BLOBs, times INTEGER microseconds since the epoch (UTC), JSON TEXT.

CREATE TABLE applications (
    id BLOB PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id BLOB PRIMARY KEY NOT NULL,
    application_id BLOB NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    lookup TEXT NOT NULL UNIQUE,
    secret_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX api_keys_application ON api_keys (application_id);

CREATE TABLE customers (
    id BLOB PRIMARY KEY NOT NULL,
    application_id BLOB NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    external_id TEXT,
    login_name TEXT,
    personal_tax_id TEXT,
    business_tax_id TEXT,
    external_info TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CONSTRAINT customers_external_id_unique UNIQUE (application_id, external_id)
) STRICT;

CREATE INDEX customers_application ON customers (application_id, id);

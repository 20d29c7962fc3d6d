-- Tenants, their API keys and their customers.

CREATE TABLE applications (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_keys (
    id UUID PRIMARY KEY,
    application_id UUID NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    lookup TEXT NOT NULL UNIQUE,
    secret_hash BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX api_keys_application ON api_keys (application_id);

CREATE TABLE customers (
    id UUID PRIMARY KEY,
    application_id UUID NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    external_id TEXT,
    login_name TEXT,
    personal_tax_id TEXT,
    business_tax_id TEXT,
    external_info JSONB,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT customers_external_id_unique UNIQUE (application_id, external_id)
);

CREATE INDEX customers_application ON customers (application_id, id);

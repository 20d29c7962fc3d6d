-- Links, consents, accounts, transactions and refresh tasks.
-- Dates are TEXT 'YYYY-MM-DD' and amounts TEXT decimals, as on SQLite, so the SQL is shared.

CREATE TABLE links (
    id UUID PRIMARY KEY,
    application_id UUID NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    customer_id UUID NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    number BIGINT NOT NULL,
    external_track_id TEXT,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX links_customer ON links (customer_id, id);

CREATE TABLE consents (
    id UUID PRIMARY KEY,
    application_id UUID NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    customer_id UUID NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    link_id UUID NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    status TEXT NOT NULL,
    bank_consent_id TEXT NOT NULL,
    permissions_requested JSONB NOT NULL,
    permissions_granted JSONB NOT NULL,
    expires_at TIMESTAMPTZ,
    external_track_id TEXT,
    reconnect_required BOOLEAN NOT NULL,
    authorisation_url TEXT,
    auth_state TEXT UNIQUE,
    redirect_url TEXT,
    access_token TEXT,
    refresh_token TEXT,
    token_expires_at TIMESTAMPTZ,
    expiring_notified BOOLEAN NOT NULL,
    next_refresh_at TIMESTAMPTZ,
    last_refreshed_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX consents_customer ON consents (customer_id, id);
CREATE INDEX consents_due ON consents (next_refresh_at) WHERE status = 'authorised';
CREATE INDEX consents_expiry ON consents (expires_at) WHERE status = 'authorised';

CREATE TABLE accounts (
    id UUID PRIMARY KEY,
    application_id UUID NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    customer_id UUID NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    consent_id UUID NOT NULL REFERENCES consents (id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    bank_account_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    name TEXT,
    kind TEXT,
    identification TEXT,
    balances JSONB NOT NULL,
    removed BOOLEAN NOT NULL,
    last_booked_date TEXT,
    seq BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT accounts_consent_bank_unique UNIQUE (consent_id, bank_account_id)
);

CREATE INDEX accounts_customer ON accounts (customer_id, id);

CREATE TABLE transactions (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    provider_transaction_id TEXT,
    immutable_id BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    booking_date TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    description TEXT NOT NULL,
    removed BOOLEAN NOT NULL,
    created_seq BIGINT NOT NULL,
    changed_seq BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX transactions_account_date ON transactions (account_id, booking_date, id);
CREATE INDEX transactions_account_changes ON transactions (account_id, changed_seq);

CREATE TABLE refresh_tasks (
    id UUID PRIMARY KEY,
    application_id UUID NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    customer_id UUID NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    result TEXT,
    has_new_transactions BOOLEAN NOT NULL,
    trigger_kind TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX refresh_tasks_customer ON refresh_tasks (customer_id, id);

CREATE TABLE refresh_subtasks (
    id UUID PRIMARY KEY,
    task_id UUID NOT NULL REFERENCES refresh_tasks (id) ON DELETE CASCADE,
    application_id UUID NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    customer_id UUID NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    consent_id UUID NOT NULL REFERENCES consents (id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    reconnect_required BOOLEAN NOT NULL,
    has_new_transactions BOOLEAN NOT NULL,
    account_ids JSONB NOT NULL,
    stage TEXT,
    account_changes JSONB,
    new_transactions JSONB NOT NULL,
    attempts BIGINT NOT NULL,
    window_from TEXT,
    window_to TEXT,
    customer_ip TEXT,
    trigger_kind TEXT NOT NULL,
    lease_token TEXT,
    lease_until TIMESTAMPTZ,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX refresh_subtasks_task ON refresh_subtasks (task_id);
CREATE INDEX refresh_subtasks_open ON refresh_subtasks (provider_id, created_at)
    WHERE status IN ('Pending', 'Running');
CREATE INDEX refresh_subtasks_consent ON refresh_subtasks (consent_id) WHERE status IN ('Pending', 'Running');

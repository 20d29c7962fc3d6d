-- Links, consents, accounts, transactions and refresh tasks.
-- Dates are TEXT 'YYYY-MM-DD' and amounts TEXT decimals: both sort and compare exactly.

CREATE TABLE links (
    id BLOB PRIMARY KEY NOT NULL,
    application_id BLOB NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    customer_id BLOB NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    external_track_id TEXT,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX links_customer ON links (customer_id, id);

CREATE TABLE consents (
    id BLOB PRIMARY KEY NOT NULL,
    application_id BLOB NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    customer_id BLOB NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    link_id BLOB NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    status TEXT NOT NULL,
    bank_consent_id TEXT NOT NULL,
    permissions_requested TEXT NOT NULL,
    permissions_granted TEXT NOT NULL,
    expires_at INTEGER,
    external_track_id TEXT,
    reconnect_required INTEGER NOT NULL,
    authorisation_url TEXT,
    auth_state TEXT UNIQUE,
    redirect_url TEXT,
    access_token TEXT,
    refresh_token TEXT,
    token_expires_at INTEGER,
    expiring_notified INTEGER NOT NULL,
    next_refresh_at INTEGER,
    last_refreshed_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX consents_customer ON consents (customer_id, id);
CREATE INDEX consents_due ON consents (next_refresh_at) WHERE status = 'authorised';
CREATE INDEX consents_expiry ON consents (expires_at) WHERE status = 'authorised';

CREATE TABLE accounts (
    id BLOB PRIMARY KEY NOT NULL,
    application_id BLOB NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    customer_id BLOB NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    consent_id BLOB NOT NULL REFERENCES consents (id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    bank_account_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    name TEXT,
    kind TEXT,
    identification TEXT,
    balances TEXT NOT NULL,
    removed INTEGER NOT NULL,
    last_booked_date TEXT,
    seq INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CONSTRAINT accounts_consent_bank_unique UNIQUE (consent_id, bank_account_id)
) STRICT;

CREATE INDEX accounts_customer ON accounts (customer_id, id);

CREATE TABLE transactions (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    provider_transaction_id TEXT,
    immutable_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    booking_date TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    description TEXT NOT NULL,
    removed INTEGER NOT NULL,
    created_seq INTEGER NOT NULL,
    changed_seq INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX transactions_account_date ON transactions (account_id, booking_date, id);
CREATE INDEX transactions_account_changes ON transactions (account_id, changed_seq);

CREATE TABLE refresh_tasks (
    id BLOB PRIMARY KEY NOT NULL,
    application_id BLOB NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    customer_id BLOB NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    result TEXT,
    has_new_transactions INTEGER NOT NULL,
    trigger_kind TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX refresh_tasks_customer ON refresh_tasks (customer_id, id);

CREATE TABLE refresh_subtasks (
    id BLOB PRIMARY KEY NOT NULL,
    task_id BLOB NOT NULL REFERENCES refresh_tasks (id) ON DELETE CASCADE,
    application_id BLOB NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    customer_id BLOB NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    consent_id BLOB NOT NULL REFERENCES consents (id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    reconnect_required INTEGER NOT NULL,
    has_new_transactions INTEGER NOT NULL,
    account_ids TEXT NOT NULL,
    stage TEXT,
    account_changes TEXT,
    new_transactions TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    window_from TEXT,
    window_to TEXT,
    customer_ip TEXT,
    trigger_kind TEXT NOT NULL,
    lease_token TEXT,
    lease_until INTEGER,
    started_at INTEGER,
    finished_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX refresh_subtasks_task ON refresh_subtasks (task_id);
CREATE INDEX refresh_subtasks_open ON refresh_subtasks (provider_id, created_at)
    WHERE status IN ('Pending', 'Running');
CREATE INDEX refresh_subtasks_consent ON refresh_subtasks (consent_id) WHERE status IN ('Pending', 'Running');

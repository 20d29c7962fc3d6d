-- Webhook endpoints, the event log, and the delivery outbox.

CREATE TABLE webhook_endpoints (
    id BLOB PRIMARY KEY NOT NULL,
    application_id BLOB NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    dialect TEXT NOT NULL,
    event_types TEXT,                -- ',type,type,'; NULL = every type the dialect sends
    description TEXT,
    enabled INTEGER NOT NULL,
    disabled_reason TEXT,
    ordered INTEGER NOT NULL,
    security_header TEXT,
    partner_app_id TEXT,
    active_from INTEGER NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_until INTEGER,
    retry_schedule TEXT,             -- JSON array of seconds; NULL = the default
    last_success_at INTEGER,
    failing_since INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX webhook_endpoints_application ON webhook_endpoints (application_id, id);

CREATE TABLE events (
    id BLOB PRIMARY KEY NOT NULL,
    application_id BLOB NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    customer_id BLOB,
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL
) STRICT;

CREATE INDEX events_application ON events (application_id, id);
CREATE INDEX events_application_type ON events (application_id, event_type, id);

CREATE TABLE deliveries (
    id BLOB PRIMARY KEY NOT NULL,
    application_id BLOB NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    event_id BLOB NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    endpoint_id BLOB NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    status TEXT NOT NULL,            -- pending | delivering | failed | succeeded | dead
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER,
    leased_by TEXT,
    ordering_key TEXT,               -- set for ordered endpoints: the customer id
    last_status_code INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CONSTRAINT deliveries_event_endpoint_unique UNIQUE (event_id, endpoint_id)
) STRICT;

-- The dispatcher's question: what is due? Only rows that can still be sent are indexed.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE status IN ('pending', 'failed', 'delivering');
CREATE INDEX deliveries_leased_by ON deliveries (leased_by) WHERE leased_by IS NOT NULL;
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, event_id);
CREATE INDEX deliveries_ordering ON deliveries (endpoint_id, ordering_key, event_id)
    WHERE ordering_key IS NOT NULL;

CREATE TABLE delivery_attempts (
    id BLOB PRIMARY KEY NOT NULL,
    delivery_id BLOB NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempted_at INTEGER NOT NULL,
    status_code INTEGER,
    latency_ms INTEGER NOT NULL,
    error TEXT,
    response_excerpt TEXT,
    node TEXT NOT NULL
) STRICT;

CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);

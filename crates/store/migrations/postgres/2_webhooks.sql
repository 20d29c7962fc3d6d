-- Webhook endpoints, the event log, and the delivery outbox.

CREATE TABLE webhook_endpoints (
    id UUID PRIMARY KEY,
    application_id UUID NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    dialect TEXT NOT NULL,
    event_types TEXT,                -- ',type,type,'; NULL = every type the dialect sends
    description TEXT,
    enabled BOOLEAN NOT NULL,
    disabled_reason TEXT,
    ordered BOOLEAN NOT NULL,
    security_header TEXT,
    partner_app_id TEXT,
    active_from TIMESTAMPTZ NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_until TIMESTAMPTZ,
    retry_schedule JSONB,            -- array of seconds; NULL = the default
    last_success_at TIMESTAMPTZ,
    failing_since TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX webhook_endpoints_application ON webhook_endpoints (application_id, id);

CREATE TABLE events (
    id UUID PRIMARY KEY,
    application_id UUID NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    customer_id UUID,
    created_at TIMESTAMPTZ NOT NULL,
    data JSONB NOT NULL
);

CREATE INDEX events_application ON events (application_id, id);
CREATE INDEX events_application_type ON events (application_id, event_type, id);

CREATE TABLE deliveries (
    id UUID PRIMARY KEY,
    application_id UUID NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    event_id UUID NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    endpoint_id UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_until TIMESTAMPTZ,
    leased_by TEXT,
    ordering_key TEXT,
    last_status_code BIGINT,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT deliveries_event_endpoint_unique UNIQUE (event_id, endpoint_id)
);

CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE status IN ('pending', 'failed', 'delivering');
CREATE INDEX deliveries_leased_by ON deliveries (leased_by) WHERE leased_by IS NOT NULL;
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, event_id);
CREATE INDEX deliveries_ordering ON deliveries (endpoint_id, ordering_key, event_id)
    WHERE ordering_key IS NOT NULL;

CREATE TABLE delivery_attempts (
    id UUID PRIMARY KEY,
    delivery_id UUID NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempted_at TIMESTAMPTZ NOT NULL,
    status_code BIGINT,
    latency_ms BIGINT NOT NULL,
    error TEXT,
    response_excerpt TEXT,
    node TEXT NOT NULL
);

CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);

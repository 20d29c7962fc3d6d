-- Erasure finds a customer's events to strip their payloads of personal fields and to cancel
-- their pending deliveries: without this index that is a walk over the whole event log,
-- inside the write transaction. Only events about a customer are indexed.
CREATE INDEX events_customer ON events (customer_id, application_id) WHERE customer_id IS NOT NULL;

-- A product request's hidden callback endpoint, found when the request goes (the foreign
-- key's cascade) and when an erasure looks for its deliveries still in flight.
CREATE INDEX webhook_endpoints_product_request ON webhook_endpoints (product_request_id)
    WHERE product_request_id IS NOT NULL;

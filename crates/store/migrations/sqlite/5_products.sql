-- Data products (Klavi's product requests). A request names its products and a callback URL
-- for each; a generator claims pending requests under a lease, builds each product and, in
-- one transaction per product, settles its row, records product.generated_* and creates the
-- delivery of the product to its callback URL. That delivery goes through the ordinary outbox:
-- its target is a hidden endpoint of the request (dialect 'callback', never listed through
-- the API), and its body is fixed when it is created (deliveries.body) instead of rendered.

CREATE TABLE product_requests (
    id BLOB PRIMARY KEY NOT NULL,
    application_id BLOB NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    customer_id BLOB NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    link_id BLOB NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    consent_ids TEXT NOT NULL,       -- JSON array of ids
    products TEXT NOT NULL,          -- JSON array of product names, in the client's order
    callback_urls TEXT NOT NULL,     -- JSON object: product name -> URL
    tax_id TEXT,
    period_from TEXT NOT NULL,
    period_to TEXT NOT NULL,
    status TEXT NOT NULL,            -- pending | completed
    attempts INTEGER NOT NULL,
    lease_token TEXT,
    lease_until INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX product_requests_customer ON product_requests (customer_id, id);
CREATE INDEX product_requests_open ON product_requests (created_at) WHERE status = 'pending';

ALTER TABLE webhook_endpoints ADD COLUMN product_request_id BLOB
    REFERENCES product_requests (id) ON DELETE CASCADE;

CREATE TABLE products (
    request_id BLOB NOT NULL REFERENCES product_requests (id) ON DELETE CASCADE,
    product TEXT NOT NULL,
    callback_url TEXT NOT NULL,
    endpoint_id BLOB NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    status TEXT NOT NULL,            -- pending | succeeded | failed
    failure_reason TEXT,
    delivery_id BLOB REFERENCES deliveries (id) ON DELETE SET NULL,
    generated_at INTEGER,
    PRIMARY KEY (request_id, product)
) STRICT;

-- A body fixed when the delivery was created (a product for its callback URL), sent instead
-- of the event rendered in the endpoint's dialect.
ALTER TABLE deliveries ADD COLUMN body TEXT;

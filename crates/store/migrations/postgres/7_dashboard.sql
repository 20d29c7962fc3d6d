-- What the operator dashboard reads, each with an index so a page costs what it shows.
-- Attempts carry their endpoint, so an endpoint's health over the last day is a range of one
-- index and its last failure one probe of another, however many deliveries it has had.

ALTER TABLE delivery_attempts ADD COLUMN endpoint_id UUID;

UPDATE delivery_attempts SET endpoint_id =
    (SELECT d.endpoint_id FROM deliveries d WHERE d.id = delivery_attempts.delivery_id);

CREATE INDEX delivery_attempts_endpoint ON delivery_attempts (endpoint_id, attempted_at);
-- Failures only: a 2xx is success, anything else (no answer included) is not. The query
-- repeats this predicate word for word, which is what lets both engines use a partial index.
CREATE INDEX delivery_attempts_endpoint_failures ON delivery_attempts (endpoint_id, attempted_at)
    WHERE COALESCE(status_code, 0) NOT BETWEEN 200 AND 299;

-- An application's refresh tasks newest first, and its consents across customers.
CREATE INDEX refresh_tasks_application ON refresh_tasks (application_id, id);
CREATE INDEX consents_application ON consents (application_id, id);

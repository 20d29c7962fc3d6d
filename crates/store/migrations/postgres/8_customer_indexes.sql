-- A customer's consents and refresh tasks are read on every refresh request. Migration 7's
-- per-application indexes (for the dashboard's lists) are as good a match for those reads
-- when the planner has no statistics -- one equality and the order -- and SQLite then
-- walked every consent or task of the application to find one customer's. Indexes that
-- also hold the application make the customer's the better match by a column.
DROP INDEX consents_customer;
CREATE INDEX consents_customer ON consents (customer_id, application_id, id);
DROP INDEX refresh_tasks_customer;
CREATE INDEX refresh_tasks_customer ON refresh_tasks (customer_id, application_id, id);

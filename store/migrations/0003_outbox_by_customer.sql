-- The dispatcher takes each waiting customer's events together (one signal per customer).
CREATE INDEX outbox_customer ON outbox (customer_id, event_id);

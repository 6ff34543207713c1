-- The outbox is split into 64 partitions by a hash of the customer id, so several
-- dispatchers (API processes, `journeys dispatch`) each deliver a share of the customers:
-- one customer is always in one partition, delivered by the one dispatcher that holds
-- that partition's advisory lock, so its events keep their order (ingest/dispatcher.py,
-- store/outbox.py). The number is part of the stored data: changing it needs a migration
-- that recomputes the column while no dispatcher runs.
ALTER TABLE outbox ADD COLUMN part smallint NOT NULL
    GENERATED ALWAYS AS ((hashtextextended(customer_id, 0) & 63)::smallint) STORED;
CREATE INDEX outbox_part ON outbox (part, customer_id, event_id);

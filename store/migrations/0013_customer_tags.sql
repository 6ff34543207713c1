-- Tags journeys put on customers (the `tag` action, #11): one row per customer and tag,
-- written by the tag_customer activity (store/tags.py) with what the customer's workflow
-- already holds in its state (engine/tags.py). Segment rules read it ("vip" in tags), so
-- does the admin API.
-- The row keeps who tagged first: a retried activity (same idempotency key) or a second
-- journey adding the same tag finds the row and leaves it as it is.
-- Names and length as engine.actions.TagCustomer validates them (MAX_TAG_LENGTH); the
-- count per customer (MAX_TAGS) is kept by the interpreter, the only writer.
CREATE TABLE customer_tags (
    customer_id     text        NOT NULL,
    tag             text        NOT NULL
                    CHECK (tag ~ '^[a-z][a-z0-9_]*$' AND length(tag) <= 64),
    tagged_at       timestamptz NOT NULL,           -- the workflow's time of the action
    journey         text        NOT NULL,
    idempotency_key text        NOT NULL,           -- the action that added it
    PRIMARY KEY (customer_id, tag)
);

-- Customers an assign_manager action found no manager for (nobody was added to the pool
-- yet, or everybody in it is at capacity). They are assigned first come, first served,
-- when a manager is added; the row then holds the manager until the note to them is sent.
CREATE TABLE manager_waitlist (
    customer_id     text        NOT NULL,
    pool            text        NOT NULL,
    idempotency_key text        NOT NULL,  -- the action's: its /intro task and /notify note
    journey         text        NOT NULL,
    state           text        NOT NULL,
    context         jsonb       NOT NULL,  -- the action's template context, for the note
    queued_at       timestamptz NOT NULL DEFAULT now(),
    manager_id      bigint      REFERENCES managers (id),
    assigned_at     timestamptz,
    PRIMARY KEY (customer_id, pool)
);
CREATE INDEX manager_waitlist_queue ON manager_waitlist (pool, queued_at, customer_id)
    WHERE manager_id IS NULL;
CREATE INDEX manager_waitlist_notes ON manager_waitlist (assigned_at)
    WHERE manager_id IS NOT NULL;

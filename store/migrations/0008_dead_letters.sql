-- Events whose delivery to their customer's workflow failed for good (the signal cannot be
-- serialised, is over Temporal's limits even alone, or Temporal refused it as invalid). The
-- dispatcher moves the outbox row here, in one transaction, with the reason; the event
-- itself stays in `events`. An admin retries a dead letter (back into the outbox) or drops
-- it (the event stays in the history, never delivered).
CREATE TABLE dead_letters (
    id          bigserial   PRIMARY KEY,
    event_id    bigint      NOT NULL UNIQUE REFERENCES events (id) ON DELETE CASCADE,
    customer_id text        NOT NULL,
    reason      text        NOT NULL,
    queued_at   timestamptz NOT NULL,            -- the outbox row's created_at
    attempts    integer     NOT NULL DEFAULT 0,  -- the outbox row's failed attempts before
    last_error  text,                            -- and its last transient error
    dead_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_customer ON dead_letters (customer_id, event_id);

-- Crash windows found by a chaos run (#10, section 7).

-- A message whose provider may or may not have it (delivery: at_most_once found an
-- earlier attempt's outcome unrecorded): recorded as 'unknown' rather than sent again.
ALTER TABLE messages DROP CONSTRAINT messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('sending', 'sent', 'failed', 'suppressed', 'deferred', 'unknown'));

-- When the message was first tried, in the workflow's time (await_contact counts from it;
-- created_at is the database's clock, which the time-skipping test server does not move).
ALTER TABLE messages ADD COLUMN first_attempt_at timestamptz;

-- The admin read model: what each customer's workflow last wrote about itself, so admin
-- reads answer from PostgreSQL while Temporal, a worker or the workflow is down.
-- seq only grows over a customer's life: an older snapshot never overwrites a newer one.
CREATE TABLE customer_snapshots (
    customer_id text        PRIMARY KEY,
    seq         bigint      NOT NULL,
    at          timestamptz NOT NULL,             -- the workflow's time of the snapshot
    tier        text,
    segment     text,
    problems    jsonb       NOT NULL DEFAULT '[]',
    written_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE customer_journeys (
    customer_id       text        NOT NULL,
    journey           text        NOT NULL,
    version           integer     NOT NULL,
    state             text        NOT NULL,
    status            text        NOT NULL,
    context           jsonb       NOT NULL DEFAULT '{}',
    since             timestamptz NOT NULL,       -- entered the state
    enrolled_at       timestamptz,
    next_timer_due    timestamptz,
    next_timer_label  text,                       -- the timer's `after`, e.g. 30d
    next_timer_target text,                       -- the state it moves to, when it names one
    seq               bigint      NOT NULL,
    PRIMARY KEY (customer_id, journey)
);
CREATE INDEX customer_journeys_state ON customer_journeys (journey, state);

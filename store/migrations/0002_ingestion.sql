-- Ingestion: write keys, customer profiles, the event history and the delivery outbox.

CREATE TABLE api_keys (
    id          bigserial   PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('write', 'admin')),
    name        text        NOT NULL,
    prefix      text        NOT NULL,           -- first characters, to recognise a key in lists
    hash        text        NOT NULL UNIQUE,    -- sha256 of the key; the key itself is never stored
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- What we know of a customer. Contact details live here and only here (never in Temporal).
CREATE TABLE customers (
    customer_id  text        PRIMARY KEY,
    traits       jsonb       NOT NULL DEFAULT '{}',
    anonymous_id text,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Every accepted message, once: the history that tiering and reports read.
-- (source, message_id) is the dedupe key (per write key), kept as long as the row.
CREATE TABLE events (
    id          bigserial   PRIMARY KEY,
    source      bigint      NOT NULL,           -- api_keys.id of the write key
    message_id  text        NOT NULL,
    type        text        NOT NULL,           -- track identify page screen group alias
    customer_id text        NOT NULL,
    name        text,                            -- normalised event name (track), page/screen name
    properties  jsonb       NOT NULL DEFAULT '{}',
    event_time  timestamptz NOT NULL,            -- timestamp corrected for client clock skew
    received_at timestamptz NOT NULL,
    context     jsonb       NOT NULL DEFAULT '{}',
    UNIQUE (source, message_id)
);
CREATE INDEX events_customer_time ON events (customer_id, event_time);
CREATE INDEX events_time ON events (event_time);
CREATE INDEX events_name_time ON events (name, event_time) WHERE type = 'track';

-- Events some journey needs, waiting to be delivered to customer workflows. A row is
-- deleted once its customer's workflow has been signalled: delivery survives restarts
-- and Temporal outages, and the workflow deduplicates a re-delivered event by its id.
CREATE TABLE outbox (
    event_id    bigint      PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    customer_id text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    attempts    integer     NOT NULL DEFAULT 0,
    last_error  text
);

-- Journey definitions, catalogs, the action log and the transition log.

CREATE TABLE journey_versions (
    journey      text        NOT NULL,
    version      integer     NOT NULL CHECK (version > 0),
    digest       text        NOT NULL,
    definition   jsonb       NOT NULL,
    source       text        NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (journey, version),
    UNIQUE (journey, digest)
);

-- Each row is one catalog: which version new customers get (latest) and the lowest
-- version in-flight customers may stay on (floor). The highest seq is the current one.
CREATE TABLE catalogs (
    seq        bigserial   PRIMARY KEY,
    latest     jsonb       NOT NULL,
    floor      jsonb       NOT NULL DEFAULT '{}',
    reason     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Every action a journey took, once: the idempotency key is the primary key.
CREATE TABLE action_log (
    idempotency_key text        PRIMARY KEY,
    customer_id     text        NOT NULL,
    journey         text        NOT NULL,
    version         integer     NOT NULL,
    state           text        NOT NULL,
    action          text        NOT NULL,
    args            jsonb       NOT NULL,
    status          text        NOT NULL DEFAULT 'done',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX action_log_customer ON action_log (customer_id, created_at);

-- Every state change, once, for reports (conversion, time in state) and audits.
CREATE TABLE journey_transitions (
    key         text        PRIMARY KEY,
    customer_id text        NOT NULL,
    journey     text        NOT NULL,
    version     integer     NOT NULL,
    from_state  text,
    to_state    text        NOT NULL,
    cause       text        NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX journey_transitions_customer ON journey_transitions (customer_id, at);
CREATE INDEX journey_transitions_journey ON journey_transitions (journey, to_state, at);

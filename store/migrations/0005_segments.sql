-- Customer tiering (#5): RFM metrics, segments and tiers, refreshed set-based from events.

-- One row per refresh: what it computed, as of when, and how far the fan-out got.
CREATE TABLE segment_refreshes (
    id              bigserial   PRIMARY KEY,
    as_of           timestamptz NOT NULL,        -- the history is tiered as of this time
    definitions     text        NOT NULL,        -- digest of rules/segments.yaml used
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,                 -- metrics written
    customers       integer,                     -- customers with metrics
    changed         integer,                     -- customers whose segment or tier changed
    notified_at     timestamptz                  -- every segment_changed event recorded
);

-- The latest metrics of every customer who ever ordered (and of those who had metrics).
-- store.segments.refresh rebuilds this table and swaps it in: no views or foreign keys to it.
CREATE TABLE customer_metrics (
    customer_id      text        PRIMARY KEY,
    refresh_id       bigint      NOT NULL REFERENCES segment_refreshes (id),
    as_of            timestamptz NOT NULL,
    recency_days     integer,                    -- days since the last order in the window
    orders           integer     NOT NULL,       -- orders in the window
    revenue          numeric     NOT NULL,       -- revenue in the window
    first_order_days integer,                    -- days since the first order ever
    r                smallint    NOT NULL,       -- 1-5 (0: no order in the window)
    f                smallint    NOT NULL,
    m                smallint    NOT NULL,
    segment          text        NOT NULL,
    tier             text        NOT NULL,       -- A, B, C or none
    ltv              numeric     NOT NULL,       -- all-time revenue
    ltv_orders       integer     NOT NULL,       -- all-time orders
    aov              numeric,                    -- all-time average order value
    first_order_at   timestamptz,
    last_order_at    timestamptz,
    computed_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customer_metrics_segment ON customer_metrics (segment, tier);

-- Who changed in a refresh, and whether their segment_changed event was recorded yet:
-- the fan-out resumes from here after a crash, never repeating or losing one.
CREATE TABLE segment_changes (
    -- segment_refreshes.id; no foreign key: a refresh writes up to a million rows here in
    -- the transaction that creates the refresh, and a check per row costs seconds
    refresh_id       bigint      NOT NULL,
    customer_id      text        NOT NULL,
    previous_segment text,
    segment          text        NOT NULL,
    previous_tier    text,
    tier             text        NOT NULL,
    r                smallint    NOT NULL,
    f                smallint    NOT NULL,
    m                smallint    NOT NULL,
    notified_at      timestamptz,
    PRIMARY KEY (refresh_id, customer_id)
);
-- No partial index on the pending ones: the primary key serves "refresh_id = $1 AND
-- customer_id > $last AND notified_at IS NULL ORDER BY customer_id", and without an index
-- on notified_at marking a row notified is a HOT update (a refresh writes up to a million).

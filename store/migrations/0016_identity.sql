-- Identity resolution (#13): one customer per person, however many ids reached us.
-- store/identity.py writes and reads these; ingestion resolves every id before storing.

-- The id graph: every known id points at its customer's canonical id, always in one hop
-- (a merge repoints every id of the absorbed customer). An id without a row is its own
-- customer (ids seen before this migration get their row when next seen or merged).
CREATE TABLE customer_ids (
    id          text        PRIMARY KEY,
    canonical   text        NOT NULL,
    linked_at   timestamptz NOT NULL DEFAULT now(),   -- when it last pointed somewhere new
    merge_id    bigint,                                -- the merge that did it (NULL: itself)
    user_id     boolean     NOT NULL DEFAULT false     -- sent as a userId at least once
);
CREATE INDEX customer_ids_canonical ON customer_ids (canonical);

-- Every merge, once: the audit log (who, when, why) and the queue that tells the two
-- customers' workflows (the dispatcher, ingest/dispatcher.py, delivers it).
CREATE TABLE merges (
    id            bigserial   PRIMARY KEY,
    absorbed      text        NOT NULL,               -- the canonical id that ceased
    survivor      text        NOT NULL,               -- the canonical id it joined
    via           text        NOT NULL,               -- identify | alias | admin | rule:<name>
    reason        text        NOT NULL DEFAULT '',
    actor         text        NOT NULL,               -- the write key, admin key or CLI user
    at            timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,                        -- both workflows were told
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text,
    -- why a write key's merge was not made (two known customers: docs/identity.md); such a
    -- row is the record of the attempt, delivered at once (nothing changed)
    refused       text,
    CHECK (absorbed <> survivor)
);
CREATE INDEX merges_pending ON merges (id) WHERE delivered_at IS NULL;
CREATE INDEX merges_absorbed ON merges (absorbed);
CREATE INDEX merges_survivor ON merges (survivor);

-- The id an event was sent under, when that is no longer its customer's id (NULL: it is).
ALTER TABLE events ADD COLUMN sent_as text;

-- Real actions (#4): messages, consent, offers, account managers, surveys, staff tasks.
-- Every row an activity creates carries the action's idempotency key under a UNIQUE
-- constraint, so a retried activity finds its earlier row instead of acting twice.

-- Every message a journey sent, suppressed or deferred. Contact details are read from
-- customers.traits at send time; only the channel's address kind is kept here.
CREATE TABLE messages (
    id              bigserial   PRIMARY KEY,
    idempotency_key text        NOT NULL UNIQUE,
    customer_id     text        NOT NULL,
    journey         text        NOT NULL,
    state           text        NOT NULL,
    template        text        NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('email', 'sms', 'webhook')),
    marketing       boolean     NOT NULL,
    status          text        NOT NULL
                    CHECK (status IN ('sending', 'sent', 'failed', 'suppressed', 'deferred')),
    reason          text,                       -- why suppressed, deferred or failed
    provider_id     text,                       -- SMTP Message-ID, SMS provider id, ...
    subject         text,
    attempts        integer     NOT NULL DEFAULT 0,
    deferred_until  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX messages_customer ON messages (customer_id, created_at);
-- frequency caps count a customer's recent marketing messages
CREATE INDEX messages_caps ON messages (customer_id, sent_at) WHERE marketing AND status = 'sent';

-- Per-channel opt-outs ('all' for every channel). Unsubscribe links and identify traits
-- write here; transactional messages ignore it.
CREATE TABLE consent (
    customer_id text        NOT NULL,
    channel     text        NOT NULL CHECK (channel IN ('email', 'sms', 'webhook', 'all')),
    opted_out   boolean     NOT NULL,
    source      text        NOT NULL,           -- unsubscribe_link | identify | admin
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, channel)
);

-- Offer budgets: at most max_live unredeemed, unexpired coupons of one kind.
CREATE TABLE offer_budgets (
    name        text        PRIMARY KEY,
    max_live    integer     NOT NULL CHECK (max_live >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE offers (
    code            text        PRIMARY KEY,
    idempotency_key text        NOT NULL UNIQUE,
    customer_id     text        NOT NULL,
    journey         text        NOT NULL,
    template        text        NOT NULL,
    budget          text        REFERENCES offer_budgets (name),
    percent_off     numeric,
    amount_off      numeric,
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    redeemed_at     timestamptz,
    redeemed_via    text,                       -- order event id or 'api'
    CHECK ((percent_off IS NULL) <> (amount_off IS NULL))
);
CREATE INDEX offers_customer ON offers (customer_id, created_at);
CREATE INDEX offers_live ON offers (budget, expires_at) WHERE redeemed_at IS NULL;

-- Account managers, grouped in pools (vip, sales, ...).
CREATE TABLE managers (
    id          bigserial   PRIMARY KEY,
    pool        text        NOT NULL,
    name        text        NOT NULL,
    email       text        NOT NULL,
    capacity    integer     NOT NULL CHECK (capacity > 0),
    active      boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (pool, email)
);

-- A customer keeps their manager per pool; load = active assignments of a manager.
CREATE TABLE manager_assignments (
    customer_id text        NOT NULL,
    pool        text        NOT NULL,
    manager_id  bigint      NOT NULL REFERENCES managers (id),
    assigned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, pool)
);
CREATE INDEX manager_assignments_manager ON manager_assignments (manager_id);

CREATE TABLE surveys (
    token           text        PRIMARY KEY,    -- the unguessable part of the link
    idempotency_key text        NOT NULL UNIQUE,
    customer_id     text        NOT NULL,
    journey         text        NOT NULL,
    template        text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('nps', 'csat')),
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    answered_at     timestamptz,
    score           integer,
    comment         text
);
CREATE INDEX surveys_customer ON surveys (customer_id, created_at);

-- Follow-up tasks for staff: for one manager, or for a pool's queue.
CREATE TABLE tasks (
    id              bigserial   PRIMARY KEY,
    idempotency_key text        NOT NULL UNIQUE,
    customer_id     text        NOT NULL,
    journey         text        NOT NULL,
    title           text        NOT NULL,
    note            text,
    pool            text,                       -- the queue when no manager holds it
    manager_id      bigint      REFERENCES managers (id),
    due_at          timestamptz NOT NULL,
    status          text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    completed_by    text
);
CREATE INDEX tasks_open ON tasks (status, due_at);
CREATE INDEX tasks_manager ON tasks (manager_id, status);

-- What the development mail catcher received (make run), shown by GET /v1/dev/mail.
CREATE TABLE dev_mail (
    id          bigserial   PRIMARY KEY,
    message_id  text,
    mail_from   text        NOT NULL,
    rcpt_to     text[]      NOT NULL,
    subject     text,
    raw         text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

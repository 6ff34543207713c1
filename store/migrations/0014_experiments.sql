-- Experiments and goals (#12). One row per customer and experiment: the arm a `split`
-- action gave them (engine.experiments.assign, a hash of experiment and customer), written
-- by its activity with what the customer's workflow already holds in its state. The first
-- row stays: the arm is sticky, so a retried activity or a re-enrolment finds it and
-- leaves it as it is. The lift report (store/reports/experiments.py) counts customers per
-- arm from here, holdout included.
CREATE TABLE experiment_assignments (
    experiment      text        NOT NULL CHECK (experiment ~ '^[a-z][a-z0-9_]*$'),
    customer_id     text        NOT NULL,
    arm             text        NOT NULL CHECK (arm ~ '^[a-z][a-z0-9_]*$'),
    journey         text        NOT NULL,
    version         integer     NOT NULL,
    enrollment      integer     NOT NULL,
    assigned_at     timestamptz NOT NULL,           -- the workflow's time of the split
    idempotency_key text        NOT NULL,
    PRIMARY KEY (experiment, customer_id)
);

-- A journey run's conversion: the goal event (and its condition) came within the window
-- after enrolment, or after the split for a run in an experiment. Once per run (customer,
-- journey, enrolment); experiment and arm are those of the run, NULL outside experiments.
CREATE TABLE conversions (
    customer_id        text          NOT NULL,
    journey            text          NOT NULL,
    enrollment         integer       NOT NULL,
    version            integer       NOT NULL,
    experiment         text,
    arm                text,
    goal_event         text          NOT NULL,
    event_id           text          NOT NULL,
    revenue            numeric(14,2) NOT NULL DEFAULT 0,
    started_at         timestamptz   NOT NULL,      -- enrolment, or the split
    converted_at       timestamptz   NOT NULL,
    idempotency_key    text          NOT NULL,
    PRIMARY KEY (customer_id, journey, enrollment),
    CHECK ((experiment IS NULL) = (arm IS NULL)),
    CHECK (converted_at >= started_at)
);
CREATE INDEX conversions_experiment ON conversions (experiment, arm) WHERE experiment IS NOT NULL;
CREATE INDEX conversions_journey ON conversions (journey, converted_at);

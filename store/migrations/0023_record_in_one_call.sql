-- A workflow step's log (its transitions and the customer's admin snapshot) in one call:
-- the record_transitions activity sent five to seven statements (the transitions, then
-- BEGIN, the snapshot, the journeys gone, the journeys, COMMIT), each a round trip the
-- worker's event loop waited for and ~0.15 ms of its CPU (#14). The rules are those of
-- store/read_model.py before: a transition is stored once (by key); the snapshot row is
-- locked first and written only when its seq is higher than the stored one, so concurrent
-- writers serialise and the highest seq wins whatever their order. A plpgsql function
-- takes a new snapshot per statement (read committed), so the journeys rows are written
-- seeing every writer that held the lock before. One transaction: the log is all or none.
--
-- p_log is the activity's input as JSON (workflows.io.RecordTransitionsInput):
-- {"transitions": [{key, journey, version, from_state, to_state, cause, at}],
--  "snapshot": null | {seq, at, tier, segment, problems, journeys: [...]}}
-- Keys the tables have no column for (a journey's experiment, arm, converted_at: their
-- own tables hold them) are ignored. Returns whether the snapshot was stored.
CREATE OR REPLACE FUNCTION journeys_record(p_customer text, p_log jsonb)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    snap jsonb := p_log -> 'snapshot';
BEGIN
    INSERT INTO journey_transitions (key, customer_id, journey, version, from_state,
                                     to_state, cause, at)
    SELECT t.key, p_customer, t.journey, t.version, t.from_state, t.to_state, t.cause, t.at
    FROM jsonb_to_recordset(coalesce(p_log -> 'transitions', '[]')) AS t(
        key text, journey text, version integer, from_state text, to_state text,
        cause text, at timestamptz)
    ON CONFLICT (key) DO NOTHING;

    IF snap IS NULL OR jsonb_typeof(snap) <> 'object' THEN
        RETURN false;  -- a history recorded before snapshots existed: untouched
    END IF;
    INSERT INTO customer_snapshots AS s (customer_id, seq, at, tier, segment, problems)
    VALUES (p_customer, (snap ->> 'seq')::bigint, (snap ->> 'at')::timestamptz,
            snap ->> 'tier', snap ->> 'segment', coalesce(snap -> 'problems', '[]'))
    ON CONFLICT (customer_id) DO UPDATE SET seq = EXCLUDED.seq, at = EXCLUDED.at,
        tier = EXCLUDED.tier, segment = EXCLUDED.segment, problems = EXCLUDED.problems,
        written_at = now()
    WHERE s.seq < EXCLUDED.seq;
    IF NOT FOUND THEN
        RETURN false;  -- an older or repeated snapshot
    END IF;

    DELETE FROM customer_journeys
    WHERE customer_id = p_customer
      AND journey NOT IN (SELECT j ->> 'journey'
                          FROM jsonb_array_elements(coalesce(snap -> 'journeys', '[]')) AS j);
    INSERT INTO customer_journeys (customer_id, journey, version, state, status, context,
                                   since, enrolled_at, next_timer_due, next_timer_label,
                                   next_timer_target, seq)
    SELECT p_customer, j.journey, j.version, j.state, j.status, coalesce(j.context, '{}'),
           j.since, j.enrolled_at, j.next_timer_due, j.next_timer_label,
           j.next_timer_target, (snap ->> 'seq')::bigint
    FROM jsonb_to_recordset(coalesce(snap -> 'journeys', '[]')) AS j(
        journey text, version integer, state text, status text, context jsonb,
        since timestamptz, enrolled_at timestamptz, next_timer_due timestamptz,
        next_timer_label text, next_timer_target text)
    ON CONFLICT (customer_id, journey) DO UPDATE SET version = EXCLUDED.version,
        state = EXCLUDED.state, status = EXCLUDED.status, context = EXCLUDED.context,
        since = EXCLUDED.since, enrolled_at = EXCLUDED.enrolled_at,
        next_timer_due = EXCLUDED.next_timer_due,
        next_timer_label = EXCLUDED.next_timer_label,
        next_timer_target = EXCLUDED.next_timer_target, seq = EXCLUDED.seq;
    RETURN true;
END
$$;

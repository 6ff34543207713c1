"""engine.merging: what a merge of two customers does to their journeys."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from engine import machine, merging
from engine.catalog import Catalog
from engine.machine import DEDUPE_MAX, MAX_HISTORY
from engine.model import CustomerState
from tests.engine.support import DAY, T0, customer, ev


def _signed_up(catalog: Catalog, cid: str, at=T0, **props) -> CustomerState:
    return machine.handle_event(catalog, customer(cid), ev("signed_up", at, **props), at).state


def test_merge_away_ends_every_active_run_and_hands_over_the_runs_as_they_were(shipped):
    state = _signed_up(shipped, "anon-1")
    assert state.runs["lifecycle"].status == "active" and state.runs["lifecycle"].timers
    before = state.model_copy(deep=True)
    step, handover = merging.merge_away(shipped, state, "ann", T0 + DAY, merge_id=7)
    assert state == before  # the input is not changed
    for name, run in step.state.runs.items():
        if before.runs[name].status == "active":
            assert (run.status, run.timers) == ("exited", [])
            assert run.history[-1].cause == "merged into ann"
            assert run.history[-1].to_state == "exited"
    exits = {t.journey: t for t in step.transitions}
    assert set(exits) == {n for n, r in before.runs.items() if r.status == "active"}
    assert exits["lifecycle"].cause == "merged into ann"
    assert exits["lifecycle"].key == "anon-1/lifecycle/1/1/merged"
    assert machine.next_due(step.state) is None
    assert (handover.merge_id, handover.absorbed, handover.into) == (7, "anon-1", "ann")
    assert handover.runs == before.runs  # active, timers and all
    assert handover.seen == before.seen


def test_the_cause_shows_a_contact_like_survivor_id_hidden(shipped):
    step, _ = merging.merge_away(shipped, _signed_up(shipped, "a"), "ann@example.com", T0)
    assert step.transitions[0].cause == "merged into [hidden]"
    assert "ann@example.com" not in step.state.model_dump_json()


def test_a_survivor_adopts_runs_of_journeys_it_never_ran_and_keeps_its_own(shipped):
    anon = machine.handle_event(shipped, customer("anon"), ev("lead_created", T0), T0).state
    anon = machine.handle_event(shipped, anon, ev("signed_up", T0), T0).state
    _, handover = merging.merge_away(shipped, anon, "ann", T0 + DAY)
    ann = machine.handle_event(shipped, customer("ann"), ev("lead_created", T0), T0).state
    own = ann.runs["lead_followup"].model_copy(deep=True)
    step = merging.absorb(shipped, ann, handover, T0 + DAY)
    assert step.state.runs["lead_followup"] == own  # the survivor's own run wins
    adopted = step.state.runs["lifecycle"]
    was = anon.runs["lifecycle"]
    assert (adopted.state, adopted.status, adopted.context, adopted.timers) == (
        was.state,
        "active",
        was.context,
        was.timers,
    )
    assert adopted.history[-1].cause == "continued from anon"
    (record,) = step.transitions
    assert (record.journey, record.cause, record.key) == (
        "lifecycle",
        "continued from anon",
        "ann/lifecycle/1/1/adopted",
    )
    assert step.actions == []  # nothing is done again: the welcome went out to anon


def test_the_adopted_run_goes_on_where_it_was(shipped):
    """14 days after the anonymous sign-up, the known customer turns dormant; and its
    later actions are keyed with the survivor's id, so they cannot meet the absorbed's."""
    anon = _signed_up(shipped, "anon")
    _, handover = merging.merge_away(shipped, anon, "ann", T0 + DAY)
    ann = merging.absorb(shipped, customer("ann"), handover, T0 + DAY).state
    step = machine.fire_timers(shipped, ann, T0 + 14 * DAY)
    assert step.state.runs["lifecycle"].state == "dormant"
    assert [a.idempotency_key.split("/")[0] for a in step.actions] == ["ann"]
    # a second sign-up of the known customer does not enrol (or welcome) again
    again = machine.handle_event(shipped, ann, ev("signed_up", T0 + DAY), T0 + DAY)
    assert [a.kind for a in again.actions] == []


def test_events_the_absorbed_applied_are_not_applied_again(shipped):
    first = ev("order_completed", T0, revenue=10)
    anon = machine.handle_event(shipped, customer("anon"), first, T0).state
    _, handover = merging.merge_away(shipped, anon, "ann", T0)
    ann = merging.absorb(shipped, customer("ann"), handover, T0).state
    assert machine.handle_event(shipped, ann, first, T0).duplicate


def test_absorbing_twice_changes_nothing_the_second_time(shipped):
    _, handover = merging.merge_away(shipped, _signed_up(shipped, "anon"), "ann", T0)
    once = merging.absorb(shipped, customer("ann"), handover, T0).state
    twice = merging.absorb(shipped, once, handover, T0 + DAY)
    assert twice.duplicate and twice.state == once and twice.transitions == []


def test_a_chain_hands_the_first_customers_runs_on(shipped):
    """a -> b -> c: b adopted a's runs, then is absorbed into c, which ends with them."""
    _, ab = merging.merge_away(shipped, _signed_up(shipped, "a"), "b", T0, merge_id=1)
    b = merging.absorb(shipped, customer("b"), ab, T0).state
    b_step, bc = merging.merge_away(shipped, b, "c", T0 + DAY, merge_id=2)
    assert b_step.state.runs["lifecycle"].history[-2:][0].cause == "continued from a"
    assert b_step.state.runs["lifecycle"].history[-1].cause == "merged into c"
    c = merging.absorb(shipped, customer("c"), bc, T0 + DAY).state
    run = c.runs["lifecycle"]
    assert (run.state, run.status) == ("new", "active")
    assert [h.cause for h in run.history] == [
        "enroll:signed_up",
        "continued from a",
        "continued from b",
    ]


def test_arms_tags_and_seen_are_joined_with_the_survivors_winning(shipped):
    anon = _signed_up(shipped, "anon")
    anon.experiments = {"subject": "b", "only_anon": "a"}
    anon.customer.tags = ["anon-tag", "shared"]
    ann = customer("ann")
    ann.experiments = {"subject": "a"}
    ann.customer.tags = ["own", "shared"]
    ann.seen = {"x": T0}
    _, handover = merging.merge_away(shipped, anon, "ann", T0)
    new = merging.absorb(shipped, ann, handover, T0).state
    assert new.experiments == {"subject": "a", "only_anon": "a"}
    assert new.customer.tags == ["anon-tag", "own", "shared"]
    assert set(new.seen) == {"x", *anon.seen}


def test_a_merge_of_a_customer_without_runs_hands_over_nothing_and_ends_nothing(shipped):
    step, handover = merging.merge_away(shipped, customer("anon"), "ann", T0)
    assert step.transitions == [] and handover.runs == {}
    assert merging.absorb(shipped, customer("ann"), handover, T0).duplicate


def test_completed_and_exited_runs_are_handed_over_as_they_are(shipped):
    """A journey the absorbed finished counts as run: the survivor adopts it finished
    (a journey with reenter: never does not start again for the same person)."""
    anon = _signed_up(shipped, "anon")
    anon = machine.fire_timers(shipped, anon, T0 + 200 * DAY).state
    assert anon.runs["lifecycle"].status == "completed"
    step, handover = merging.merge_away(shipped, anon, "ann", T0 + 200 * DAY)
    assert "lifecycle" not in {t.journey for t in step.transitions}
    ann = merging.absorb(shipped, customer("ann"), handover, T0 + 200 * DAY).state
    assert ann.runs["lifecycle"].status == "completed"


def test_missing_names_versions_the_catalog_lacks(shipped):
    _, handover = merging.merge_away(shipped, _signed_up(shipped, "anon"), "ann", T0)
    handover.runs["lifecycle"].version = 9
    ann = merging.absorb(shipped, customer("ann"), handover, T0).state
    assert merging.missing(shipped, ann) == ["lifecycle@9"]
    assert merging.missing(shipped, customer("x")) == []


def test_histories_stay_bounded(shipped):
    anon = _signed_up(shipped, "anon")
    run = anon.runs["lifecycle"]
    run.history = run.history * MAX_HISTORY
    step, handover = merging.merge_away(shipped, anon, "ann", T0)
    assert len(step.state.runs["lifecycle"].history) == MAX_HISTORY
    ann = merging.absorb(shipped, customer("ann"), handover, T0).state
    assert len(ann.runs["lifecycle"].history) == MAX_HISTORY


@settings(max_examples=50, deadline=None)
@given(
    own=st.integers(min_value=0, max_value=DEDUPE_MAX + 50),
    other=st.integers(min_value=0, max_value=DEDUPE_MAX + 50),
    age_days=st.integers(min_value=0, max_value=10),
)
def test_the_joined_dedupe_window_is_bounded_and_keeps_the_newest(own, other, age_days):
    now = T0 + 30 * DAY
    old = now - timedelta(days=age_days)
    mine = {f"own-{i}": now - timedelta(seconds=i) for i in range(own)}
    theirs = {f"abs-{i}": old - timedelta(seconds=i) for i in range(other)}
    state = customer("ann")
    state.seen = mine
    handover = merging.Handover(merge_id=1, absorbed="anon", into="ann", seen=theirs)
    seen = merging.absorb(Catalog(), state, handover, now).state.seen
    assert len(seen) <= DEDUPE_MAX
    assert all(at >= now - machine.DEDUPE_WINDOW for at in seen.values())
    newest = sorted({**mine, **theirs}.items(), key=lambda kv: kv[1], reverse=True)
    in_window = [k for k, at in newest if at >= now - machine.DEDUPE_WINDOW][:DEDUPE_MAX]
    # ties at the boundary aside, the newest ids are the ones kept
    assert set(in_window[: DEDUPE_MAX - 1]) <= set(seen)

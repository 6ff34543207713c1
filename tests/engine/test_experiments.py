"""Experiments and goals in the pure interpreter: the assignment's weights over 100,000 ids,
sticky arms (re-enrolment, upgrade to other weights), ``ctx.arm`` and ``experiment.NAME``
in CEL, ``when:`` on actions, the holdout kept from messages but tracked, the goal's
window at its edges and ``exit_on_goal`` (what loading checks: test_experiment_checks)."""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta
from pathlib import Path

from engine import fire_timers, handle_event, upgrade
from engine.catalog import Catalog, digest
from engine.experiments import HOLDOUT, assign
from engine.goals import revenue_of
from engine.ui_summary import markdown
from tests.engine.support import DAY, T0, catalog_of, customer, ev, load_one

ARMS = {"offer_15": 45, "offer_25": 45, "holdout": 10}

TRIAL = """
journey: trial
enroll: {on: [signed_up], reenter: after_exit}
start: welcome
states:
  welcome:
    enter:
      - split: {experiment: trial_offer, arms: {offer: 50, holdout: 50}}
      - send: {template: welcome, when: 'ctx.arm == "offer"'}
      - send: {template: nudge}
      - task: {title: Call the new customer}
      - tag: {add: [trial_started]}
    on:
      order_completed:
        - do: [{send: {template: thanks}}]
          goto: bought
      left: gone
    after:
      30d: gone
  bought: {final: true}
  gone: {final: true}
goal: {event: order_completed, within: 10d, when: 'event.properties.revenue > 0'}
"""
EXITING = TRIAL.replace("within: 10d,", "within: 10d,").replace(
    "goal: {", "exit_on_goal: true\ngoal: {"
)
READER = """
journey: z_reader
enroll: {on: [signed_up]}
start: s
states:
  s:
    on:
      ping:
        - when: 'experiment.trial_offer == "holdout"'
          goto: held
        - when: 'experiment.trial_offer == ""'
          goto: unsplit
        - goto: split
  held: {final: true}
  unsplit: {final: true}
  split: {final: true}
"""


def ids_in(arm: str, arms: dict[str, int] | None = None, n: int = 3) -> list[str]:
    """The first ``n`` customer ids in ``arm`` of trial_offer."""
    arms = arms or {"offer": 50, "holdout": 50}
    return [c for c in (f"c{i}" for i in range(1000)) if assign("trial_offer", arms, c) == arm][:n]


OFFERED, HELD = ids_in("offer")[0], ids_in(HOLDOUT)[0]


# --- assignment -------------------------------------------------------------------------


def test_weights_hold_within_statistical_bounds_over_100000_ids():
    n = 100_000
    counts = Counter(assign("winback_2026q4", ARMS, f"customer-{i}") for i in range(n))
    total = sum(ARMS.values())
    expected = {arm: n * w / total for arm, w in ARMS.items()}
    chi2 = sum((counts[a] - e) ** 2 / e for a, e in expected.items())
    # two degrees of freedom: P(chi2 > x) = exp(-x / 2); 41.4 is p = 1e-9. The ids are fixed,
    # so this cannot flake: it fails only if the hash stops being uniform
    assert chi2 < 2 * math.log(1e9), (counts, chi2)
    for arm, e in expected.items():  # and each arm within 6 binomial standard deviations
        p = ARMS[arm] / total
        assert abs(counts[arm] - e) < 6 * math.sqrt(n * p * (1 - p)), (arm, counts[arm])


def test_the_arm_depends_on_names_and_weights_not_on_the_order_written():
    reordered = dict(reversed(list(ARMS.items())))
    for i in range(2000):
        assert assign("x", ARMS, f"c{i}") == assign("x", reordered, f"c{i}")
    other = sum(assign("x", ARMS, f"c{i}") != assign("y", ARMS, f"c{i}") for i in range(2000))
    assert other > 800  # another experiment shuffles customers afresh


# --- the interpreter ---------------------------------------------------------------------


def test_split_sets_the_arm_on_the_run_and_the_customer_and_records_it(tmp_path: Path):
    cat = catalog_of(tmp_path, TRIAL)
    step = handle_event(cat, customer(OFFERED), ev("signed_up"), T0)
    run = step.state.runs["trial"]
    assert (run.experiment, run.arm, run.split_at) == ("trial_offer", "offer", T0)
    assert step.state.experiments == {"trial_offer": "offer"}
    split = step.actions[0]
    assert split.kind == "split" and split.idempotency_key.endswith("/enter:welcome/0")
    assert split.args == {
        "experiment": "trial_offer",
        "arms": {"offer": 50, "holdout": 50},
        "arm": "offer",
        "enrollment": 1,
        "assigned_at": "2025-01-01T00:00:00Z",
    }
    kinds = [(a.kind, a.args.get("template")) for a in step.actions]
    assert kinds == [
        ("split", None),
        ("send", "welcome"),
        ("send", "nudge"),
        ("task", None),
        ("tag", None),
    ]
    assert all("when" not in a.args for a in step.actions)


def test_the_holdout_gets_no_message_but_is_tracked_like_the_others(tmp_path: Path):
    cat = catalog_of(tmp_path, TRIAL)
    step = handle_event(cat, customer(HELD), ev("signed_up"), T0)
    run = step.state.runs["trial"]
    assert run.arm == HOLDOUT
    # staff tasks and tags still happen; both sends (and the later thanks) are withheld
    assert [a.kind for a in step.actions] == ["split", "task", "tag"]
    assert run.withheld == 1  # the welcome's when: was false, so only the nudge was withheld
    assert step.state.customer.tags == ["trial_started"]
    later = handle_event(cat, step.state, ev("order_completed", T0 + DAY, revenue=12), T0 + DAY)
    assert [a.kind for a in later.actions] == ["convert"]
    assert later.state.runs["trial"].state == "bought"
    assert later.state.runs["trial"].withheld == 2
    shown = markdown(later.state)
    assert "experiment trial_offer: arm `holdout`" in shown
    assert "holdout: no messages from this journey (2 withheld)" in shown
    assert "converted 2025-01-02 00:00 UTC" in shown


# a message for everyone before the split (in the state before it), as docs/journeys.md says
GREETED = TRIAL.replace("start: welcome", "start: hello").replace(
    "  welcome:\n",
    "  hello:\n    enter: [{send: {template: hello}}]\n    on: {confirmed: welcome}\n  welcome:\n",
)


def test_the_holdout_gets_messages_before_the_split_only_in_its_first_run(tmp_path: Path):
    cat = catalog_of(tmp_path, GREETED)
    first = handle_event(cat, customer(HELD), ev("signed_up"), T0)
    assert [a.args.get("template") for a in first.actions] == ["hello"]  # no arm yet
    state = handle_event(cat, first.state, ev("confirmed", T0 + DAY), T0 + DAY).state
    state = handle_event(cat, state, ev("left", T0 + 2 * DAY), T0 + 2 * DAY).state
    assert state.experiments == {"trial_offer": HOLDOUT}
    # enrolled again: known to be in the holdout, so not even the hello reaches them
    again = handle_event(cat, state, ev("signed_up", T0 + 3 * DAY), T0 + 3 * DAY)
    run = again.state.runs["trial"]
    assert (run.enrollment, run.state, run.arm, run.withheld) == (2, "hello", None, 1)
    assert again.actions == []
    offered = handle_event(cat, customer(OFFERED), ev("signed_up"), T0).state
    offered = handle_event(cat, offered, ev("confirmed", T0 + DAY), T0 + DAY).state
    offered = handle_event(cat, offered, ev("left", T0 + 2 * DAY), T0 + 2 * DAY).state
    kept = handle_event(cat, offered, ev("signed_up", T0 + 3 * DAY), T0 + 3 * DAY)
    assert [a.args.get("template") for a in kept.actions] == ["hello"]


def test_the_arm_is_sticky_across_re_enrolment_and_an_upgrade_to_other_weights(tmp_path: Path):
    v1 = load_one(tmp_path, TRIAL)
    # weights that would put this customer in the other arm if asked again
    heavy = {"offer": 1, "holdout": 99}
    moved = next(c for c in ids_in("offer", n=50) if assign("trial_offer", heavy, c) == HOLDOUT)
    v2 = load_one(tmp_path, TRIAL.replace("{offer: 50, holdout: 50}", "{offer: 1, holdout: 99}"))
    cat1 = Catalog.of([v1])
    state = handle_event(cat1, customer(moved), ev("signed_up"), T0).state
    state = handle_event(cat1, state, ev("left", T0 + DAY), T0 + DAY).state
    cat2 = Catalog(
        versions={
            "trial@1": v1.model_copy(update={"version": 1}),
            "trial@2": v2.model_copy(update={"version": 2}),
        },
        latest={"trial": 2},
        floor={"trial": 2},
    )
    again = handle_event(cat2, state, ev("signed_up", T0 + 2 * DAY), T0 + 2 * DAY)
    run = again.state.runs["trial"]
    assert (run.version, run.enrollment, run.arm) == (2, 2, "offer")
    assert run.split_at == T0 + 2 * DAY  # this run's window starts at its own split
    # an active run upgraded in place keeps its arm too
    state = handle_event(cat1, customer(moved), ev("signed_up"), T0).state
    upgraded = upgrade(cat2, state, T0 + DAY).state.runs["trial"]
    assert (upgraded.version, upgraded.arm) == (2, "offer")


def test_ctx_arm_and_experiment_name_read_the_arm_in_any_journey(tmp_path: Path):
    cat = catalog_of(tmp_path, TRIAL, READER)
    # z_reader enrols on the same signed_up, after trial (name order) split the customer
    held = handle_event(cat, customer(HELD), ev("signed_up"), T0).state
    assert handle_event(cat, held, ev("ping"), T0).state.runs["z_reader"].state == "held"
    offered = handle_event(cat, customer(OFFERED), ev("signed_up"), T0).state
    assert handle_event(cat, offered, ev("ping"), T0).state.runs["z_reader"].state == "split"
    alone = catalog_of(tmp_path, READER, TRIAL.replace("signed_up]", "joined]"))
    unsplit = handle_event(alone, customer(HELD), ev("signed_up"), T0).state
    assert handle_event(alone, unsplit, ev("ping"), T0).state.runs["z_reader"].state == "unsplit"


def test_a_failing_when_on_an_action_is_a_problem_and_the_action_is_skipped(tmp_path: Path):
    journey = """
    journey: w
    enroll: {on: [signed_up]}
    start: s
    states:
      s:
        enter:
          - send: {template: a, when: 'event.properties.plan == "pro"'}
          - send: {template: b}
        on:
          left: done
      done: {final: true}
    """
    cat = catalog_of(tmp_path, journey)
    step = handle_event(cat, customer(), ev("signed_up"), T0)
    assert [a.args["template"] for a in step.actions] == ["b"]
    assert "plan" in step.state.problems[0].message
    pro = handle_event(cat, customer(), ev("signed_up", plan="pro"), T0)
    assert [a.args["template"] for a in pro.actions] == ["a", "b"]


def test_journeys_without_the_new_keys_keep_their_digests(tmp_path: Path):
    journey = load_one(tmp_path, READER.replace("experiment.trial_offer", "ctx.arm"))
    body = journey.model_dump(mode="json")
    assert "goal" not in body and "exit_on_goal" not in body
    assert digest(journey) == digest(journey.model_copy(update={"goal": None}))
    with_when = load_one(tmp_path, TRIAL)
    enter = with_when.model_dump(mode="json")["states"]["welcome"]["enter"]
    assert "when" in enter[1]["send"] and "when" not in enter[2]["send"]


# --- goals -------------------------------------------------------------------------------


def _enrolled(cat: Catalog, cid: str = OFFERED):
    return handle_event(cat, customer(cid), ev("signed_up"), T0).state


def test_the_goal_window_is_closed_at_both_ends_and_counts_once(tmp_path: Path):
    cat = catalog_of(tmp_path, TRIAL)
    state = _enrolled(cat)
    edge = T0 + timedelta(days=10)
    late = handle_event(cat, state, ev("order_completed", revenue=5), edge + timedelta(seconds=1))
    assert [a.kind for a in late.actions] == ["send"] and late.state.runs[
        "trial"
    ].converted_at is None
    on_edge = handle_event(cat, state, ev("order_completed", revenue=5), edge)
    (convert,) = [a for a in on_edge.actions if a.kind == "convert"]
    assert convert.idempotency_key == f"{OFFERED}/trial/1/goal"
    assert convert.args["started_at"] == "2025-01-01T00:00:00Z"
    assert convert.args["converted_at"] == "2025-01-11T00:00:00Z"
    assert (convert.args["arm"], convert.args["experiment"], convert.args["revenue"]) == (
        "offer",
        "trial_offer",
        5.0,
    )
    # the run completed (bought), yet a second order in the window is no second conversion
    again = handle_event(cat, on_edge.state, ev("order_completed", revenue=9), edge)
    assert [a.kind for a in again.actions] == []


def test_the_enrolling_event_never_converts(tmp_path: Path):
    enrolling = TRIAL.replace("on: [signed_up]", "on: [signed_up, order_completed]")
    cat = catalog_of(tmp_path, enrolling)
    step = handle_event(cat, customer(OFFERED), ev("order_completed", revenue=50), T0)
    assert "convert" not in [a.kind for a in step.actions]
    assert step.state.runs["trial"].converted_at is None


def test_a_completed_or_exited_run_still_converts_in_its_window(tmp_path: Path):
    cat = catalog_of(tmp_path, TRIAL)
    state = handle_event(cat, _enrolled(cat), ev("left", T0 + DAY), T0 + DAY).state
    assert state.runs["trial"].status == "completed"
    step = handle_event(cat, state, ev("order_completed", revenue=7), T0 + 2 * DAY)
    assert [a.kind for a in step.actions] == ["convert"]  # counted; nothing else happens


def test_goal_when_emitted_events_and_revenue(tmp_path: Path):
    emitter = """
    journey: a_emitter
    enroll: {on: [signed_up]}
    start: s
    states:
      s:
        on:
          bought: {do: [{emit: {event: order_completed, properties: {revenue: 3}}}], goto: d}
      d: {final: true}
    """
    cat = catalog_of(tmp_path, TRIAL, emitter)
    state = _enrolled(cat)
    free = handle_event(cat, state, ev("order_completed", revenue=0), T0 + DAY)
    assert "convert" not in [a.kind for a in free.actions]  # goal.when: revenue > 0
    emitted = handle_event(cat, state, ev("bought"), T0 + DAY)
    assert "convert" not in [a.kind for a in emitted.actions]  # only what the customer did
    assert revenue_of(ev("x", total="12.5")) == 12.5
    assert revenue_of(ev("x", revenue="n/a", total=4)) == 4.0
    assert revenue_of(ev("x")) == 0.0


def test_exit_on_goal_ends_the_run_before_the_states_rules(tmp_path: Path):
    cat = catalog_of(tmp_path, EXITING)
    step = handle_event(cat, _enrolled(cat), ev("order_completed", revenue=20), T0 + DAY)
    run = step.state.runs["trial"]
    assert (run.status, run.state) == ("exited", "welcome")
    assert run.history[-1].cause == "goal"
    assert [a.kind for a in step.actions] == ["convert"]  # not the thanks of on: rules
    # a timer after the exit does nothing
    assert fire_timers(cat, step.state, T0 + 40 * DAY).actions == []


def test_a_run_in_an_experiment_counts_from_its_split(tmp_path: Path):
    later = TRIAL.replace("start: welcome", "start: waiting").replace(
        "states:\n", "states:\n  waiting:\n    on:\n      activated: welcome\n"
    )
    cat = catalog_of(tmp_path, later)
    state = handle_event(cat, customer(OFFERED), ev("signed_up"), T0).state
    state = handle_event(cat, state, ev("activated"), T0 + 5 * DAY).state
    assert state.runs["trial"].split_at == T0 + 5 * DAY
    # 12 days after enrolment, 7 after the split: inside the split's 10-day window
    step = handle_event(cat, state, ev("order_completed", revenue=1), T0 + 12 * DAY)
    (convert,) = [a for a in step.actions if a.kind == "convert"]
    assert convert.args["started_at"] == "2025-01-06T00:00:00Z"

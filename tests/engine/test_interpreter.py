"""The pure interpreter (engine.machine), one test per rule of its semantics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine._errors import MoveError
from engine.catalog import Catalog
from engine.loader import load_rules
from engine.machine import (
    MAX_CONTEXT_BYTES,
    MAX_EMIT_DEPTH,
    MAX_PROBLEMS,
    fire_timers,
    handle_event,
    journeys_attribute,
    move,
    next_due,
    upgrade,
)
from engine.model import CustomerState
from tests.engine.support import (
    DAY,
    HOUR,
    ROOT,
    T0,
    Trace,
    catalog_of,
    customer,
    ev,
    load_one,
    two_versions,
)

SHOP = """
journey: shop
enroll:
  on: [signed_up]
start: new
states:
  new:
    on:
      order_completed: done
  done:
    final: true
"""


@pytest.fixture
def shipped(monkeypatch: pytest.MonkeyPatch) -> Catalog:
    monkeypatch.chdir(ROOT)
    return Catalog.of(load_rules("rules", "templates"))


def dump(state) -> dict:
    return state.model_dump(mode="json")


# --- event names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Order Completed", "order-completed", "OrderCompleted", "order_completed"]
)
def test_event_names_are_normalised_to_snake_case_before_matching(tmp_path: Path, name: str):
    cat = catalog_of(tmp_path, SHOP)
    t = Trace(customer())
    t.deliver(cat, ev("Signed Up"))
    t.deliver(cat, ev(name, T0 + HOUR))
    run = t.state.runs["shop"]
    assert (run.state, run.status) == ("done", "completed")
    assert t.transitions[-1].cause == "event:order_completed"


def test_event_names_written_as_yaml_keys_are_normalised_too(tmp_path: Path):
    cat = catalog_of(
        tmp_path,
        """
        journey: shop
        enroll:
          on: [Signed Up]
        start: new
        states:
          new:
            on:
              Order Completed: done
          done:
            final: true
        """,
    )
    t = Trace(customer())
    t.deliver(cat, ev("signed_up"))
    t.deliver(cat, ev("order-completed", T0 + HOUR))
    assert t.state.runs["shop"].state == "done"


# --- enrolment ---------------------------------------------------------------------------


def test_only_events_under_enroll_on_enrol(tmp_path: Path):
    cat = catalog_of(tmp_path, SHOP)
    # order_completed has rules in the start state, but it does not enrol
    step = handle_event(cat, customer(), ev("order_completed"), T0)
    assert step.state.runs == {}
    assert step.transitions == []
    step = handle_event(cat, step.state, ev("signed_up", T0 + HOUR), T0 + HOUR)
    run = step.state.runs["shop"]
    assert (run.state, run.status, run.enrollment, run.enrolled_at) == (
        "new",
        "active",
        1,
        T0 + HOUR,
    )
    assert [(r.from_state, r.to_state, r.cause) for r in step.transitions] == [
        (None, "new", "enroll:signed_up")
    ]


def test_enroll_when_false_does_not_enrol(tmp_path: Path):
    cat = catalog_of(
        tmp_path,
        SHOP.replace(
            "on: [signed_up]", "on: [signed_up]\n  when: 'event.properties.plan == \"pro\"'"
        ),
    )
    step = handle_event(cat, customer(), ev("signed_up", plan="free"), T0)
    assert step.state.runs == {}
    assert step.state.problems == []
    step = handle_event(cat, step.state, ev("signed_up", plan="pro"), T0)
    assert step.state.runs["shop"].state == "new"


def test_enroll_when_that_fails_on_a_missing_property_does_not_enrol_and_records_a_problem(
    tmp_path: Path,
):
    cat = catalog_of(
        tmp_path,
        SHOP.replace(
            "on: [signed_up]", "on: [signed_up]\n  when: 'event.properties.plan == \"pro\"'"
        ),
    )
    step = handle_event(cat, customer(), ev("signed_up"), T0)
    assert step.state.runs == {}
    assert step.actions == [] and step.transitions == []
    (problem,) = step.state.problems
    assert (problem.journey, problem.state, problem.at) == ("shop", "new", T0)
    assert problem.message == (
        "'event.properties.plan == \"pro\"': no field 'plan' (guard it with has(...) or a ternary)"
    )


def test_an_active_run_is_not_enrolled_again(tmp_path: Path):
    cat = catalog_of(
        tmp_path,
        """
        journey: j
        enroll: {on: [signed_up], reenter: after_exit}
        start: s
        states:
          s:
            enter: [{send: {template: welcome}}]
            on: {bye: done}
          done: {final: true}
        """,
    )
    t = Trace(customer())
    t.deliver(cat, ev("signed_up"))
    t.deliver(cat, ev("signed_up", T0 + HOUR))
    run = t.state.runs["j"]
    assert (run.enrollment, run.visit, run.entered_at) == (1, 1, T0)
    assert t.keys() == ["c1/j/1/1/enter:s/0"]


REENTER = """
journey: j
enroll: {on: [signed_up], reenter: %s}
exit_when: 'event.name == "unsubscribed"'
context: {n: 0}
start: s
states:
  s:
    enter: [{send: {template: welcome}}]
    on:
      bump: {set: {n: 'ctx.n + 1'}}
      bye: done
  done: {final: true}
"""


def test_reenter_never_ignores_enrolling_events_after_completion(tmp_path: Path):
    cat = catalog_of(tmp_path, REENTER % "never")
    t = Trace(customer())
    t.deliver(cat, ev("signed_up"))
    t.deliver(cat, ev("bye", T0 + HOUR))
    step = t.deliver(cat, ev("signed_up", T0 + 2 * HOUR))
    assert step.transitions == [] and step.actions == []
    run = t.state.runs["j"]
    assert (run.status, run.state, run.enrollment) == ("completed", "done", 1)


def test_reenter_never_ignores_enrolling_events_after_exit_when(tmp_path: Path):
    cat = catalog_of(tmp_path, REENTER % "never")
    t = Trace(customer())
    t.deliver(cat, ev("signed_up"))
    t.deliver(cat, ev("unsubscribed", T0 + HOUR))
    step = t.deliver(cat, ev("signed_up", T0 + 2 * HOUR))
    assert step.transitions == []
    assert (t.state.runs["j"].status, t.state.runs["j"].enrollment) == ("exited", 1)


def test_reenter_after_exit_starts_a_new_enrollment_after_completion(tmp_path: Path):
    cat = catalog_of(tmp_path, REENTER % "after_exit")
    t = Trace(customer())
    t.deliver(cat, ev("signed_up"))
    t.deliver(cat, ev("bump", T0 + HOUR))
    assert t.state.runs["j"].context == {"n": 1}
    t.deliver(cat, ev("bye", T0 + 2 * HOUR))
    step = t.deliver(cat, ev("signed_up", T0 + 3 * HOUR))
    run = t.state.runs["j"]
    assert (run.status, run.state, run.enrollment, run.visit) == ("active", "s", 2, 1)
    assert run.context == {"n": 0}  # fresh context
    assert run.enrolled_at == T0 + 3 * HOUR
    assert [a.idempotency_key for a in step.actions] == ["c1/j/2/1/enter:s/0"]
    assert t.keys() == ["c1/j/1/1/enter:s/0", "c1/j/2/1/enter:s/0"]


def test_reenter_after_exit_starts_a_new_enrollment_after_exit_when(tmp_path: Path):
    cat = catalog_of(tmp_path, REENTER % "after_exit")
    t = Trace(customer())
    t.deliver(cat, ev("signed_up"))
    t.deliver(cat, ev("unsubscribed", T0 + HOUR))
    assert t.state.runs["j"].status == "exited"
    t.deliver(cat, ev("signed_up", T0 + 2 * HOUR))
    run = t.state.runs["j"]
    assert (run.status, run.state, run.enrollment) == ("active", "s", 2)
    assert t.keys() == ["c1/j/1/1/enter:s/0", "c1/j/2/1/enter:s/0"]


def test_enrolling_event_also_runs_the_start_states_rules(tmp_path: Path):
    cat = catalog_of(
        tmp_path,
        """
        journey: j
        enroll: {on: [order_completed]}
        context: {orders: 0}
        start: new
        states:
          new:
            on:
              order_completed:
                - set: {orders: 'ctx.orders + 1'}
                - when: 'ctx.orders >= 2'
                  goto: loyal
          loyal: {final: true}
        """,
    )
    t = Trace(customer())
    t.deliver(cat, ev("order_completed"))
    assert t.state.runs["j"].context == {"orders": 1}  # the first order counts
    t.deliver(cat, ev("order_completed", T0 + HOUR))
    assert t.state.runs["j"].state == "loyal"
    assert [(r.from_state, r.to_state, r.cause) for r in t.transitions] == [
        (None, "new", "enroll:order_completed"),
        ("new", "loyal", "event:order_completed"),
    ]


# --- exit_when ---------------------------------------------------------------------------

EXITING = """
journey: j
enroll: {on: [signed_up]}
exit_when: 'event.name == "unsubscribed"'
start: a
states:
  a:
    on:
      next: b
      unsubscribed: {do: [{tag: should_not_run}], goto: done}
    after: {1d: b}
  b:
    on:
      unsubscribed: {do: [{tag: should_not_run}], goto: done}
    after: {5d: done}
  done: {final: true}
"""


@pytest.mark.parametrize("where", ["a", "b"])
def test_exit_when_ends_the_run_from_any_state_before_state_rules(tmp_path: Path, where: str):
    cat = catalog_of(tmp_path, EXITING)
    t = Trace(customer())
    t.deliver(cat, ev("signed_up"))
    if where == "b":
        t.deliver(cat, ev("next", T0 + HOUR))
    assert t.state.runs["j"].state == where
    step = t.deliver(cat, ev("unsubscribed", T0 + 2 * HOUR))
    run = t.state.runs["j"]
    assert (run.status, run.state, run.timers) == ("exited", where, [])
    assert step.actions == []  # the state's own unsubscribed rule did not run
    assert [(r.from_state, r.to_state, r.cause, r.key) for r in step.transitions] == [
        (where, "exited", "exit_when on unsubscribed", f"c1/j/1/{run.visit}/exit")
    ]
    assert next_due(t.state) is None
    assert journeys_attribute(t.state) == ["j:exited"]
    # nothing fires afterwards
    assert fire_timers(cat, t.state, T0 + 30 * DAY).transitions == []


# --- rules -------------------------------------------------------------------------------

RULES = """
journey: j
enroll: {on: [go]}
context: {n: 0, a: 1, b: 2}
start: s
states:
  s:
    on:
      count:
        - set: {n: 'ctx.n + 1'}
        - when: 'ctx.n == 1'
          do: [{tag: saw_one}]
        - when: 'ctx.n == 2'
          goto: two
      swap:
        set: {a: 'ctx.b', b: 'ctx.a'}
      pick:
        - when: 'false'
          goto: never
        - do: [{tag: first}]
        - when: 'event.properties.x > 0'
          do: [{tag: second}]
          goto: picked
        - do: [{tag: third}]
          goto: never
        - do: [{tag: fourth}]
      collect:
        - when: 'true'
          do: [{tag: one}]
        - when: 'false'
          do: [{tag: skipped}]
        - do: [{tag: two}]
  two: {final: true}
  picked: {final: true}
  never: {final: true}
"""


def test_rules_run_top_to_bottom_and_later_rules_see_set_values(tmp_path: Path):
    cat = catalog_of(tmp_path, RULES)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    step = t.deliver(cat, ev("count", T0 + HOUR, id="c1"))
    assert t.state.runs["j"].context["n"] == 1
    assert [a.args["add"] for a in step.actions] == [["saw_one"]]
    assert step.actions[0].idempotency_key == "c1/j/1/1/on:count:c1:1/0"
    assert t.state.runs["j"].state == "s"
    t.deliver(cat, ev("count", T0 + 2 * HOUR))
    assert t.state.runs["j"].state == "two"


def test_one_set_mapping_is_computed_from_the_context_before_the_rule(tmp_path: Path):
    cat = catalog_of(tmp_path, RULES)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    t.deliver(cat, ev("swap", T0 + HOUR))
    assert t.state.runs["j"].context == {"n": 0, "a": 2, "b": 1}


def test_first_matching_goto_wins_and_ends_the_evaluation(tmp_path: Path):
    cat = catalog_of(tmp_path, RULES)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    step = t.deliver(cat, ev("pick", T0 + HOUR, x=1))
    assert [a.args["add"] for a in step.actions] == [["first"], ["second"]]
    assert t.state.runs["j"].state == "picked"
    assert step.transitions[-1].cause == "event:pick"


def test_do_actions_of_matching_rules_without_goto_all_run(tmp_path: Path):
    cat = catalog_of(tmp_path, RULES)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    step = t.deliver(cat, ev("collect", T0 + HOUR, id="k"))
    assert [(a.args["add"], a.idempotency_key) for a in step.actions] == [
        (["one"], "c1/j/1/1/on:collect:k:0/0"),
        (["two"], "c1/j/1/1/on:collect:k:2/0"),
    ]
    assert t.state.runs["j"].state == "s"
    assert step.transitions == []


# --- re-entry and timers -----------------------------------------------------------------

LOOP = """
journey: j
enroll: {on: [go]}
start: s
states:
  s:
    enter: [{send: {template: welcome}}]
    on:
      again: s
      leave: t
    after:
      1d: {do: [{tag: waited}]}
      3d: t
  t:
    on:
      back: s
    after:
      2d: done
  done: {final: true}
"""


def test_goto_to_the_current_state_re_enters_it(tmp_path: Path):
    cat = catalog_of(tmp_path, LOOP)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    step = t.deliver(cat, ev("again", T0 + 12 * HOUR))
    run = t.state.runs["j"]
    assert (run.state, run.visit, run.entered_at) == ("s", 2, T0 + 12 * HOUR)
    assert [(r.from_state, r.to_state) for r in step.transitions] == [("s", "s")]
    # enter actions ran again, with a new idempotency key
    assert t.keys() == ["c1/j/1/1/enter:s/0", "c1/j/1/2/enter:s/0"]
    # timers restarted from the re-entry
    assert [(p.label, p.due_at) for p in run.timers] == [
        ("1d", T0 + 12 * HOUR + DAY),
        ("3d", T0 + 12 * HOUR + 3 * DAY),
    ]
    assert fire_timers(cat, t.state, T0 + DAY).actions == []


def test_timers_count_from_the_moment_the_state_was_entered(tmp_path: Path):
    cat = catalog_of(tmp_path, LOOP)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    t.deliver(cat, ev("leave", T0 + 5 * HOUR))
    assert next_due(t.state) == T0 + 5 * HOUR + 2 * DAY
    assert fire_timers(cat, t.state, T0 + 5 * HOUR + 2 * DAY - HOUR).transitions == []
    step = fire_timers(cat, t.state, T0 + 5 * HOUR + 2 * DAY)
    assert [(r.to_state, r.at, r.cause) for r in step.transitions] == [
        ("done", T0 + 5 * HOUR + 2 * DAY, "timer:2d")
    ]


def test_leaving_a_state_cancels_its_timers(tmp_path: Path):
    cat = catalog_of(tmp_path, LOOP)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    t.deliver(cat, ev("leave", T0 + HOUR))
    run = t.state.runs["j"]
    assert [p.label for p in run.timers] == ["2d"]
    # s's 1d timer (tag) and 3d timer were cancelled: nothing happens at T0 + 1d
    step = fire_timers(cat, t.state, T0 + DAY + HOUR)
    assert step.actions == [] and step.transitions == []


def test_a_timer_without_goto_fires_and_the_customer_stays(tmp_path: Path):
    cat = catalog_of(tmp_path, LOOP)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    step = t.timers(cat, T0 + DAY)
    run = t.state.runs["j"]
    assert [a.args["add"] for a in step.actions] == [["waited"]]
    assert step.actions[0].idempotency_key == "c1/j/1/1/after:1d:timer:1:1:1d:0/0"
    assert step.actions[0].event is None  # timer events are not attached to commands
    assert (run.state, run.visit, run.fired) == ("s", 1, [86400])
    assert [p.label for p in run.timers] == ["3d"]


def test_several_timers_fire_in_order_of_duration(tmp_path: Path):
    cat = catalog_of(
        tmp_path,
        """
        journey: j
        enroll: {on: [go]}
        start: s
        states:
          s:
            after:
              1w: {do: [{tag: week}]}
              1d12h: {do: [{tag: day_and_half}]}
              PT12H: {do: [{tag: half_day}]}
              3d: {do: [{tag: three_days}]}
              30d: done
          done: {final: true}
        """,
    )
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    assert [p.label for p in t.state.runs["j"].timers] == ["PT12H", "1d12h", "3d", "1w", "30d"]
    step = t.timers(cat, T0 + 60 * DAY)
    assert [a.args["add"][0] for a in step.actions] == [
        "half_day",
        "day_and_half",
        "three_days",
        "week",
    ]
    assert [r.at for r in step.transitions] == [T0 + 30 * DAY]
    assert t.state.runs["j"].status == "completed"


def test_a_late_timer_acts_at_its_due_time(tmp_path: Path):
    cat = catalog_of(
        tmp_path,
        """
        journey: j
        enroll: {on: [go]}
        start: s
        states:
          s:
            after:
              1d:
                - when: >-
                    event.name == "timer" && event.properties.after == "1d"
                    && now == timestamp("2025-01-02T00:00:00Z")
                  goto: on_time
                - goto: late
          on_time: {final: true}
          late: {final: true}
        """,
    )
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    step = t.timers(cat, T0 + 50 * DAY)
    assert t.state.runs["j"].state == "on_time"
    assert [(r.at, r.cause) for r in step.transitions] == [(T0 + DAY, "timer:1d")]
    assert t.state.problems == []


def test_late_timer_chains_keep_their_spacing(shipped: Catalog):
    t = Trace(customer())
    t.deliver(shipped, ev("signed_up"))
    step = t.timers(shipped, T0 + 100 * DAY)  # the first call after enrolment
    assert [(r.from_state, r.to_state, r.at, r.cause) for r in step.transitions] == [
        ("new", "dormant", T0 + 14 * DAY, "timer:14d"),
        ("dormant", "lost", T0 + 44 * DAY, "timer:30d"),
    ]
    assert [(a.kind, a.idempotency_key) for a in step.actions] == [
        ("offer", "c1/lifecycle/1/2/enter:dormant/0")
    ]
    run = t.state.runs["lifecycle"]
    assert (run.state, run.status, run.entered_at) == ("lost", "completed", T0 + 44 * DAY)
    assert next_due(t.state) is None


def test_next_due_is_the_earliest_timer_of_active_runs(shipped: Catalog):
    state = customer()
    assert next_due(state) is None
    state = handle_event(shipped, state, ev("signed_up"), T0).state
    state = handle_event(shipped, state, ev("lead_created", T0 + HOUR), T0 + HOUR).state
    assert next_due(state) == T0 + HOUR + 3 * DAY  # lead_followup's 3d, before lifecycle's 14d
    state = handle_event(shipped, state, ev("lead_replied", T0 + 2 * HOUR), T0 + 2 * HOUR).state
    assert next_due(state) == T0 + 14 * DAY


def test_entering_a_final_state_completes_the_run(tmp_path: Path):
    cat = catalog_of(tmp_path, SHOP)
    t = Trace(customer())
    t.deliver(cat, ev("signed_up"))
    t.deliver(cat, ev("order_completed", T0 + HOUR))
    run = t.state.runs["shop"]
    assert (run.state, run.status, run.timers) == ("done", "completed", [])
    assert journeys_attribute(t.state) == ["shop:done"]
    step = t.deliver(cat, ev("order_completed", T0 + 2 * HOUR))
    assert step.transitions == [] and step.actions == []


# --- duplicates --------------------------------------------------------------------------


def test_a_duplicate_event_id_is_a_no_op(shipped: Catalog):
    first = handle_event(shipped, customer(), ev("signed_up", id="m1"), T0)
    assert not first.duplicate and first.changed
    again = handle_event(shipped, first.state, ev("Order Completed", id="m1", revenue=9000), T0)
    assert again.duplicate is True
    assert again.actions == [] and again.transitions == [] and not again.changed
    assert dump(again.state) == dump(first.state)


def test_a_duplicate_is_recognised_after_many_other_events(shipped: Catalog):
    t = Trace(customer())
    t.deliver(shipped, ev("Order Completed", id="first", revenue=10))
    for i in range(300):
        t.deliver(shipped, ev("page_viewed", T0 + i * HOUR / 10, id=f"p{i}"))
    before = dump(t.state)
    step = handle_event(
        shipped, t.state, ev("Order Completed", T0 + 31 * HOUR, id="first"), T0 + 31 * HOUR
    )
    assert step.duplicate is True
    assert dump(step.state) == before


def test_event_ids_older_than_the_dedupe_window_are_forgotten(tmp_path: Path):
    cat = catalog_of(
        tmp_path,
        """
        journey: j
        enroll: {on: [go]}
        context: {n: 0}
        start: s
        states:
          s:
            on:
              bump: {set: {n: 'ctx.n + 1'}}
              stop: done
          done: {final: true}
        """,
    )
    t = Trace(customer())
    t.deliver(cat, ev("go", id="go"))
    t.deliver(cat, ev("bump", T0, id="b1"))
    # within the window: still a duplicate
    assert t.deliver(cat, ev("bump", T0 + 6 * DAY, id="b1")).duplicate
    t.deliver(cat, ev("bump", T0 + 6 * DAY, id="b2"))
    assert set(t.state.seen) == {"go", "b1", "b2"}
    # eight days later, another event prunes ids older than seven days
    t.deliver(cat, ev("bump", T0 + 8 * DAY, id="b3"))
    assert set(t.state.seen) == {"b2", "b3"}
    step = t.deliver(cat, ev("bump", T0 + 8 * DAY, id="b1"))
    assert not step.duplicate
    assert t.state.runs["j"].context == {"n": 4}


# --- run-time CEL errors -----------------------------------------------------------------

FRAGILE = """
journey: j
enroll: {on: [go]}
context: {n: 0, total: 0.0, label: "", blob: ""}
start: s
states:
  s:
    on:
      order:
        - when: 'event.properties.revenue > 100'
          goto: big
        - goto: small
      flag:
        - when: 'event.properties.flag'
          goto: big
      put:
        - set: {n: 'event.properties.v'}
          goto: big
      put_total:
        - set: {total: 'event.properties.v'}
      put_two:
        - set: {label: '"changed"', n: 'event.properties.v'}
      store:
        - set: {blob: 'event.properties.blob'}
        - when: 'size(ctx.blob) > 0'
          goto: big
  big: {final: true}
  small: {final: true}
"""


def test_a_runtime_cel_error_makes_the_rule_not_match_and_is_recorded(tmp_path: Path):
    cat = catalog_of(tmp_path, FRAGILE)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    t.deliver(cat, ev("order", T0 + HOUR))  # no revenue property
    assert t.state.runs["j"].state == "small"
    (problem,) = t.state.problems
    assert (problem.journey, problem.state, problem.at) == ("j", "s", T0 + HOUR)
    assert problem.message == (
        "'event.properties.revenue > 100': no field 'revenue' (guard it with has(...) or a ternary)"
    )


def test_a_condition_that_is_not_a_bool_at_run_time_does_not_match(tmp_path: Path):
    cat = catalog_of(tmp_path, FRAGILE)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    t.deliver(cat, ev("flag", T0 + HOUR, flag="yes"))
    assert t.state.runs["j"].state == "s"
    assert [p.message for p in t.state.problems] == [
        "'event.properties.flag' gave 'yes', not true or false"
    ]


def test_problems_are_bounded_to_the_most_recent_twenty(tmp_path: Path):
    cat = catalog_of(tmp_path, FRAGILE)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    for i in range(MAX_PROBLEMS + 5):
        t.deliver(cat, ev("flag", T0 + i * HOUR, flag=i))
    assert MAX_PROBLEMS == 20
    assert len(t.state.problems) == 20
    assert [p.at for p in t.state.problems] == [T0 + i * HOUR for i in range(5, 25)]
    assert t.state.problems[-1].message == "'event.properties.flag' gave 24, not true or false"


def test_set_refuses_a_value_of_another_type(tmp_path: Path):
    cat = catalog_of(tmp_path, FRAGILE)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    step = t.deliver(cat, ev("put", T0 + HOUR, v="seven"))
    run = t.state.runs["j"]
    assert run.context["n"] == 0
    assert run.state == "s"  # the rule's goto was not taken
    assert step.transitions == []
    assert [p.message for p in t.state.problems] == [
        "set n: 'event.properties.v' gave str, but ctx.n holds int"
    ]


def test_a_refused_set_changes_none_of_its_variables(tmp_path: Path):
    cat = catalog_of(tmp_path, FRAGILE)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    t.deliver(cat, ev("put_two", T0 + HOUR, v=1.5))
    assert t.state.runs["j"].context == {"n": 0, "total": 0.0, "label": "", "blob": ""}
    assert len(t.state.problems) == 1


def test_set_converts_an_int_into_a_double_variable(tmp_path: Path):
    cat = catalog_of(tmp_path, FRAGILE)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    t.deliver(cat, ev("put_total", T0 + HOUR, v=3))
    total = t.state.runs["j"].context["total"]
    assert total == 3.0 and type(total) is float
    assert t.state.problems == []


def test_set_refuses_to_grow_the_context_over_its_size_limit(tmp_path: Path):
    cat = catalog_of(tmp_path, FRAGILE)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    t.deliver(cat, ev("store", T0 + HOUR, blob="x" * (MAX_CONTEXT_BYTES + 10)))
    run = t.state.runs["j"]
    assert (run.state, run.context["blob"]) == ("s", "")
    (problem,) = t.state.problems
    assert "over the 16384 limit" in problem.message
    # a value that fits is stored
    t.deliver(cat, ev("store", T0 + 2 * HOUR, blob="x" * 100))
    assert t.state.runs["j"].state == "big"
    assert t.state.runs["j"].context["blob"] == "x" * 100


def test_set_keeps_the_context_json_serialisable(shipped: Catalog):
    step = handle_event(shipped, customer(), ev("Order Completed", revenue="NaN"), T0)
    context = step.state.runs["lifecycle"].context
    json.dumps(context, allow_nan=False)
    back = CustomerState.model_validate_json(step.state.model_dump_json())
    assert back.runs["lifecycle"].context == context


def test_a_null_argument_is_not_reported_as_an_undefined_function(shipped: Catalog):
    step = handle_event(shipped, customer(), ev("Order Completed", revenue=None), T0)
    (problem,) = step.state.problems
    assert problem.message.startswith("set spent: 'ctx.spent + double(event.properties.revenue)'")
    assert "Undefined variable or function" not in problem.message


# --- emit --------------------------------------------------------------------------------

EMITTER = """
journey: a
enroll: {on: [go]}
start: s
states:
  s:
    enter: [{emit: {event: Ping, properties: {source: a}}}]
    on:
      ping: pinged
      stop: pinged
  pinged: {final: true}
"""
LISTENER = """
journey: b
enroll: {on: [go]}
context: {source: ""}
start: s
states:
  s:
    on:
      ping: {set: {source: 'event.properties.source'}, goto: got}
  got: {final: true}
"""
ENROLLED_BY_EMIT = """
journey: c
enroll: {on: [ping]}
start: s
states:
  s:
    on: {stop: done}
  done: {final: true}
"""


def test_emit_reaches_the_other_journeys_but_not_the_emitter(tmp_path: Path):
    cat = catalog_of(tmp_path, EMITTER, LISTENER, ENROLLED_BY_EMIT)
    step = handle_event(cat, customer(), ev("go"), T0)
    runs = step.state.runs
    assert runs["a"].state == "s"  # its own ping did not move it
    # b was enrolled by go (after a had emitted), so ping was delivered after go was done
    assert (runs["b"].state, runs["b"].context) == ("got", {"source": "a"})
    assert runs["c"].state == "s"
    assert [(r.journey, r.from_state, r.to_state, r.cause) for r in step.transitions] == [
        ("a", None, "s", "enroll:go"),
        ("b", None, "s", "enroll:go"),
        ("b", "s", "got", "emit:ping from a"),
        ("c", None, "s", "enroll:ping"),
    ]
    assert step.actions == []  # emit is not an activity


PING = """
journey: a
enroll: {on: [go]}
context: {n: 0}
start: s
states:
  s:
    enter: [{emit: {event: ping}}]
    on:
      pong: {set: {n: 'ctx.n + 1'}, do: [{emit: {event: ping}}]}
      stop: done
    after:
      1d: {do: [{emit: {event: ping}}]}
      2d: {do: [{emit: {event: ping}}]}
      3d: done
  done: {final: true}
"""
PONG = """
journey: b
enroll: {on: [ping]}
context: {n: 0}
start: s
states:
  s:
    on:
      ping: {set: {n: 'ctx.n + 1'}, do: [{emit: {event: pong}}]}
      stop: done
  done: {final: true}
"""


def test_an_emit_loop_between_two_journeys_stops_at_max_emit_depth(tmp_path: Path):
    cat = catalog_of(tmp_path, PING, PONG)
    step = handle_event(cat, customer(), ev("go"), T0)
    assert MAX_EMIT_DEPTH == 8
    # 8 emits delivered: 4 pings to b, 4 pongs to a; the 9th is cut
    assert step.state.runs["a"].context == {"n": 4}
    assert step.state.runs["b"].context == {"n": 4}
    (problem,) = step.state.problems
    assert problem.journey == "a"
    assert problem.message == (
        "emit ping: more than 8 emits in a chain (a loop between journeys?); not delivered"
    )


def test_emit_depth_starts_from_zero_for_each_timer_even_when_fired_late(tmp_path: Path):
    cat = catalog_of(tmp_path, PING, PONG)
    start = handle_event(cat, customer(), ev("go"), T0).state
    on_time = fire_timers(cat, start, T0 + DAY).state
    on_time = fire_timers(cat, on_time, T0 + 2 * DAY).state
    late = fire_timers(cat, start, T0 + 2 * DAY).state
    assert on_time.runs["a"].context == {"n": 12}
    assert late.runs["a"].context == on_time.runs["a"].context
    assert late.runs["b"].context == on_time.runs["b"].context


# --- idempotency keys --------------------------------------------------------------------

KEYS = """
journey: j
enroll: {on: [go], reenter: after_exit}
start: s
states:
  s:
    enter:
      - send: {template: welcome}
      - tag: entered
    on:
      again: s
      act: {do: [{tag: acted}, {tag: acted_again}]}
      bye: done
    after:
      1d: {do: [{tag: timer}]}
      5d: done
  done: {final: true}
"""


def _key_scenario(cat: Catalog, cid: str) -> Trace:
    t = Trace(customer(cid))
    t.deliver(cat, ev("go", id="g1"))
    t.deliver(cat, ev("act", T0 + HOUR, id="a1"))
    t.deliver(cat, ev("act", T0 + 2 * HOUR, id="a2"))
    t.timers(cat, T0 + DAY)
    t.deliver(cat, ev("again", T0 + 30 * HOUR, id="x1"))
    t.deliver(cat, ev("act", T0 + 31 * HOUR, id="a1b"))
    t.deliver(cat, ev("bye", T0 + 32 * HOUR, id="b1"))
    t.deliver(cat, ev("go", T0 + 33 * HOUR, id="g2"))
    t.deliver(cat, ev("act", T0 + 34 * HOUR, id="a1c"))
    return t


def test_idempotency_keys_are_deterministic(tmp_path: Path):
    cat = catalog_of(tmp_path, KEYS)
    assert _key_scenario(cat, "c1").keys() == _key_scenario(cat, "c1").keys()


def test_idempotency_keys_are_unique_per_customer_journey_enrollment_visit_where_index(
    tmp_path: Path,
):
    cat = catalog_of(tmp_path, KEYS)
    keys = _key_scenario(cat, "c1").keys()
    assert keys == [
        "c1/j/1/1/enter:s/0",
        "c1/j/1/1/enter:s/1",
        "c1/j/1/1/on:act:a1:0/0",
        "c1/j/1/1/on:act:a1:0/1",
        "c1/j/1/1/on:act:a2:0/0",
        "c1/j/1/1/on:act:a2:0/1",
        "c1/j/1/1/after:1d:timer:1:1:1d:0/0",
        "c1/j/1/2/enter:s/0",
        "c1/j/1/2/enter:s/1",
        "c1/j/1/2/on:act:a1b:0/0",
        "c1/j/1/2/on:act:a1b:0/1",
        "c1/j/2/1/enter:s/0",
        "c1/j/2/1/enter:s/1",
        "c1/j/2/1/on:act:a1c:0/0",
        "c1/j/2/1/on:act:a1c:0/1",
    ]
    other = _key_scenario(cat, "c2").keys()
    assert len(set(keys) | set(other)) == 2 * len(keys)


# --- journeys attribute ------------------------------------------------------------------


def test_journeys_attribute_shows_each_runs_state_or_exited(shipped: Catalog):
    t = Trace(customer())
    t.deliver(shipped, ev("signed_up"))
    t.deliver(shipped, ev("lead_created", T0 + HOUR))
    t.deliver(shipped, ev("order_delivered", T0 + HOUR))
    t.deliver(shipped, ev("lead_replied", T0 + 2 * HOUR))
    t.deliver(shipped, ev("unsubscribed", T0 + 3 * HOUR))
    assert journeys_attribute(t.state) == [
        "lead_followup:engaged",
        "lifecycle:exited",
        "nps:delivered",
    ]


# --- move --------------------------------------------------------------------------------


def test_move_enrols_a_customer_who_is_not_in_the_journey(shipped: Catalog):
    state = customer()
    step = move(shipped, state, "lifecycle", "vip", "big client from the fair", T0)
    run = step.state.runs["lifecycle"]
    assert (run.state, run.status, run.enrollment, run.visit) == ("vip", "active", 1, 1)
    assert [(r.from_state, r.to_state, r.cause) for r in step.transitions] == [
        (None, "vip", "admin: big client from the fair")
    ]
    assert run.history[-1].cause == "admin: big client from the fair"
    assert [a.kind for a in step.actions] == ["assign_manager", "send"]
    assert [p.label for p in run.timers] == ["90d"]
    assert state.runs == {}  # the input is not changed


def test_move_moves_an_active_run_and_runs_enter_actions(shipped: Catalog):
    state = handle_event(shipped, customer(), ev("signed_up"), T0).state
    step = move(shipped, state, "lifecycle", "dormant", "asked to be left alone", T0 + DAY)
    run = step.state.runs["lifecycle"]
    assert (run.state, run.visit, run.entered_at) == ("dormant", 2, T0 + DAY)
    assert [(r.from_state, r.to_state, r.cause) for r in step.transitions] == [
        ("new", "dormant", "admin: asked to be left alone")
    ]
    assert [(a.kind, a.idempotency_key) for a in step.actions] == [
        ("offer", "c1/lifecycle/1/2/enter:dormant/0")
    ]
    assert next_due(step.state) == T0 + DAY + 30 * DAY


def test_move_to_a_final_state_completes_the_run(shipped: Catalog):
    state = handle_event(shipped, customer(), ev("signed_up"), T0).state
    step = move(shipped, state, "lifecycle", "lost", "closed the account", T0 + DAY)
    assert step.state.runs["lifecycle"].status == "completed"
    assert journeys_attribute(step.state) == ["lifecycle:lost"]


@pytest.mark.parametrize("reason", ["", "   "])
def test_move_refuses_an_empty_reason(shipped: Catalog, reason: str):
    with pytest.raises(MoveError) as exc:
        move(shipped, customer(), "lifecycle", "vip", reason, T0)
    assert str(exc.value) == "give a reason for the move; it is recorded in the journey's history"


def test_move_refuses_an_unknown_journey_and_lists_the_journeys(shipped: Catalog):
    with pytest.raises(MoveError) as exc:
        move(shipped, customer(), "lifecyle", "vip", "typo", T0)
    assert str(exc.value) == "unknown journey 'lifecyle'; journeys: lead_followup, lifecycle, nps"


def test_move_refuses_an_unknown_state_and_lists_the_states(shipped: Catalog):
    with pytest.raises(MoveError) as exc:
        move(shipped, customer(), "lifecycle", "vipp", "typo", T0)
    assert str(exc.value) == (
        "journey 'lifecycle' v1 has no state 'vipp'; states: new, active, vip, dormant, lost"
    )


# --- upgrade -----------------------------------------------------------------------------

V1 = """
journey: j
enroll: {on: [go]}
context: {n: 0, dropped: "x", kind: "a"}
start: a
states:
  a:
    on:
      bump: {set: {n: 'ctx.n + 1'}}
      next: b
    after:
      1d: {do: [{tag: one}]}
      3d: b
  b:
    on: {next: c}
  c: {final: true}
"""
V2 = """
journey: j
enroll: {on: [go]}
context: {n: 0, extra: 5, kind: 0}
start: a2
migrate: {a: a2}
states:
  a2:
    on:
      bump: {set: {n: 'ctx.n + 1'}}
      next: b
    after:
      1d: {do: [{tag: one_again}]}
      2d: {do: [{tag: two}]}
      5d: b
  b:
    on: {next: c}
  c: {final: true}
"""


def _in_v1(tmp_path: Path):
    v1, v2 = load_one(tmp_path, V1), load_one(tmp_path, V2)
    old = Catalog.of([v1])
    t = Trace(customer())
    t.deliver(old, ev("go"))
    t.deliver(old, ev("bump", T0 + HOUR))
    t.timers(old, T0 + DAY + 2 * HOUR)  # the 1d timer fired in v1
    assert t.keys() == ["c1/j/1/1/after:1d:timer:1:1:1d:0/0"]
    return t, two_versions(v1, v2)


def test_upgrade_moves_runs_below_the_floor_to_the_latest_version(tmp_path: Path):
    t, cat = _in_v1(tmp_path)
    step = upgrade(cat, t.state, T0 + DAY + 3 * HOUR)
    run = step.state.runs["j"]
    assert (run.version, run.state, run.status) == (2, "a2", "active")
    assert [(r.version, r.from_state, r.to_state, r.cause, r.key) for r in step.transitions] == [
        (2, "a", "a2", "upgrade v1->v2", "c1/j/1/1/upgrade-v2")
    ]
    assert step.actions == []  # an upgrade is not a move: no enter actions
    assert t.state.runs["j"].version == 1  # input unchanged


def test_upgrade_keeps_context_values_and_adds_new_keys_with_initial_values(tmp_path: Path):
    t, cat = _in_v1(tmp_path)
    run = upgrade(cat, t.state, T0 + DAY + 3 * HOUR).state.runs["j"]
    # n kept, extra added, dropped removed, kind changed type so it gets its new initial value
    assert run.context == {"n": 1, "extra": 5, "kind": 0}


def test_upgrade_recomputes_timers_from_entry_without_refiring_fired_ones(tmp_path: Path):
    t, cat = _in_v1(tmp_path)
    up = upgrade(cat, t.state, T0 + DAY + 3 * HOUR)
    run = up.state.runs["j"]
    assert [(p.label, p.due_at) for p in run.timers] == [("2d", T0 + 2 * DAY), ("5d", T0 + 5 * DAY)]
    t.state = up.state
    step = t.timers(cat, T0 + 10 * DAY)
    assert [a.args["add"] for a in step.actions] == [["two"]]
    assert [(r.from_state, r.to_state, r.at) for r in step.transitions] == [
        ("a2", "b", T0 + 5 * DAY)
    ]


def test_upgrade_happens_on_the_next_event(tmp_path: Path):
    t, cat = _in_v1(tmp_path)
    step = handle_event(cat, t.state, ev("bump", T0 + 2 * DAY + HOUR), T0 + 2 * DAY + HOUR)
    run = step.state.runs["j"]
    assert (run.version, run.state, run.context["n"]) == (2, "a2", 2)
    assert [r.cause for r in step.transitions] == ["upgrade v1->v2"]
    # so does fire_timers, which then fires the overdue 2d timer
    step = fire_timers(cat, t.state, T0 + 2 * DAY + HOUR)
    assert [r.cause for r in step.transitions] == ["upgrade v1->v2"]
    assert [a.args["add"] for a in step.actions] == [["two"]]


def test_upgrade_leaves_runs_at_or_above_the_floor(tmp_path: Path):
    v1, v2 = load_one(tmp_path, V1), load_one(tmp_path, V2)
    old = Catalog.of([v1])
    state = handle_event(old, customer(), ev("go"), T0).state
    step = upgrade(two_versions(v1, v2, floor=1), state, T0 + HOUR)
    assert step.transitions == []
    assert step.state.runs["j"].version == 1
    # and new enrolments get the latest version
    other = handle_event(two_versions(v1, v2, floor=1), customer("c2"), ev("go"), T0).state
    assert (other.runs["j"].version, other.runs["j"].state) == (2, "a2")


def test_upgrade_of_a_removed_state_without_migrate_keeps_the_run_and_records_a_problem(
    tmp_path: Path,
):
    v1 = load_one(tmp_path, V1)
    v2 = load_one(tmp_path, V2.replace("migrate: {a: a2}\n", ""))
    state = handle_event(Catalog.of([v1]), customer(), ev("go"), T0).state
    step = upgrade(two_versions(v1, v2), state, T0 + HOUR)
    run = step.state.runs["j"]
    assert (run.version, run.state) == (1, "a")
    assert [p.message for p in step.state.problems] == [
        "cannot upgrade to v2: state 'a' is gone and migrate: does not map it"
    ]


def test_upgrade_keeps_a_state_that_still_exists(tmp_path: Path):
    v1, v2 = load_one(tmp_path, V1), load_one(tmp_path, V2)
    t = Trace(customer())
    old = Catalog.of([v1])
    t.deliver(old, ev("go"))
    t.deliver(old, ev("next", T0 + HOUR))
    run = upgrade(two_versions(v1, v2), t.state, T0 + 2 * HOUR).state.runs["j"]
    assert (run.version, run.state, run.entered_at) == (2, "b", T0 + HOUR)


# --- purity ------------------------------------------------------------------------------


def test_the_interpreter_does_not_change_the_state_it_is_given(shipped: Catalog):
    state = handle_event(shipped, customer(), ev("Order Completed", revenue=10), T0).state
    before = json.dumps(dump(state), sort_keys=True)
    handle_event(shipped, state, ev("Order Completed", T0 + DAY, revenue=9000), T0 + DAY)
    fire_timers(shipped, state, T0 + 400 * DAY)
    move(shipped, state, "lifecycle", "lost", "test", T0 + DAY)
    assert json.dumps(dump(state), sort_keys=True) == before


# --- the shipped journeys ----------------------------------------------------------------


def test_lifecycle_big_first_order_goes_straight_to_vip(shipped: Catalog):
    step = handle_event(shipped, customer(), ev("Order Completed", id="o1", revenue=6000), T0)
    run = step.state.runs["lifecycle"]
    assert (run.state, run.context) == ("vip", {"orders": 1, "spent": 6000.0})
    assert [(r.from_state, r.to_state, r.cause) for r in step.transitions] == [
        (None, "new", "enroll:order_completed"),
        ("new", "vip", "event:order_completed"),
    ]
    assert [(a.kind, a.args, a.idempotency_key) for a in step.actions] == [
        (
            "send",
            {"template": "welcome", "channel": "email", "transactional": False},
            "c1/lifecycle/1/1/enter:new/0",
        ),
        ("assign_manager", {"pool": "vip"}, "c1/lifecycle/1/2/enter:vip/0"),
        (
            "send",
            {"template": "vip_welcome", "channel": "email", "transactional": False},
            "c1/lifecycle/1/2/enter:vip/1",
        ),
    ]
    assert step.actions[1].summary == "assign a vip account manager to customer c1"
    assert step.actions[2].event is not None and step.actions[2].event.id == "o1"
    assert [p.label for p in run.timers] == ["90d"]


def test_lifecycle_small_orders_add_up_to_vip(shipped: Catalog):
    t = Trace(customer())
    t.deliver(shipped, ev("signed_up"))
    t.deliver(shipped, ev("order_completed", T0 + DAY, revenue=3000))
    assert t.state.runs["lifecycle"].state == "active"
    t.deliver(shipped, ev("order_completed", T0 + 2 * DAY, revenue="2000.5"))
    run = t.state.runs["lifecycle"]
    assert (run.state, run.context) == ("vip", {"orders": 2, "spent": 5000.5})


def test_lifecycle_does_not_enrol_test_customers(shipped: Catalog):
    step = handle_event(shipped, customer(), ev("signed_up", country="test"), T0)
    assert step.state.runs == {}
    step = handle_event(shipped, customer(), ev("signed_up", country="de"), T0)
    assert step.state.runs["lifecycle"].state == "new"


def test_lead_followup_care_at_3d_task_at_7d_tag_and_close_at_30d(shipped: Catalog):
    t = Trace(customer())
    t.deliver(shipped, ev("lead_created"))
    step = t.timers(shipped, T0 + 3 * DAY)
    assert [(a.kind, a.args["template"]) for a in step.actions] == [("send", "lead_care")]
    assert t.state.runs["lead_followup"].context == {"reminders": 1}
    assert t.timers(shipped, T0 + 7 * DAY - HOUR).actions == []
    step = t.timers(shipped, T0 + 7 * DAY)
    assert [
        (a.kind, a.args["title"], a.args["assignee"], a.args["due_in"]) for a in step.actions
    ] == [("task", "Call this lead", "sales", 2 * 86400)]
    step = t.timers(shipped, T0 + 30 * DAY)
    assert [(a.kind, a.args) for a in step.actions] == [
        ("tag", {"add": ["low_priority"], "remove": []})
    ]
    run = t.state.runs["lead_followup"]
    assert (run.state, run.status) == ("closed", "completed")
    assert [r.at for r in step.transitions] == [T0 + 30 * DAY]


def test_lead_followup_reply_ends_the_follow_up(shipped: Catalog):
    t = Trace(customer())
    t.deliver(shipped, ev("lead_created"))
    t.deliver(shipped, ev("Lead Replied", T0 + DAY))
    assert t.state.runs["lead_followup"].state == "engaged"
    assert t.timers(shipped, T0 + 40 * DAY).actions == []


def _surveyed(shipped: Catalog) -> Trace:
    t = Trace(customer())
    t.deliver(shipped, ev("order_delivered"))
    step = t.timers(shipped, T0 + 3 * DAY)
    assert [(a.kind, a.args) for a in step.actions] == [
        (
            "survey",
            {"kind": "nps", "template": "nps_survey", "expires_in": 14 * 86400, "channel": "email"},
        )
    ]
    return t


@pytest.mark.parametrize(
    ("properties", "final", "actions"),
    [
        ({"score": 3}, "detractor", [("task", "Call back an unhappy customer")]),
        ({"score": 0}, "detractor", [("task", "Call back an unhappy customer")]),
        ({"score": "10"}, "promoter", [("send", "referral_ask")]),
        ({"score": 9}, "promoter", [("send", "referral_ask")]),
        ({"score": 7}, "passive", []),
        ({}, "passive", []),
    ],
)
def test_nps_answer_paths(shipped: Catalog, properties: dict, final: str, actions: list):
    t = _surveyed(shipped)
    step = t.deliver(shipped, ev("survey_answered", T0 + 4 * DAY, **properties))
    run = t.state.runs["nps"]
    assert (run.state, run.status) == (final, "completed")
    assert [
        (a.kind, a.args.get("title") or a.args.get("template")) for a in step.actions
    ] == actions
    assert t.state.problems == []


def test_nps_without_an_answer_reminds_at_4d_then_ends_as_no_answer(shipped: Catalog):
    t = _surveyed(shipped)
    surveyed_at = T0 + 3 * DAY
    assert t.timers(shipped, surveyed_at + 4 * DAY - HOUR).actions == []
    step = t.timers(shipped, surveyed_at + 4 * DAY)
    assert [(a.kind, a.args["template"], a.idempotency_key) for a in step.actions] == [
        ("send", "nps_reminder", "c1/nps/1/2/after:4d:timer:1:2:4d:0/0")
    ]
    step = t.timers(shipped, surveyed_at + 30 * DAY)
    assert [(r.to_state, r.at) for r in step.transitions] == [("no_answer", surveyed_at + 10 * DAY)]
    assert t.state.runs["nps"].status == "completed"

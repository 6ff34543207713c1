"""The pure interpreter (engine.machine): event names, enrolment, exit, rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.machine import (
    fire_timers,
    handle_event,
    journeys_attribute,
    next_due,
)
from tests.engine.support import (
    DAY,
    HOUR,
    T0,
    Trace,
    catalog_of,
    customer,
    ev,
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

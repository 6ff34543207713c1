"""The pure interpreter: emit, idempotency keys, the Journeys attribute, move."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine._errors import MoveError
from engine.catalog import Catalog
from engine.machine import (
    MAX_EMIT_DEPTH,
    fire_timers,
    handle_event,
    journeys_attribute,
    move,
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
    assert (
        str(exc.value) == "unknown journey 'lifecyle'; journeys: at_risk, birthday, churn_warning, "
        "lead_followup, lifecycle, nps, winback_test"
    )


def test_move_refuses_an_unknown_state_and_lists_the_states(shipped: Catalog):
    with pytest.raises(MoveError) as exc:
        move(shipped, customer(), "lifecycle", "vipp", "typo", T0)
    assert str(exc.value) == (
        "journey 'lifecycle' v1 has no state 'vipp'; states: new, active, vip, dormant, lost"
    )

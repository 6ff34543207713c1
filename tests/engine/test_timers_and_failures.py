"""The pure interpreter: re-entry and timers, duplicates."""

from __future__ import annotations

from pathlib import Path

from engine.catalog import Catalog
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
    dump,
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

"""The pure interpreter: upgrades to newer journey versions, and purity."""

from __future__ import annotations

import json
from pathlib import Path

from engine.catalog import Catalog
from engine.machine import (
    fire_timers,
    handle_event,
    move,
    upgrade,
)
from tests.engine.support import (
    DAY,
    HOUR,
    T0,
    Trace,
    customer,
    dump,
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


def test_equal_catalogs_share_one_instance_and_different_ones_do_not(shipped: Catalog):
    from engine.catalog import shared

    def copy(catalog: Catalog) -> Catalog:
        return Catalog.model_validate_json(catalog.model_dump_json())

    first = shared(copy(shipped))
    assert shared(copy(shipped)) is first
    newer = copy(shipped).model_copy(update={"seq": shipped.seq + 1})
    assert shared(newer) is newer
    name = next(iter(shipped.versions))
    changed = copy(shipped)
    changed.versions[name] = changed.versions[name].model_copy(update={"digest": "other"})
    assert shared(changed) is changed
    unpublished = copy(shipped)
    unpublished.versions[name] = unpublished.versions[name].model_copy(update={"digest": ""})
    assert shared(unpublished) is unpublished
    assert shared(copy(unpublished)) is not unpublished

"""Property tests of the interpreter on the shipped lifecycle journey (and the others)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.actions import ACTIONS
from engine.catalog import Catalog
from engine.loader import load_rules
from engine.machine import DEDUPE_WINDOW, MAX_PROBLEMS, fire_timers, handle_event, next_due
from engine.model import ActionCommand, CustomerState, Event
from tests.engine.support import ROOT, T0, customer

SHIPPED = Catalog.of(load_rules(ROOT / "rules", ROOT / "templates"))
LIFECYCLE = Catalog.of([j for j in SHIPPED.journeys() if j.journey == "lifecycle"])

LIFECYCLE_EVENTS = [
    "signed_up",
    "Order Completed",
    "order_completed",
    "unsubscribed",
    "page_viewed",
]
# no example database: it would be written to .hypothesis/ in the repository root
SETTINGS = settings(max_examples=100, deadline=None, database=None)

revenues = st.one_of(
    st.integers(min_value=0, max_value=8000),
    st.floats(min_value=0, max_value=8000, allow_nan=False),
    st.sampled_from(["120", "4999.5", "abc", None]),
)
gaps = st.one_of(
    st.integers(min_value=0, max_value=3600),
    st.integers(min_value=0, max_value=3 * 86400),
    st.sampled_from([d * 86400 for d in (13, 14, 15, 29, 30, 45, 59, 60, 61, 90, 91, 120)]),
)


@st.composite
def lifecycle_events(draw: st.DrawFn, max_size: int = 12) -> list[tuple[Event, datetime]]:
    """Events with unique ids and the time each arrives (``now``), in arrival order."""
    items = draw(
        st.lists(
            st.tuples(st.sampled_from(LIFECYCLE_EVENTS), st.one_of(st.none(), revenues), gaps),
            max_size=max_size,
        )
    )
    now = T0
    out = []
    for i, (name, revenue, gap) in enumerate(items):
        now += timedelta(seconds=gap)
        properties = {} if revenue is None else {"revenue": revenue}
        out.append((Event(name=name, id=f"m{i}", timestamp=now, properties=properties), now))
    return out


@dataclass
class Result:
    state: CustomerState
    actions: list[ActionCommand]
    transition_keys: list[str]


def play(catalog: Catalog, timeline: list[tuple[Event, datetime]], end: datetime | None = None):
    """Deliver each event as the workflow does (due timers first), then fire timers at
    ``end`` (one year after the last event by default)."""
    state = customer()
    actions: list[ActionCommand] = []
    transitions: list[str] = []
    last = T0
    for event, now in timeline:
        timers = fire_timers(catalog, state, now)
        applied = handle_event(catalog, timers.state, event, now)
        for step in (timers, applied):
            actions += step.actions
            transitions += [t.key for t in step.transitions]
        state = applied.state
        last = now
    step = fire_timers(catalog, state, end or last + timedelta(days=365))
    return Result(
        step.state, actions + step.actions, transitions + [t.key for t in step.transitions]
    )


def essence(state: CustomerState) -> dict[str, Any]:
    """What must not depend on duplicates: runs, problems and remembered ids (not the step
    counter, which counts calls)."""
    data = state.model_dump(mode="json")
    del data["steps"]
    return data


@st.composite
def with_duplicates(draw: st.DrawFn):
    """A timeline and the same timeline with every event delivered twice: right after itself
    or after up to three later events, but within the dedupe window."""
    timeline = draw(lifecycle_events())
    window = DEDUPE_WINDOW - timedelta(days=1)
    later: dict[int, list[Event]] = {}
    for i, (event, now) in enumerate(timeline):
        delay = draw(st.integers(min_value=0, max_value=3))
        j = min(i + delay, len(timeline) - 1)
        while timeline[j][1] - now > window:
            j -= 1
        later.setdefault(j, []).append(event)
    doubled = []
    for j, (event, now) in enumerate(timeline):
        doubled.append((event, now))
        doubled += [(dup, now) for dup in later.get(j, [])]
    return timeline, doubled


@SETTINGS
@given(with_duplicates())
def test_delivering_every_event_twice_changes_nothing(pair):
    once, twice = pair
    assert len(twice) == 2 * len(once)
    end = (once[-1][1] if once else T0) + timedelta(days=365)
    a, b = play(LIFECYCLE, once, end), play(LIFECYCLE, twice, end)
    assert essence(b.state) == essence(a.state)
    assert [x.idempotency_key for x in b.actions] == [x.idempotency_key for x in a.actions]
    assert [x.model_dump() for x in b.actions] == [x.model_dump() for x in a.actions]
    assert b.transition_keys == a.transition_keys


class Opaque:
    """A property value no JSON decoder produces."""


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=4),
    st.datetimes(),
    st.timedeltas(),
    st.sampled_from([Opaque(), {1, 2}, (1, "x"), complex(1, 2), "\ud800", "5000", "NaN"]),
)
garbage = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
any_names = st.one_of(
    st.sampled_from(
        [
            *LIFECYCLE_EVENTS,
            *("lead_created", "lead_replied", "order_delivered", "survey_answered", "timer", ""),
        ]
    ),
    st.text(max_size=12),
)
any_properties = st.dictionaries(
    st.one_of(st.sampled_from(["revenue", "score", "country"]), st.text(max_size=6)),
    garbage,
    max_size=4,
)


@SETTINGS
@given(
    st.lists(
        st.tuples(any_names, any_properties, st.integers(min_value=0, max_value=100 * 86400)),
        max_size=10,
    )
)
def test_the_interpreter_never_raises_and_keeps_its_invariants(items):
    state = customer()
    now = T0
    for i, (name, properties, gap) in enumerate(items):
        now += timedelta(seconds=gap)
        state = fire_timers(SHIPPED, state, now).state
        event = Event(name=name, id=f"g{i}", timestamp=now, properties=properties)
        step = handle_event(SHIPPED, state, event, now)
        state = step.state
        assert {a.kind for a in step.actions} <= set(ACTIONS) - {"emit"}
        for name_, run in state.runs.items():
            definition = SHIPPED.get(name_, run.version)
            assert run.state in definition.states
            spec = definition.states[run.state]
            if run.status == "active":
                assert not spec.final
                assert {p.label for p in run.timers} <= {t.label for t in spec.after}
                assert all(p.due_at > now for p in run.timers)
            else:
                assert run.timers == []
                assert run.status == "exited" or spec.final
        assert len(state.problems) <= MAX_PROBLEMS
        due = next_due(state)
        assert due is None or due > now
    assert state.steps == 2 * len(items)


@SETTINGS
@given(lifecycle_events(max_size=15))
def test_the_same_inputs_give_the_same_results(timeline):
    a, b = play(LIFECYCLE, timeline), play(LIFECYCLE, timeline)
    assert a.state.model_dump() == b.state.model_dump()
    assert [x.model_dump() for x in a.actions] == [x.model_dump() for x in b.actions]
    assert a.transition_keys == b.transition_keys


@SETTINGS
@given(lifecycle_events(max_size=15))
def test_idempotency_keys_of_all_actions_of_a_run_are_unique(timeline):
    result = play(LIFECYCLE, timeline)
    keys = [a.idempotency_key for a in result.actions]
    assert len(keys) == len(set(keys))
    assert all(k.startswith("c1/lifecycle/") for k in keys)
    assert len(result.transition_keys) == len(set(result.transition_keys))


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "lead_created",
                    "lead_replied",
                    "order_delivered",
                    "survey_answered",
                    *LIFECYCLE_EVENTS,
                ]
            ),
            st.one_of(st.none(), st.integers(min_value=-2, max_value=12), revenues),
            gaps,
        ),
        max_size=12,
    )
)
def test_idempotency_keys_are_unique_across_all_shipped_journeys(items):
    timeline = []
    now = T0
    for i, (name, value, gap) in enumerate(items):
        now += timedelta(seconds=gap)
        properties = {} if value is None else {"revenue": value, "score": value}
        timeline.append((Event(name=name, id=f"s{i}", timestamp=now, properties=properties), now))
    result = play(SHIPPED, timeline)
    keys = [a.idempotency_key for a in result.actions]
    assert len(keys) == len(set(keys))

"""Every place of a journey where ops write rules, action lists and CEL expressions, with
its YAML path: the one walk that the load-time checks (``engine.checks``,
``engine.experiment_checks``) and ``engine.goals`` share. A new place (as ``at:`` was) is
added here once and is then checked everywhere; the checks were once written each with
its own loops and forgot the calendar timers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from ._yaml import Loc
from .actions import ActionCall, ActionSpec, unwrap
from .model import Journey, Rule

TIMER = "timer"  # the event name an after: or at: timer's rules see (engine._stepper)


def state_rules(journey: Journey, name: str) -> Iterator[tuple[Loc, Rule, str]]:
    """Every rule of state ``name`` with its location and the event it runs on: its
    ``on:`` rules, its ``after:`` timers' rules and its ``at:`` entries (a calendar timer
    is one rule, ``engine.calendar``)."""
    state = journey.states[name]
    for event, rules in state.on.items():
        for i, rule in enumerate(rules):
            yield ("states", name, "on", event, i), rule, event
    for t, timer in enumerate(state.after):
        for i, rule in enumerate(timer.rules):
            yield ("states", name, "after", t, i), rule, TIMER
    for label, entry in state.at.items():
        yield ("states", name, "at", label), entry, TIMER


def rules(journey: Journey) -> Iterator[tuple[Loc, Rule, str]]:
    """Every rule of ``journey``, state by state (see :func:`state_rules`)."""
    for name in journey.states:
        yield from state_rules(journey, name)


def action_lists(journey: Journey) -> Iterator[tuple[Loc, list[ActionCall], str | None]]:
    """Every ``enter:`` and ``do:`` list with its location and the event its actions run
    on (None for ``enter:``, which any event or timer may run), state by state."""
    for name, state in journey.states.items():
        yield ("states", name, "enter"), list(state.enter), None
        for loc, rule, event in state_rules(journey, name):
            yield (*loc, "do"), list(rule.do), event


def actions(journey: Journey) -> Iterator[tuple[Loc, ActionSpec, str | None]]:
    """Every action of ``journey`` with the location of its mapping (``...do[2].send``)
    and the event it runs on (see :func:`action_lists`)."""
    for loc, calls, event in action_lists(journey):
        for i, call in enumerate(calls):
            spec = unwrap(call)
            yield (*loc, i, spec.kind), spec, event


class Expression(NamedTuple):
    """One CEL expression as written, with what it is checked against: the state and event
    it sees, the type it must have (``bool``, ``value`` for a ``set:``, ``date`` or
    ``calendar`` for an ``at:`` entry's source) and, for a ``set:``, the variable."""

    loc: Loc
    source: str
    state: str
    event: str | None
    want: str
    target: str | None = None


def expressions(journey: Journey) -> Iterator[Expression]:
    """Every CEL expression of ``journey``: enrolment, ``exit_when``, the goal, the
    actions' ``when:``, then the rules' ``date:``/``calendar:``, ``when:`` and ``set:``."""
    start = journey.start
    if journey.enroll.when:
        yield Expression(
            ("enroll", "when"), journey.enroll.when, start, journey.enroll.on[0], "bool"
        )
    if journey.exit_when:
        yield Expression(("exit_when",), journey.exit_when, start, None, "bool")
    goal = journey.goal
    if goal is not None and goal.when:
        yield Expression(("goal", "when"), goal.when, start, goal.event, "bool")
    for loc, spec, event in actions(journey):
        if spec.when is not None:
            yield Expression((*loc, "when"), spec.when, str(loc[1]), event, "bool")
    for loc, rule, event in rules(journey):
        state = str(loc[1])
        for key in ("date", "calendar"):  # an at: entry's date or country
            source = getattr(rule, key, None)
            if source is not None:
                yield Expression((*loc, key), source, state, event, key)
        if rule.when is not None:
            yield Expression((*loc, "when"), rule.when, state, event, "bool")
        for var, source in rule.set.items():
            yield Expression((*loc, "set", var), source, state, event, "value", var)

"""Checks of experiments and goals when journeys load: within one journey (``check_journey``
calls :func:`journey_problems`) and across all of them (``load_rules`` calls
:func:`catalog_problems`): an experiment belongs to one journey, and ``experiment.NAME``
must name one that some journey splits on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ._cel_tokens import code_only
from ._errors import Problem
from ._yaml import Document, Loc, parse
from .actions import Split, unwrap
from .model import Journey
from .names import did_you_mean

_REFERENCE = re.compile(r"(?<![\w.])experiment\s*\.\s*([A-Za-z_]\w*)")


def action_lists(journey: Journey) -> Iterator[tuple[Loc, list[object], str | None]]:
    """Every ``enter:`` and ``do:`` list with its location and the event its rules run on
    (None for ``enter:``, which any event or timer may run)."""
    for name, state in journey.states.items():
        yield ("states", name, "enter"), list(state.enter), None
        for event, rules in state.on.items():
            for i, rule in enumerate(rules):
                yield ("states", name, "on", event, i, "do"), list(rule.do), event
        for t, timer in enumerate(state.after):
            for i, rule in enumerate(timer.rules):
                yield ("states", name, "after", t, i, "do"), list(rule.do), "timer"


def splits_at(journey: Journey) -> Iterator[tuple[Loc, Split]]:
    """Every ``split`` of ``journey`` with the location of its action."""
    for loc, calls, _ in action_lists(journey):
        for i, call in enumerate(calls):
            spec = unwrap(call)  # type: ignore[arg-type]
            if isinstance(spec, Split):
                yield (*loc, i, "split"), spec


def expressions(journey: Journey) -> Iterator[tuple[Loc, str]]:
    """Every CEL expression of ``journey`` with its location."""
    if journey.enroll.when:
        yield ("enroll", "when"), journey.enroll.when
    if journey.exit_when:
        yield ("exit_when",), journey.exit_when
    if journey.goal is not None and journey.goal.when:
        yield ("goal", "when"), journey.goal.when
    for name, state in journey.states.items():
        for event, rules in state.on.items():
            for i, rule in enumerate(rules):
                where: Loc = ("states", name, "on", event, i)
                if rule.when:
                    yield (*where, "when"), rule.when
                for var, source in rule.set.items():
                    yield (*where, "set", var), source
        for t, timer in enumerate(state.after):
            for i, rule in enumerate(timer.rules):
                where = ("states", name, "after", t, i)
                if rule.when:
                    yield (*where, "when"), rule.when
                for var, source in rule.set.items():
                    yield (*where, "set", var), source
    for loc, calls, _ in action_lists(journey):
        for i, call in enumerate(calls):
            spec = unwrap(call)  # type: ignore[arg-type]
            if spec.when:
                yield (*loc, i, spec.kind, "when"), spec.when


def journey_problems(doc: Document, journey: Journey) -> list[Problem]:
    """One journey's own mistakes with experiments and goals."""
    problems: list[Problem] = []
    if journey.exit_on_goal and journey.goal is None:
        problems.append(
            doc.problem(
                ("exit_on_goal",),
                "exit_on_goal needs a goal: add goal: {event: order_completed, within: 30d}",
            )
        )
    if "arm" in journey.context:
        problems.append(
            doc.problem(
                ("context", "arm"),
                "ctx.arm is the run's experiment arm; name this context variable otherwise",
                key=True,
            )
        )
    first: Split | None = None
    for loc, spec in splits_at(journey):
        if first is None:
            first = spec
        elif spec.experiment != first.experiment:
            problems.append(
                doc.problem(
                    (*loc, "experiment"),
                    f"a journey splits on one experiment; this one already splits on "
                    f"'{first.experiment}'",
                )
            )
        elif spec.arms != first.arms:
            problems.append(
                doc.problem(
                    (*loc, "arms"),
                    f"experiment '{spec.experiment}' is split with other arms or weights "
                    "elsewhere in this journey; give every split of it the same arms",
                )
            )
    return problems


def catalog_problems(journeys: list[Journey], *, references: bool = True) -> list[Problem]:
    """Mistakes across journeys: an experiment split in two journeys, and (``references``:
    all journeys are loaded) ``experiment.NAME`` naming no experiment."""
    owner: dict[str, str] = {}
    problems: list[Problem] = []
    docs: dict[str, Document | None] = {}
    for journey in journeys:
        for loc, spec in splits_at(journey):
            other = owner.setdefault(spec.experiment, journey.journey)
            if other != journey.journey:
                problems.append(
                    _problem(
                        docs,
                        journey,
                        (*loc, "experiment"),
                        f"experiment '{spec.experiment}' is already split in journey "
                        f"'{other}'; an experiment belongs to one journey, name this one "
                        "otherwise",
                    )
                )
    if not references:
        return problems
    for journey in journeys:
        for loc, source in expressions(journey):
            for m in _REFERENCE.finditer(code_only(source)):
                name = m.group(1)
                if name in owner:
                    continue
                known = sorted(owner)
                problems.append(
                    _problem(
                        docs,
                        journey,
                        loc,
                        f"unknown experiment 'experiment.{name}'{did_you_mean(name, known)}; "
                        f"no journey splits on it (experiments: {', '.join(known) or 'none'})",
                    )
                )
    return problems


def _problem(docs: dict[str, Document | None], journey: Journey, loc: Loc, text: str) -> Problem:
    """``text`` at ``loc`` of ``journey``'s file, parsed again (rare: only on a mistake)."""
    source = journey.source
    if source not in docs:
        docs[source] = parse(Path(source), source)[0] if source else None
    doc = docs[source]
    if doc is None:
        return Problem(source or journey.journey, 1, 1, ".".join(map(str, loc)), text)
    return doc.problem(loc, text)

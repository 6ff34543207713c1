"""Checks of experiments and goals when journeys load: within one journey (``check_journey``
calls :func:`journey_problems`: one experiment per journey, no message ahead of the split
in its list) and across all of them (``load_rules`` calls :func:`catalog_problems`): an
experiment belongs to one journey, and ``experiment.NAME`` must name one that some
journey splits on. Every place is reached through ``engine._walk``, ``at:`` entries too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ._cel_tokens import code_only
from ._errors import Problem
from ._walk import action_lists, actions, expressions
from ._yaml import Document, Loc, parse
from .actions import Split, unwrap
from .model import Journey
from .names import did_you_mean

_REFERENCE = re.compile(r"(?<![\w.])experiment\s*\.\s*([A-Za-z_]\w*)")


def splits_at(journey: Journey) -> Iterator[tuple[Loc, Split]]:
    """Every ``split`` of ``journey`` with the location of its action."""
    for loc, spec, _ in actions(journey):
        if isinstance(spec, Split):
            yield loc, spec


def _before_split(doc: Document, journey: Journey) -> Iterator[Problem]:
    """A message ahead of the ``split`` in the same action list: the run has no arm yet
    when it is carried out, so it would reach the holdout (``engine.goals.withheld``)."""
    for loc, calls, _ in action_lists(journey):
        specs = [unwrap(call) for call in calls]
        first = next((i for i, spec in enumerate(specs) if isinstance(spec, Split)), 0)
        for i, spec in enumerate(specs[:first]):
            if spec.reaches_customer:
                yield doc.problem(
                    (*loc, i, spec.kind),
                    f"{spec.kind} comes before the split in this list, so it reaches the "
                    "holdout too; put it after the split (a message for everyone, such as "
                    "a welcome, goes in a state before the one that splits)",
                )


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
    problems += _before_split(doc, journey)
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
        for loc, source, *_ in expressions(journey):
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

"""Checks of a journey beyond its shape: states, reachability, expressions, templates."""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path

from . import expr
from ._errors import Problem
from ._walk import actions, expressions, rules, state_rules
from ._yaml import Document, Loc, parse
from .actions import ACTIONS
from .durations import HELP as DURATION_HELP
from .experiment_checks import journey_problems
from .model import NAME, Journey
from .names import did_you_mean
from .templates import TemplateInfo


def check_journey(
    doc: Document, journey: Journey, templates: dict[str, TemplateInfo] | None
) -> list[Problem]:
    """Every semantic problem of ``journey`` (its shape is already valid)."""
    problems: list[Problem] = []
    states = journey.states
    names = list(states)

    def unknown_state(loc: Loc, target: str, what: str) -> None:
        problems.append(
            doc.problem(
                loc,
                f"unknown state '{target}'{did_you_mean(target, names)}; {what} must be one "
                f"of: {', '.join(names)}",
            )
        )

    for key in journey.context:
        if not re.match(NAME, key):
            problems.append(
                doc.problem(
                    ("context", key),
                    f"context variable '{key}' must match [a-z][a-z0-9_]*",
                    key=True,
                )
            )

    if journey.start not in states:
        unknown_state(("start",), journey.start, "start")

    for loc, rule, _ in rules(journey):
        if rule.goto is not None and rule.goto not in states:
            unknown_state((*loc, "goto"), rule.goto, "goto")

    for old, new in journey.migrate.items():
        if new not in states:
            unknown_state(("migrate", old), new, "a migrate target")
        if old in states:
            problems.append(
                doc.problem(
                    ("migrate", old),
                    f"state '{old}' still exists in this version; migrate: maps only renamed or "
                    "removed states, so remove this entry",
                    key=True,
                )
            )

    for name, state in states.items():
        for label in state.at:
            if not re.match(NAME, label):
                problems.append(
                    doc.problem(
                        ("states", name, "at", label),
                        f"'{label}' is not a calendar timer name: use lower case letters, "
                        "digits and _ , starting with a letter (birthday, new_year)",
                        key=True,
                    )
                )
        for i, timer in enumerate(state.after):
            if timer.seconds <= 0:
                problems.append(
                    doc.problem(
                        ("states", name, "after", i),
                        f"'{timer.label}' is not a duration; {DURATION_HELP}",
                        key=True,
                    )
                )
        if state.final and (state.on or state.after or state.at):
            kinds = "on:/after:" if state.on or state.after else "at:"
            problems.append(
                doc.problem(
                    ("states", name, "final"),
                    f"final state '{name}' has {kinds} rules that can never run; remove them "
                    "or drop final: true",
                )
            )
        exits = {r.goto for _, r, _ in state_rules(journey, name) if r.goto and r.goto != name}
        if not state.final and not exits:
            problems.append(
                doc.problem(
                    ("states", name),
                    f"state '{name}' has no way out and is not final; add a goto "
                    "to another state (under on: or after:) or mark it final: true",
                    key=True,
                )
            )

    if journey.start in states:
        for name in sorted(set(names) - _reachable(journey)):
            problems.append(
                doc.problem(
                    ("states", name),
                    f"state '{name}' cannot be reached from start "
                    f"'{journey.start}'; add a goto to it or remove it",
                    key=True,
                )
            )

    problems += _check_expressions(doc, journey)
    problems += _check_actions(doc, journey, templates)
    problems += journey_problems(doc, journey)
    return problems


def _reachable(journey: Journey) -> set[str]:
    seen = {journey.start}
    todo = deque([journey.start])
    while todo:
        name = todo.popleft()
        for _, rule, _ in state_rules(journey, name):
            if rule.goto in journey.states and rule.goto not in seen:
                seen.add(rule.goto)
                todo.append(rule.goto)
    return seen


def _check_expressions(doc: Document, journey: Journey) -> list[Problem]:
    problems: list[Problem] = []
    ctx = journey.context
    for e in expressions(journey):
        if e.target is not None and e.target not in ctx:
            problems.append(
                doc.problem(
                    e.loc,
                    f"unknown context variable '{e.target}'"
                    f"{did_you_mean(e.target, ctx)}; declare it under context: with its "
                    "initial value",
                    key=True,
                )
            )
            continue
        for col, message in expr.check(
            e.source,
            context=ctx,
            state=e.state,
            event_name=e.event,
            want=e.want,
            target=e.target,
        ):
            problems.append(doc.problem(e.loc, message, col_offset=_inner_offset(doc, e.loc, col)))
    return problems


def _inner_offset(doc: Document, loc: Loc, col: int) -> int:
    """Columns to add so an error inside an expression points at its character in the
    file: the expression's own column, plus one for an opening quote."""
    if col <= 1:
        return 0
    line, start, _ = doc.locate(loc)
    try:
        text = doc_line(doc, line)
    except IndexError:
        return 0
    quote = 1 if start - 1 < len(text) and text[start - 1] in "'\"" else 0
    return col - 1 + quote


def doc_line(doc: Document, line: int) -> str:
    return doc.lines[line - 1]


def _check_actions(
    doc: Document, journey: Journey, templates: dict[str, TemplateInfo] | None
) -> list[Problem]:
    problems: list[Problem] = []
    if templates is None:
        return problems
    for loc, spec, _ in actions(journey):
        for field in spec.templates:
            name = getattr(spec, field)
            where = (*loc, field)
            info = templates.get(name)
            if info is None:
                problems.append(
                    doc.problem(
                        where,
                        f"unknown template '{name}'{did_you_mean(name, templates)}; "
                        f"create templates/{name}.j2 or use one of: "
                        f"{', '.join(sorted(templates)) or 'none yet'}",
                    )
                )
                continue
            channel = getattr(spec, "channel", "email")
            why = info.missing_for(channel) if not info.problems else None
            if why:
                problems.append(doc.problem(where, f"template '{name}' {why}"))
            if not info.problems:
                for message in info.context_problems(spec.kind, journey.context):
                    problems.append(doc.problem(where, message))
    return problems


def unknown_action_message(keys: list[str]) -> str:
    kinds = sorted(k for k, cls in ACTIONS.items() if cls.written)
    if len(keys) != 1:
        return (
            f"an action is a mapping with exactly one key, the action's name, e.g. "
            f"'- send: {{template: welcome}}'; actions are: {', '.join(kinds)}"
        )
    return (
        f"unknown action '{keys[0]}'{did_you_mean(keys[0], kinds)}; actions are: {', '.join(kinds)}"
    )


def migration_problems(old: list[Journey], new: Journey) -> list[Problem]:
    """States of older versions that ``new`` neither has nor maps under ``migrate:``,
    located in ``new``'s YAML file when it is still on disk (``Journey.source``), else at
    the journey's name. An empty list: every customer of ``old`` can be upgraded."""
    problems: list[Problem] = []
    doc = None
    if new.source:
        doc, _ = parse(Path(new.source), new.source)
    for version in old:
        for state in version.states:
            if state in new.states or state in new.migrate:
                continue
            message = (
                f"state '{state}' of v{version.version} is gone in this version; map it "
                f"under migrate: (e.g. '{state}: {new.start}') so customers in it can "
                "be upgraded"
            )
            if doc is not None:
                loc = ("migrate",) if "migrate" in (doc.data or {}) else ("states",)
                problems.append(doc.problem(loc, message, key=True))
            else:
                problems.append(Problem(new.source or new.journey, 1, 1, "migrate", message))
    return problems

"""Run journey tests (``engine.test_files``) on the pure interpreter, as the workflow would.

Each test starts a customer, then for each step in time order: fires the timers due by
the step's time (each at its own due time, as ``journeys simulate`` and the workflow do),
applies the step's customer change, delivers its event (built as ``journeys simulate``
builds one: name normalised, properties and traits redacted), and checks its
expectations. A failure is a :class:`Problem` at the expectation's ``file:line:col`` that
says what was expected and what was found. A recorded problem (a CEL expression that
failed) that no ``problems:`` expectation named fails the test too: it is a broken rule.

A new expectation kind is one function in :data:`CHECKS` (:data:`EXPERIMENT_CHECKS` for
those of experiments and goals, ``engine._test_experiments``) and its field on
``test_files.Expect``. :func:`check` and :class:`Checker` are shared with ``journeys test
--temporal`` (``orchestration.temporal_tests``), which plays the same steps on the real
workflow, so every expectation means the same in both.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import _test_experiments as experiment_checks
from . import machine
from ._errors import Problem
from .actions import ACTIONS
from .catalog import Catalog
from .durations import parse_duration
from .identity import redact_properties, redact_traits
from .model import ActionCommand, Customer, CustomerState, Event, Run
from .model import Problem as ProblemRecord
from .names import normalize_event_name
from .test_files import CHECKED_ELSEWHERE, CustomerPatch, Expect, JourneyTest, JourneyTestFile

__all__ = [
    "CHECKS",
    "EXPERIMENT_CHECKS",
    "Checker",
    "Observed",
    "Outcome",
    "check",
    "first_state",
    "new_problems",
    "outcome",
    "patched",
    "run_file",
    "run_test",
    "step_event",
]


@dataclass
class Outcome:
    """One test's outcome: no failures means it passed."""

    file: str
    name: str
    line: int
    failures: list[Problem] = field(default_factory=list)
    # each expectation's step and what it was compared with (the runners' agreement test)
    observed: list[tuple[int, Observed]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class Observed:
    """What an expectation is compared with: the journey's run (None: never enrolled), the
    customer, and what happened since the journey's previous expectation."""

    run: Run | None
    customer: Customer
    actions: list[ActionCommand]  # but split and convert (test_files.CHECKED_ELSEWHERE)
    problems: list[str]
    conversions: list[ActionCommand] = field(default_factory=list)  # since the test began


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    return json.dumps(value, sort_keys=True, default=str)


def _same(expected: Any, actual: Any) -> bool:
    """Equal as ops mean it: 5000 is 5000.0, but true is not 1; ``2d`` is 172800 seconds."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, str) and isinstance(actual, int):
        try:
            return parse_duration(expected) == actual
        except ValueError:
            return False
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            _same(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            _same(e, a) for e, a in zip(expected, actual, strict=True)
        )
    return bool(expected == actual)


Failure = tuple[tuple[int | str, ...], str]  # where under the expectation, and the sentence
Check = Callable[[Any, Observed], list[Failure]]


def _state(expected: str, seen: Observed) -> list[Failure]:
    actual = seen.run.state if seen.run else None
    if actual == expected:
        return []
    got = "not enrolled" if actual is None else _shown(actual)
    return [((), f"expected state '{expected}', got {got}")]


def _status(expected: str, seen: Observed) -> list[Failure]:
    actual = seen.run.status if seen.run else "not_enrolled"
    return [] if actual == expected else [((), f"expected status '{expected}', got '{actual}'")]


def _context(expected: dict[str, Any], seen: Observed) -> list[Failure]:
    if seen.run is None:
        return [((), "expected context, got not enrolled")]
    out: list[Failure] = []
    for key, value in expected.items():
        actual = seen.run.context.get(key)
        if not _same(value, actual):
            out.append(((key,), f"expected ctx.{key} {_shown(value)}, got {_shown(actual)}"))
    return out


def _action_shown(action: ActionCommand) -> str:
    return f"{action.kind} {_shown(action.args)}"


def _matches(item: str | dict[str, Any], action: ActionCommand) -> bool:
    if isinstance(item, str):
        return action.kind == item
    ((kind, args),) = item.items()
    if kind != action.kind:
        return False
    if not isinstance(args, dict):  # a shorthand (tag: low_priority): the whole action
        try:
            args = ACTIONS[kind].model_validate(args).model_dump(mode="json", by_alias=True)
        except ValueError:
            return False
    return all(k in action.args and _same(v, action.args[k]) for k, v in args.items())


def _actions(expected: list[str | dict[str, Any]], seen: Observed) -> list[Failure]:
    actual = seen.actions
    done = "; ".join(_action_shown(a) for a in actual) or "none"
    if len(expected) != len(actual):
        n = len(expected)
        return [((), f"expected {n} action{'s' * (n != 1)}, got {len(actual)}: {done}")]
    out: list[Failure] = []
    for i, (item, action) in enumerate(zip(expected, actual, strict=True)):
        if not _matches(item, action):
            out.append(((i,), f"expected {_shown(item)}, got {_action_shown(action)}"))
    return out


def _tags(expected: list[str], seen: Observed) -> list[Failure]:
    actual = seen.customer.tags
    if sorted(expected) == actual:
        return []
    return [((), f"expected tags {_shown(sorted(expected))}, got {_shown(actual)}")]


def _problems(expected: list[str], seen: Observed) -> list[Failure]:
    actual = seen.problems
    shown = "; ".join(actual) or "none"
    if len(expected) != len(actual) or not all(
        e in a for e, a in zip(expected, actual, strict=True)
    ):
        return [((), f"expected problems {_shown(expected)}, got: {shown}")]
    return []


CHECKS: dict[str, Check] = {
    "state": _state,
    "status": _status,
    "context": _context,
    "actions": _actions,
    "tags": _tags,
    "problems": _problems,
}
# of journeys with a split or a goal (a test of any other journey cannot name them)
EXPERIMENT_CHECKS: dict[str, Check] = {
    "arm": experiment_checks.arm,
    "conversions": experiment_checks.conversions,
}


def check(expect: Expect, seen: Observed) -> list[Failure]:
    """Every key ``expect`` has, compared with ``seen``: each failure's place under
    ``expect`` (``("context", "spent")``) and its sentence. The pure runner and
    ``journeys test --temporal`` both compare with this, so a new entry in :data:`CHECKS`
    is checked by both."""
    out: list[Failure] = []
    for key, compare in {**CHECKS, **EXPERIMENT_CHECKS}.items():
        expected = getattr(expect, key)
        if expected is not None:
            out += [((key, *where), message) for where, message in compare(expected, seen)]
    return out


class Checker:
    """One test's expectations, as its steps reach them: what each ``expect`` sees (the
    journey's actions since its previous ``expect``, the problems since the previous
    ``problems:``) and the failures at the test file's lines, kept in ``result``. A runner
    gives it the customer's state and everything that happened so far (actions and
    problems in order); the pure runner and ``journeys test --temporal`` share it."""

    def __init__(self, test_file: JourneyTestFile, index: int, result: Outcome) -> None:
        self.file, self.index, self.result = test_file, index, result
        self.seen_actions: dict[str, int] = {}  # journey -> actions already expected
        self.problems_checked = 0

    def loc(self, step: int, *rest: int | str) -> tuple[int | str, ...]:
        """Where step ``step`` (and ``rest`` under it) is in the test file."""
        return ("tests", self.index, "steps", step, *rest)

    def expect(
        self,
        step: int,
        expect: Expect,
        state: CustomerState,
        actions: list[ActionCommand],
        problems: list[str],
    ) -> Observed:
        """Check ``expect`` (step ``step``'s) against ``state``; ``actions`` and
        ``problems`` are all of the test's so far. Returns what was compared."""
        journey = expect.journey or self.file.journey
        start = self.seen_actions.get(journey, 0)
        mine = [a for a in actions[start:] if a.journey == journey]
        seen = Observed(
            run=state.runs.get(journey),
            customer=state.customer,
            actions=[a for a in mine if a.kind not in CHECKED_ELSEWHERE],
            problems=problems[self.problems_checked :],
            conversions=[a for a in actions if a.journey == journey and a.kind == "convert"],
        )
        self.seen_actions[journey] = len(actions)
        if expect.problems is not None:
            self.problems_checked = len(problems)
        for where, message in check(expect, seen):
            loc = self.loc(step, "expect", *where)
            self.result.failures.append(self.file.problem(loc, message))
        self.result.observed.append((step, seen))
        return seen

    def finish(self, problems: list[str]) -> None:
        """The test's end: a problem that no ``problems:`` named fails it."""
        if len(problems) > self.problems_checked:
            unexpected = "; ".join(problems[self.problems_checked :])
            self.result.failures.append(
                self.file.problem(
                    ("tests", self.index, "name"),
                    f"problems no expectation names (add problems: [...]): {unexpected}",
                )
            )


def outcome(test_file: JourneyTestFile, index: int) -> Outcome:
    """An empty outcome for the ``index``-th test of ``test_file``, at its name's line."""
    line = test_file.doc.locate(("tests", index, "name"))[0]
    return Outcome(test_file.path, test_file.tests[index].name, line)


def first_state(case: JourneyTest, customer_id: str | None = None) -> CustomerState:
    """The customer a test starts with (traits without contact details), under
    ``customer_id`` if given (a runner that needs a fresh id per test)."""
    c = case.customer
    customer = Customer(
        id=customer_id or c.id, traits=redact_traits(c.traits or {}), tags=sorted(c.tags)
    )
    return CustomerState(customer=patched(customer, c))


def step_event(test_file: JourneyTestFile, index: int, step: int, now: datetime) -> Event | None:
    """The event step ``step`` of test ``index`` delivers at ``now``, as ``journeys
    simulate`` builds one (name normalised, properties redacted, id ``FILE:LINE`` unless
    given), or None when the step sends none."""
    spec = test_file.tests[index].steps[step]
    if spec.event is None:
        return None
    name = normalize_event_name(spec.event)
    line = test_file.doc.locate(("tests", index, "steps", step, "event"))[0]
    return Event(
        name=name,
        id=spec.id or f"{test_file.path}:{line}",
        timestamp=now,
        properties=redact_properties(name, spec.properties),
    )


def run_file(test_file: JourneyTestFile, catalog: Catalog) -> list[Outcome]:
    """Every test of ``test_file``, in order."""
    return [run_test(test_file, i, catalog) for i in range(len(test_file.tests))]


def run_test(test_file: JourneyTestFile, index: int, catalog: Catalog) -> Outcome:
    """Run the ``index``-th test of ``test_file`` on ``catalog`` and compare."""
    result = outcome(test_file, index)
    _Run(test_file, index, catalog, Checker(test_file, index, result)).go()
    return result


class _Run:
    def __init__(
        self, test_file: JourneyTestFile, index: int, catalog: Catalog, checker: Checker
    ) -> None:
        self.file, self.index, self.catalog, self.checker = test_file, index, catalog, checker
        self.case = test_file.tests[index]
        self.state = first_state(self.case)
        self.actions: list[ActionCommand] = []
        self.problems: list[str] = []

    def go(self) -> None:
        at = 0
        for s, step in enumerate(self.case.steps):
            at = step.at if step.at is not None else at
            now = self.case.start + timedelta(seconds=at)
            self._take(machine.fire_timers(self.catalog, self.state, now))
            if step.customer is not None:
                customer = patched(self.state.customer, step.customer)
                self.state = self.state.model_copy(update={"customer": customer})
                state = machine.refresh_calendar(self.catalog, self.state, now)
                self.problems += new_problems(self.state.problems, state.problems)
                self.state = state
            event = step_event(self.file, self.index, s, now)
            if event is not None:
                self._take(machine.handle_event(self.catalog, self.state, event, now))
            if step.expect is not None:
                self.checker.expect(s, step.expect, self.state, self.actions, self.problems)
        self.checker.finish(self.problems)

    def _take(self, step: machine.Step) -> None:
        self.problems += new_problems(self.state.problems, step.state.problems)
        self.state = step.state
        self.actions += step.actions


def new_problems(before: list[ProblemRecord], after: list[ProblemRecord]) -> list[str]:
    """The problems in ``after`` that ``before`` did not have, as ``journey.state: message``
    (the list is bounded: old ones fall off its head)."""
    had = Counter(p.model_dump_json() for p in before)
    out = []
    for p in after:
        key = p.model_dump_json()
        if had[key] > 0:
            had[key] -= 1
        else:
            out.append(f"{p.journey}.{p.state}: {p.message}")
    return out


def patched(customer: Customer, patch: Any) -> Customer:
    """``customer`` after a test's customer change (traits merged, without contact
    details; the rest replaced), as the workflow's events signal changes it."""
    known = {name: getattr(patch, name) for name in CustomerPatch.model_fields}
    if known["traits"] is not None:
        known["traits"] = redact_traits(known["traits"])
    return machine.patch_customer(customer, **known)

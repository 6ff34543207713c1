"""Journey test files: YAML files next to the journeys (``rules/tests/NAME.yaml``) that say what
a customer does and what the journey must have done by then, run on the pure interpreter.

A test file names its journey and holds tests; each test has a customer and steps at
times relative to the test's start (``at: 3d``); a step may change the customer (as an
identify or a segment refresh does), send an event, and ``expect`` what the journey looks
like then. Parsing uses the rules' YAML machinery, so every mistake is a
:class:`Problem` at ``file:line:col`` (unknown keys with did-you-mean, unknown states and
context names of the journey); :func:`run_file` (``engine.journey_tests``) compares and points
each failure at the expectation's line. Semantics: docs/journeys.md, "Testing journeys".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from ._errors import JourneyValidationError, Problem
from ._yaml import Document, parse
from .actions import ACTIONS, Spec
from .catalog import Catalog
from .durations import LONGEST, parse_duration
from .goals import splits
from .loader import validate_mapping
from .model import Journey
from .names import did_you_mean

__all__ = [
    "CHECKED_ELSEWHERE",
    "DEFAULT_START",
    "ConversionExpect",
    "Expect",
    "JourneyTest",
    "JourneyTestFile",
    "Step",
    "load_test_file",
]

# a Monday, 09:00 UTC: tests that do not say when they start begin at the same moment
DEFAULT_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
FIRST_START_YEAR, LAST_START_YEAR = 1900, 2200


def _offset(value: Any) -> int:
    """A time in a test: up to twice the longest wait a journey may write, so a test can
    look past it (``engine.durations``)."""
    if value in (0, "0", "0s"):
        return 0
    return parse_duration(value, longest=2 * LONGEST)


class CustomerPatch(Spec):
    """What a step learns of the customer: ``traits`` merge in (an identify), the other
    fields replace (a segment refresh), as the workflow's signal does."""

    traits: dict[str, Any] | None = None
    tier: str | None = None
    segment: str | None = None
    rfm: dict[str, int] | None = None
    ltv: float | None = None
    first_order: datetime | None = None
    p_alive: float | None = Field(default=None, ge=0, le=1)
    churn_risk: float | None = Field(default=None, ge=0, le=1)
    predicted_clv: float | None = Field(default=None, ge=0)


class CustomerSpec(CustomerPatch):
    """The customer a test starts with."""

    id: str = Field(default="customer-1", min_length=1)
    tags: list[str] = Field(default_factory=list)


class ConversionExpect(Spec):
    """One expected conversion of the journey (``conversions: [{arm: offer_15}]``); every
    key given is checked. ``after``: the time from the run's start (its split, or its
    enrolment) to the conversion."""

    arm: str | None = None
    revenue: float | None = None
    event: str | None = None
    after: int | None = None

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, value: Any) -> Any:
        return None if value is None else _offset(value)


# action kinds the interpreter makes for experiments and goals: ``arm:`` and
# ``conversions:`` check them, not ``actions:``, so adding a split leaves them as they were
CHECKED_ELSEWHERE = {"split": "arm", "convert": "conversions"}


class Expect(Spec):
    """What must hold at a step's time; every key given is checked, none is implied."""

    journey: str | None = None
    state: str | None = None
    status: Literal["active", "completed", "exited", "not_enrolled"] | None = None
    context: dict[str, Any] | None = None
    actions: list[str | dict[str, Any]] | None = None
    tags: list[str] | None = None
    problems: list[str] | None = None
    # the run's experiment arm ("": in none); the journey's conversions since the test
    # began: how many, or each one's details in order
    arm: str | None = None
    conversions: int | list[ConversionExpect] | None = Field(default=None)

    @field_validator("conversions")
    @classmethod
    def _count(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise ValueError("a number of conversions is 0 or more")
        return value


class Step(Spec):
    at: int | None = None  # seconds after the test's start; None: the previous step's time
    event: str | None = Field(default=None, min_length=1)
    properties: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None
    customer: CustomerPatch | None = None
    expect: Expect | None = None

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, value: Any) -> Any:
        return None if value is None else _offset(value)


class JourneyTest(Spec):
    name: str = Field(min_length=1)
    customer: CustomerSpec = Field(default_factory=CustomerSpec)
    start: datetime = DEFAULT_START
    steps: list[Step] = Field(min_length=1)

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # a test runs 20 years past its start at most, with timers ten years further: far
        # from the end of the calendar (9999), where adding a wait would fail
        if not FIRST_START_YEAR <= value.year <= LAST_START_YEAR:
            raise ValueError(
                f"a test starts in the years {FIRST_START_YEAR} to {LAST_START_YEAR}, not "
                f"{value.year}; leave start: out for {DEFAULT_START:%Y-%m-%d}"
            )
        return value if value.tzinfo else value.replace(tzinfo=UTC)


class _FileSpec(Spec):
    journey: str
    tests: list[JourneyTest] = Field(min_length=1)


@dataclass(frozen=True)
class JourneyTestFile:
    """A parsed, checked test file; ``doc`` locates its keys for failures."""

    path: str
    journey: str
    tests: list[JourneyTest]
    doc: Document

    def problem(self, loc: tuple[int | str, ...], message: str) -> Problem:
        return self.doc.problem(loc, message)


_KEYS: dict[str, list[str]] = {
    "": list(_FileSpec.model_fields),
    "tests": list(JourneyTest.model_fields),
    "steps": list(Step.model_fields),
    "expect": list(Expect.model_fields),
    "customer": list(CustomerSpec.model_fields),
    "conversions": list(ConversionExpect.model_fields),
}


def _allowed(loc: list[int | str]) -> list[str]:
    parents = [s for s in loc[:-1] if isinstance(s, str)]
    if parents and parents[-1] == "customer" and "steps" in parents:
        return list(CustomerPatch.model_fields)
    return _KEYS.get(parents[-1] if parents else "", [])


def load_test_file(path: Path, display: str, catalog: Catalog) -> JourneyTestFile:
    """The tests of ``path``, checked against the journeys of ``catalog``; raises
    :class:`JourneyValidationError` with every problem at ``file:line:col``."""
    doc, problems = parse(path, display)
    if doc is None:
        raise JourneyValidationError(problems)
    if not isinstance(doc.data, dict):
        raise JourneyValidationError(
            [Problem(display, 1, 1, "", "a test file is a mapping: 'journey: NAME' and 'tests:'")]
        )
    spec = validate_mapping(doc, _FileSpec, _allowed)
    found = _check(doc, spec, catalog)
    if found:
        raise JourneyValidationError(found)
    return JourneyTestFile(display, spec.journey, spec.tests, doc)


def _check(doc: Document, spec: _FileSpec, catalog: Catalog) -> list[Problem]:
    """What the models cannot know: the journeys, states and context names exist, actions
    are kinds, steps go forward in time and each does something."""
    names = sorted(catalog.latest)
    if spec.journey not in catalog.latest:
        hint = did_you_mean(spec.journey, names)
        return [doc.problem(["journey"], f"no journey '{spec.journey}'{hint}; journeys: {names}")]
    found: list[Problem] = []
    for t, case in enumerate(spec.tests):
        at = 0
        for s, step in enumerate(case.steps):
            where: list[int | str] = ["tests", t, "steps", s]
            if step.at is not None:
                if step.at < at:
                    found.append(doc.problem([*where, "at"], "steps go forward in time"))
                at = step.at
            if step.event is None and step.expect is None and step.customer is None:
                found.append(doc.problem(where, "a step needs event, customer or expect"))
            if step.event is None and (step.properties or step.id):
                found.append(doc.problem([*where, "properties"], "properties need an event"))
            if step.expect is not None:
                found += _check_expect(doc, [*where, "expect"], step.expect, spec, catalog)
    return found


def _check_expect(
    doc: Document, where: list[int | str], expect: Expect, spec: _FileSpec, catalog: Catalog
) -> list[Problem]:
    found: list[Problem] = []
    if not expect.model_fields_set - {"journey"}:
        checks = [k for k in _KEYS["expect"] if k != "journey"]
        found.append(doc.problem(where, "expect needs at least one of " + ", ".join(checks)))
    name = expect.journey or spec.journey
    if name not in catalog.latest:
        hint = did_you_mean(name, catalog.latest)
        return [*found, doc.problem([*where, "journey"], f"no journey '{name}'{hint}")]
    journey = catalog.current(name)
    if expect.state is not None and expect.state not in journey.states:
        hint = did_you_mean(expect.state, journey.states)
        found.append(
            doc.problem(
                [*where, "state"],
                f"journey '{name}' has no state '{expect.state}'{hint}; states: "
                + ", ".join(journey.states),
            )
        )
    for key in expect.context or {}:
        if key not in journey.context:
            hint = did_you_mean(key, journey.context)
            found.append(
                doc.problem(
                    [*where, "context", key],
                    f"journey '{name}' has no context variable '{key}'{hint}",
                    key=True,
                )
            )
    found += _check_experiment(doc, where, expect, journey)
    for i, item in enumerate(expect.actions or []):
        if isinstance(item, str):
            kind: str | None = item
        else:  # {kind: {argument: value}}: one key
            kind = next(iter(item)) if len(item) == 1 else None
        kinds = [k for k in ACTIONS if k not in CHECKED_ELSEWHERE]
        if kind in CHECKED_ELSEWHERE:
            found.append(
                doc.problem(
                    [*where, "actions", i],
                    f"{kind} is not among actions: check it with {CHECKED_ELSEWHERE[kind]}:",
                )
            )
        elif kind is None or kind not in kinds:
            shown = "an action is a kind or {kind: {argument: value}}"
            if kind:
                shown = f"unknown action '{kind}'{did_you_mean(kind, kinds)}"
            found.append(doc.problem([*where, "actions", i], f"{shown}; kinds: {', '.join(kinds)}"))
    return found


def _check_experiment(
    doc: Document, where: list[int | str], expect: Expect, journey: Journey
) -> list[Problem]:
    """``arm:`` names an arm of the journey's split, ``conversions:`` needs its goal."""
    found: list[Problem] = []
    arms = sorted({arm for spec in splits(journey) for arm in spec.arms})
    items = expect.conversions if isinstance(expect.conversions, list) else []
    named = [([*where, "arm"], expect.arm)] + [
        ([*where, "conversions", i, "arm"], c.arm) for i, c in enumerate(items)
    ]
    for loc, arm in named:
        if arm and arm not in arms:
            hint = did_you_mean(arm, arms)
            shown = ", ".join(arms) or "none: it has no split"
            found.append(
                doc.problem(
                    loc, f"journey '{journey.journey}' has no arm '{arm}'{hint}; arms: {shown}"
                )
            )
    if expect.conversions is not None and journey.goal is None:
        found.append(
            doc.problem(
                [*where, "conversions"],
                f"journey '{journey.journey}' has no goal, so nobody converts; add goal: to it "
                "or leave this key out",
            )
        )
    return found

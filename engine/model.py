"""Journey definitions (what ops write) and customer state (what the interpreter keeps).

Definitions are frozen pydantic models built by ``engine.loader`` from YAML; the workflow
receives them already validated. Runtime state is plain data, serialisable as JSON, so it
crosses continue-as-new and shows up readable in queries.
"""

from __future__ import annotations

from datetime import datetime
from datetime import time as Clock
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ._holiday_names import HOLIDAY_NAMES, check_holiday_name
from .actions import ActionCall, Seconds, Spec, _seconds, from_yaml
from .durations import LONGEST, DurationTooLong, parse_duration, too_long
from .names import normalize_event_name

NAME = r"^[a-z][a-z0-9_]*$"


# --- definitions --------------------------------------------------------------------------


class Rule(Spec):
    """``{when?, set?, do?, goto?}``; a bare state name is shorthand for ``{goto: name}``."""

    when: str | None = None
    set: dict[str, str] = Field(default_factory=dict)
    do: list[ActionCall] = Field(default_factory=list)
    goto: str | None = None


def _rules(value: Any) -> Any:
    if isinstance(value, str):
        return [{"goto": value}]
    if isinstance(value, dict):
        return [value]
    return value


class Timer(Spec):
    """One ``after:`` entry: rules that run when the state has lasted ``seconds``."""

    label: str
    seconds: int
    rules: list[Rule]

    @model_validator(mode="after")
    def _not_too_long(self, info: ValidationInfo) -> Timer:
        # from YAML only: a stored definition read back loads as it was published
        if from_yaml(info) and self.seconds > LONGEST:
            raise ValueError(too_long(self.label))
        return self


# --- calendar timers (``at:``; computed by engine.calendar) ---------------------------------

DEFAULT_LOCAL_TIME = Clock(9, 0)


def _clock(value: Any) -> Clock:
    """A local time of day, ``"10:00"``."""
    if isinstance(value, Clock):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        # YAML 1.1 reads an unquoted 10:00 as the sexagesimal number 600
        return Clock(value // 60, value % 60)
    text = str(value).strip() if isinstance(value, str) else ""
    try:
        parsed = Clock.fromisoformat(text) if len(text) in (4, 5, 8) and ":" in text else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValueError(f'{value!r} is not a time of day; write it like "10:00" (24-hour, local)')
    return parsed


def _offset_seconds(value: Any, info: ValidationInfo) -> int:
    """``before:``/``after:`` as ops write them (``7d``); 0, their default, when read back."""
    if value == 0 and not isinstance(value, bool) and not (info.context or {}).get("from_yaml"):
        return 0
    return _seconds(value, info)


class CalendarTimer(Rule):
    """One ``at:`` entry: a rule run on a date of the customer's (``date:``, a CEL
    expression) or on holidays of their country (``calendar:`` and ``names:``), at
    ``time`` in their time zone, shifted by ``before``/``after``; ``every`` year (the
    default), month, or ``once``. Semantics: ``engine.calendar``."""

    date: str | None = None
    calendar: str | None = None
    # each name once, so at most len(HOLIDAY_NAMES) of them
    names: list[Annotated[str, AfterValidator(check_holiday_name)]] = Field(
        default_factory=list,
        json_schema_extra={"uniqueItems": True, "maxItems": len(HOLIDAY_NAMES)},
    )
    before: int = 0
    after: int = 0
    time: Clock = DEFAULT_LOCAL_TIME
    every: Literal["year", "month", "once"] = "year"

    _offsets = field_validator("before", "after", mode="before")(_offset_seconds)
    _time = field_validator("time", mode="before")(_clock)

    @field_validator("names")
    @classmethod
    def _each_once(cls, names: list[str], info: ValidationInfo) -> list[str]:
        if not from_yaml(info):
            return names  # a stored definition loads as it was published
        for i, name in enumerate(names):
            first = names.index(name)
            if first < i:
                # ``item``: the loader points at this item, not at the list
                raise PydanticCustomError(
                    "listed_twice",
                    "'{name}' is listed twice (first as names[{first}]); remove this one",
                    {"name": name, "first": first, "item": i},
                )
        return names

    @model_validator(mode="after")
    def _one_source(self) -> CalendarTimer:
        if (self.date is None) == (self.calendar is None):
            raise ValueError(
                "give either date: (a CEL expression such as customer.traits.birthday) or "
                "calendar: (a CEL expression giving a country code) with names:, not "
                + ("both" if self.date else "neither")
            )
        if self.calendar is not None and not self.names:
            raise ValueError("calendar: needs names: [new_year, spring_festival, ...]")
        if self.date is not None and self.names:
            raise ValueError("names: goes with calendar:, not with date:")
        if self.calendar is not None and self.every == "month":
            raise ValueError("holidays come once a year: leave every: out (or once)")
        return self


class State(Spec):
    enter: list[ActionCall] = Field(default_factory=list)
    on: dict[str, list[Rule]] = Field(default_factory=dict)
    after: list[Timer] = Field(default_factory=list)
    at: dict[str, CalendarTimer] = Field(default_factory=dict)
    final: bool = False
    description: str | None = None

    @field_validator("on", mode="before")
    @classmethod
    def _on(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {normalize_event_name(str(k)): _rules(v) for k, v in value.items()}
        return value

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, value: Any) -> Any:
        """``{14d: rules}`` from YAML to timers, in the file's order (errors are located by
        it; the interpreter fires them by due time). A key that is no duration gets
        ``seconds = -1`` and is reported, at the key, by ``engine.checks``."""
        if not isinstance(value, dict):
            return value
        return [
            {"label": str(k), "seconds": _duration_or_bad(k), "rules": _rules(v)}
            for k, v in value.items()
        ]

    def timer_rules(self, timer: PendingTimer) -> list[Rule] | None:
        """The rules ``timer`` runs when it fires (None: it is no timer of this state)."""
        if timer.at is not None:
            entry = self.at.get(timer.at)
            return [entry] if entry is not None else None
        return self.after[timer.index].rules if timer.index < len(self.after) else None


def _duration_or_bad(key: Any) -> int:
    try:
        return parse_duration(key)
    except DurationTooLong:
        return LONGEST + 1  # Timer says so, at the key
    except ValueError:
        return -1


class Enroll(Spec):
    on: list[str] = Field(min_length=1)
    when: str | None = None
    reenter: Literal["never", "after_exit"] = "never"

    @field_validator("on", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [normalize_event_name(v) if isinstance(v, str) else v for v in value]
        return value


class Goal(Spec):
    """``goal:``: the customer converts when ``event`` (and ``when``) comes within
    ``within`` of the run's start (its enrolment, or its split for a run in an experiment;
    ``engine.goals``)."""

    event: str = Field(min_length=1)
    within: Seconds
    when: str | None = None

    _dur = field_validator("within", mode="before")(_seconds)

    @field_validator("event")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return normalize_event_name(value)


class Journey(Spec):
    """A validated journey definition; ``version`` and ``digest`` are set when published."""

    journey: str = Field(pattern=NAME, max_length=64)
    description: str | None = None
    enroll: Enroll
    exit_when: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    start: str
    states: dict[str, State] = Field(min_length=1)
    migrate: dict[str, str] = Field(default_factory=dict)
    # left out of dumps when unset, so journeys without goals keep their digests (versions)
    goal: Goal | None = Field(default=None, exclude_if=lambda v: v is None)
    exit_on_goal: bool = Field(default=False, exclude_if=lambda v: v is False)
    version: int = 0
    digest: str = ""
    source: str = ""

    def events(self) -> set[str]:
        """Every event name this journey reacts to (enrolment, goal and ``on:`` rules)."""
        names = set(self.enroll.on)
        if self.goal is not None:
            names.add(self.goal.event)
        for state in self.states.values():
            names.update(state.on)
        return names


# --- runtime ------------------------------------------------------------------------------


class Data(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Event(Data):
    """A customer event as the interpreter sees it (names already snake_case)."""

    name: str
    id: str
    timestamp: datetime
    properties: dict[str, Any] = Field(default_factory=dict)
    source: Literal["external", "emit", "timer", "admin"] = "external"
    origin: str | None = None  # for emitted events: the journey that emitted it

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            return {**data, "name": normalize_event_name(data["name"])}
        return data


class PendingTimer(Data):
    index: int  # its place in the state's after: (or at:, for a calendar timer)
    label: str
    due_at: datetime
    at: str | None = None  # a calendar timer: the name of its at: entry


class Transition(Data):
    at: datetime
    from_state: str | None
    to_state: str
    cause: str  # "event:order_completed", "timer:60d", "admin:<reason>", "enroll:...", "exit"


class Run(Data):
    """One customer's passage through one journey."""

    journey: str
    version: int
    state: str
    status: Literal["active", "completed", "exited"] = "active"
    entered_at: datetime
    enrolled_at: datetime
    context: dict[str, Any] = Field(default_factory=dict)
    timers: list[PendingTimer] = Field(default_factory=list)
    fired: list[int] = Field(default_factory=list)  # seconds of timers fired in this visit
    visit: int = 0  # how many state entries so far in this run: part of idempotency keys
    enrollment: int = 1
    history: list[Transition] = Field(default_factory=list)
    # calendar timers (at:) fired in this visit: name -> the occurrence's due time
    at_fired: dict[str, datetime] = Field(default_factory=dict)
    # experiments and goals (engine.goals): the run's arm since its split, and when it
    # converted (once per run); withheld: messages not sent because the arm is the holdout
    experiment: str | None = None
    arm: str | None = None
    split_at: datetime | None = None
    converted_at: datetime | None = None
    withheld: int = 0


class Customer(Data):
    """What journeys may read as ``customer`` (no contact details: see ``redact``)."""

    id: str
    traits: dict[str, Any] = Field(default_factory=dict)
    tier: str | None = None
    segment: str | None = None
    # RFM scores 1-5 (0: no order in the look-back window) and all-time revenue, from the
    # latest segment refresh (rules/segments.yaml)
    rfm: dict[str, int] = Field(default_factory=lambda: {"r": 0, "f": 0, "m": 0})
    ltv: float = 0.0
    # the first order's time, from the segment refresh (None: no order, or not refreshed)
    first_order: datetime | None = None
    # the refresh's forecast (engine.forecast): P(alive), 1 - P(alive) and the expected
    # revenue of the next 365 days. Until a refresh forecasts (or when it had too few repeat
    # customers to), alive with no risk and no predicted value, as BG/NBD sees a customer
    # without a repeat purchase
    p_alive: float = 1.0
    churn_risk: float = 0.0
    predicted_clv: float = 0.0
    # sorted; set by the ``tag`` action (``engine.tags``) when the interpreter emits it
    tags: list[str] = Field(default_factory=list)


class Problem(Data):
    at: datetime
    journey: str
    state: str
    message: str


class CustomerState(Data):
    customer: Customer
    runs: dict[str, Run] = Field(default_factory=dict)
    seen: dict[str, datetime] = Field(default_factory=dict)  # event id -> when applied
    problems: list[Problem] = Field(default_factory=list)
    steps: int = 0  # events and timers processed, over the customer's whole life
    # experiment -> arm: sticky across runs, journeys, continue-as-new and upgrades
    experiments: dict[str, str] = Field(default_factory=dict)


class ActionCommand(Data):
    """Run one action: the workflow maps ``kind`` to its activity."""

    kind: str
    args: dict[str, Any]
    journey: str
    version: int
    state: str
    idempotency_key: str
    summary: str
    event: Event | None = None

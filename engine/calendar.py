"""Calendar timers: the ``at:`` entries of a state, on the customer's own dates (a birthday,
the first order's anniversary) or on their country's holidays.

Pure functions for the interpreter (``engine._stepper``) and for every place that learns
something new of a customer (the workflow's signal, the simulator, journey tests: they
call :func:`refresh` after :func:`engine.machine.patch_customer`). The rules, in the words
of docs/journeys.md ("Calendar timers"):

* An entry's next occurrence is the first moment strictly after a bound (entering the
  state, the entry's last firing, or a change of the customer) at which the date, shifted
  by ``before``/``after``, reaches ``time`` (default 09:00) on the wall clock of the
  customer's time zone: the trait the policy names (``Catalog.time_zone_trait``), else the
  policy's default zone. Wall-clock arithmetic: ``before: 7d, time: "10:00"`` is 10:00
  local seven days earlier, whatever daylight saving did meanwhile.
* ``every: year`` (the default) repeats on the date's day and month; 29 February falls on
  28 February in other years. ``month`` repeats on the date's day, or the month's last day
  when it is shorter. ``once`` fires at the first occurrence and is done for the visit. A
  date with a year (``1990-03-05``, a timestamp) never occurs before itself; ``--03-05`` and
  ``03-05`` have no year.
* ``calendar:`` gives a country code; the entry fires on the first day of each holiday it
  names (``engine._holiday_names``), at ``time`` and shifted like a date.
* A date or country that is missing or malformed, a bad time-zone trait, a holiday the
  country does not have, a date whose occurrences run past the year 9999 (dates hold the
  years 1 to 9999; a placeholder ``0001-01-01`` still has its yearly occurrences): a
  problem recorded once in ``CustomerState.problems``; the entry has no timer until a
  change of the customer makes it computable.
"""

from __future__ import annotations

import calendar as _gregorian
import re
from datetime import MAXYEAR, MINYEAR, UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import _evaluate, expr
from ._holiday_names import HolidayError, holiday_dates, run_holidays_with
from ._outcome import MAX_PROBLEMS, in_firing_order
from .catalog import Catalog
from .model import (
    CalendarTimer,
    Customer,
    CustomerState,
    Event,
    PendingTimer,
    Problem,
    Rule,
    Run,
    State,
)

__all__ = [
    "arm",
    "customer_zone",
    "next_occurrence",
    "occurrence",
    "record_problems",
    "refresh",
    "run_holidays_with",
    "timers_for",
]

# MM-DD, or --MM-DD (ISO 8601's date without a year, as vCard writes a birthday)
_YEARLESS = re.compile(r"^(?:--)?(\d{2})-(\d{2})$")
_YEAR = 365 * 86400


def customer_zone(customer: Customer, catalog: Catalog) -> tuple[tzinfo, str | None]:
    """The customer's time zone, and the problem when their trait names none."""
    name = customer.traits.get(catalog.time_zone_trait)
    if name is not None and name != "":
        try:
            return ZoneInfo(str(name)), None
        except (ZoneInfoNotFoundError, ValueError):
            problem = (
                f"trait {catalog.time_zone_trait} {str(name)[:40]!r} is not a time zone; "
                f"calendar timers use {catalog.default_time_zone}"
            )
            return _zone(catalog.default_time_zone), problem
    return _zone(catalog.default_time_zone), None


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _as_date(value: Any, zone: tzinfo) -> tuple[date, bool] | str:
    """``(date, has_year)`` of what a ``date:`` expression gave, or why it is none."""
    if isinstance(value, datetime):
        try:
            local = value.astimezone(zone) if value.tzinfo is not None else value
        except OverflowError:  # 0001-01-01T00:00Z is in the year 0 west of Greenwich
            return f"{value.isoformat()[:40]!r} is not a date in the years 1 to 9999"
        return local.date(), True
    if isinstance(value, date):
        return value, True
    if value is None or value == "":
        return "it is empty"
    if not isinstance(value, str):
        return f"it gave {type(value).__name__} {str(value)[:40]!r}, not a date"
    text = value.strip()
    m = _YEARLESS.match(text)
    try:
        if m:  # a leap year, so that 02-29 is a day
            return date(2000, int(m.group(1)), int(m.group(2))), False
        if len(text) == 10:
            return date.fromisoformat(text), True
        return _as_date(datetime.fromisoformat(text.replace("Z", "+00:00")), zone)
    except ValueError:
        return f"{text[:40]!r} is not a date; write it as YYYY-MM-DD"


def _on(year: int, month: int, day: int) -> date:
    """``day`` of ``month`` in ``year``, or the month's last day when it is shorter (so 29
    February is 28 February in other years)."""
    return date(year, month, min(day, _gregorian.monthrange(year, month)[1]))


def _years(first: int, count: int) -> range:
    """``count`` years from ``first``, those of them a date can have (1 to 9999): a
    placeholder birthday such as 0001-01-01 or 9999-12-31 has its neighbours cut off."""
    return range(max(first, MINYEAR), min(first + count, MAXYEAR + 1))


def _moment(day: date, entry: CalendarTimer, zone: tzinfo) -> datetime | None:
    """``entry``'s moment on ``day``; None when it is not one a datetime can hold (shifted,
    or in UTC, before the year 1 or after 9999)."""
    try:
        wall = datetime.combine(day, entry.time) - timedelta(seconds=entry.before - entry.after)
        return wall.replace(tzinfo=zone).astimezone(UTC)
    except OverflowError:
        return None


def next_occurrence(
    entry: CalendarTimer, base: date, *, has_year: bool, zone: tzinfo, after: datetime
) -> datetime | None:
    """The first moment of ``entry`` on ``base`` (a ``date:`` entry's date) strictly after
    ``after``; None when there is none (a ``once`` date already past)."""
    span = 2 + (entry.before + entry.after) // _YEAR
    local = after.astimezone(zone)
    if entry.every == "once" and has_year:
        moment = _moment(base, entry, zone)
        return moment if moment is not None and moment > after else None
    # from a little before the bound (offsets may pull an occurrence back), and never
    # before the date itself when it has a year (a renewal in 2030 starts in 2030)
    if entry.every == "month":
        first = local.year * 12 + local.month - 1 - 12 * span
        if has_year:
            first = max(first, base.year * 12 + base.month - 1)
        first = max(first, MINYEAR * 12)
        months = range(first, min(first + 12 * (2 * span + 1), (MAXYEAR + 1) * 12))
        days = [_on(m // 12, m % 12 + 1, base.day) for m in months]
    else:
        start = max(local.year - span, base.year) if has_year else local.year - span
        days = [_on(y, base.month, base.day) for y in _years(start, 2 * span + 1)]
    for day in days:
        if has_year and day < base:
            continue
        moment = _moment(day, entry, zone)
        if moment is not None and moment > after:
            return moment
    return None


def _next_holiday(
    entry: CalendarTimer, country: str, *, zone: tzinfo, after: datetime
) -> tuple[datetime | None, list[str]]:
    span = 2 + (entry.before + entry.after) // _YEAR
    local = after.astimezone(zone)
    moments: list[datetime] = []
    seen: set[str] = set()
    for year in _years(local.year - span, 2 * span + 1):
        days = holiday_dates(country, year)
        for name in entry.names:
            if name in days:
                seen.add(name)
                moment = _moment(days[name], entry, zone)
                if moment is not None and moment > after:
                    moments.append(moment)
    code = country.strip().upper()
    problems = [
        f"the holiday calendar of {code} has no {name}; that name never fires for this customer"
        for name in entry.names
        if name not in seen
    ]
    return min(moments, default=None), problems


def _next_due(
    name: str,
    entry: CalendarTimer,
    catalog: Catalog,
    customer: Customer,
    run: Run,
    after: datetime,
) -> tuple[datetime | None, list[str]]:
    """When ``entry`` fires next after ``after``, and the problems that stop or bend it."""
    zone, zone_problem = customer_zone(customer, catalog)
    problems = [f"at {name}: {zone_problem}"] if zone_problem else []
    source = entry.date if entry.date is not None else entry.calendar
    assert source is not None  # the model requires one of them
    env = _evaluate.environment(customer, run, None, after)
    try:
        value = expr.evaluate(source, env)
    except expr.ExpressionError as exc:
        what = "date" if entry.date is not None else "country"
        return None, [*problems, f"at {name}: no {what} yet ({exc}); no timer until there is"]
    if entry.calendar is not None:
        if not isinstance(value, str) or not value.strip():
            shown = str(value)[:40]
            return None, [*problems, f"at {name}: {source} gave {shown!r}, not a country code"]
        try:
            due, missing = _next_holiday(entry, value, zone=zone, after=after)
        except HolidayError as exc:
            return None, [*problems, f"at {name}: {exc}"]
        return due, problems + [f"at {name}: {m}" for m in missing]
    parsed = _as_date(value, zone)
    if isinstance(parsed, str):
        return None, [*problems, f"at {name}: {source}: {parsed}; no timer until it is a date"]
    base, has_year = parsed
    due = next_occurrence(entry, base, has_year=has_year, zone=zone, after=after)
    if due is None and not (entry.every == "once" and has_year and _moment(base, entry, zone)):
        # none at all, though the entry repeats (or its one time is no moment): the date's
        # occurrences run out of the calendar, which ends with the year 9999
        return None, [
            *problems,
            f"at {name}: {source} gave {base.isoformat()}, which has no occurrence before "
            "the calendar ends with the year 9999; no timer until it is another date",
        ]
    return due, problems


def timers_for(
    catalog: Catalog,
    customer: Customer,
    run: Run,
    spec: State,
    now: datetime,
    *,
    only: str | None = None,
) -> tuple[list[PendingTimer], list[str]]:
    """The calendar timers of ``run`` in its state ``spec``, next occurrences strictly
    after ``now`` (``only``: just that entry's), and the problems found. A ``once`` entry
    that fired in this visit has none; a timer already due stays as it is (it fires next)."""
    timers: list[PendingTimer] = []
    problems: list[str] = []
    pending = {t.at: t for t in run.timers if t.at is not None}
    # in name order, not the file's: a definition read back from PostgreSQL (JSONB) has its
    # keys in another order, and entries due together must fire alike everywhere
    for index, (name, entry) in enumerate(sorted(spec.at.items())):
        if only is not None and name != only:
            continue
        if entry.every == "once" and name in run.at_fired:
            continue
        old = pending.get(name)
        if old is not None and old.due_at <= now:
            timers.append(old)
            continue
        due, found = _next_due(name, entry, catalog, customer, run, now)
        problems += found
        if due is not None:
            timers.append(PendingTimer(index=index, label=f"at:{name}", due_at=due, at=name))
    return timers, problems


def arm(
    catalog: Catalog,
    state: CustomerState,
    run: Run,
    spec: State,
    now: datetime,
    *,
    only: str | None = None,
) -> None:
    """Put the calendar timers of ``spec`` (``only``: that entry's) into ``run.timers`` and
    their problems into ``state``: on entering a state, after a firing, on an upgrade.
    ``run`` and ``state`` are the interpreter's own copies, changed in place."""
    if not spec.at:
        return
    timers, problems = timers_for(catalog, state.customer, run, spec, now, only=only)
    kept = [t for t in run.timers if t.at is None or (only is not None and t.at != only)]
    run.timers = in_firing_order(kept + timers)
    record_problems(state, run, problems, now)


def occurrence(run: Run, spec: State, timer: PendingTimer) -> tuple[list[Rule], Event]:
    """What a calendar timer that fires runs: its entry's rule, and the timer event, whose
    id (part of the actions' idempotency keys) names the occurrence, so next year's
    message is not taken for this year's. Records the firing in ``run.at_fired``."""
    name = str(timer.at)
    entry = spec.at.get(name)
    run.at_fired = {**run.at_fired, name: timer.due_at}
    event = Event(
        name="timer",
        id=f"timer:{run.enrollment}:{run.visit}:at:{name}:{timer.due_at:%Y%m%dT%H%M}",
        timestamp=timer.due_at,
        properties={"at": name},
        source="timer",
    )
    return ([entry] if entry is not None else []), event


def record_problems(state: CustomerState, run: Run, messages: list[str], now: datetime) -> None:
    """Add each of ``messages`` to ``state.problems`` unless the same is already there for
    the run's state: a customer without a birthday is told once, not on every change."""
    known = {(p.journey, p.state, p.message) for p in state.problems}
    for message in messages:
        if (run.journey, run.state, message) in known:
            continue
        known.add((run.journey, run.state, message))
        state.problems.append(
            Problem(at=now, journey=run.journey, state=run.state, message=message)
        )
    del state.problems[:-MAX_PROBLEMS]


def refresh(catalog: Catalog, state: CustomerState, now: datetime) -> CustomerState:
    """``state`` with its calendar timers computed again from what is known of the customer
    now (a date trait that changed moves its timer): call it after every change of the
    customer. Without ``at:`` entries in the states the customer is in, it is ``state``
    itself, unchanged."""
    new = state
    for name in sorted(state.runs):
        run = new.runs[name]
        if run.status != "active" or Catalog.key(name, run.version) not in catalog.versions:
            continue
        spec = catalog.get(name, run.version).states.get(run.state)
        if spec is None or not spec.at:
            continue
        timers, problems = timers_for(catalog, new.customer, run, spec, now)
        merged = in_firing_order([t for t in run.timers if t.at is None] + timers)
        known = {(p.journey, p.state, p.message) for p in new.problems}
        fresh = [m for m in problems if (run.journey, run.state, m) not in known]
        if merged == run.timers and not fresh:
            continue
        if new is state:
            new = state.model_copy(
                update={"runs": dict(state.runs), "problems": list(state.problems)}
            )
        run = run.model_copy(update={"timers": merged})
        new.runs[name] = run
        record_problems(new, run, fresh, now)
    return new

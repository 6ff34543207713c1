"""Bounds of what ops may write: durations of at most ten years (longer ones would carry a
customer past the year 9999, where the interpreter could only fail), each holiday named
once, at most 20 arms with names of at most 64 characters; definitions stored before the
bounds still load. And the calendar at the ends of the years a date can have (a
placeholder birthday 0001-01-01 or 9999-12-31): a correct answer or a recorded problem,
never an exception. The exact texts are pinned by the golden files
``duration_too_long``, ``holiday_listed_twice`` and ``too_many_arms``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engine import machine
from engine._errors import JourneyValidationError
from engine._holiday_names import HOLIDAY_NAMES
from engine.actions import Split
from engine.calendar import next_occurrence
from engine.catalog import Catalog
from engine.durations import LONGEST, LONGEST_DAYS, DurationTooLong, parse_duration
from engine.experiments import MAX_ARMS
from engine.model import CalendarTimer, Goal, Journey
from engine.policy import load_policy
from engine.segments import load_segments
from engine.test_files import load_test_file
from tests.engine.support import catalog_of, customer, ev, load_journeys

TOO_LONG = f"is longer than {LONGEST_DAYS} days; write at most {LONGEST_DAYS}d (10 years)"
YAML = {"from_yaml": True}


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


# --- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["3651d", "1000000d", "P4000W", "522w", "87601h", "9" * 5000 + "s", "P" + "9" * 40 + "D"],
)
def test_a_duration_longer_than_ten_years_is_refused_with_the_limit(text: str):
    with pytest.raises(DurationTooLong) as exc:
        parse_duration(text)
    assert str(exc.value) == f"duration '{text}' {TOO_LONG}"


def test_ten_years_is_the_longest_duration_and_a_test_may_reach_twice_as_far():
    assert parse_duration("3650d") == parse_duration("521w3d") == LONGEST
    assert parse_duration("7300d", longest=2 * LONGEST) == 2 * LONGEST
    with pytest.raises(DurationTooLong, match="longer than 7300 days; write at most 7300d"):
        parse_duration("7301d", longest=2 * LONGEST)


LONG_WAITS = """\
journey: j
enroll: {on: [a]}
start: s
goal: {event: b, within: 3651d}
states:
  s:
    enter:
      - offer: {template: t, percent_off: 5, valid_for: 4000d}
      - task: {title: x, due_in: 4001d}
      - survey: {kind: nps, template: t, expires_in: 4002d}
    at:
      d: {date: customer.traits.birthday, before: 1000000d, after: 3652d}
    after: {4000000d: e, 3650d: e}
  e: {final: true}
"""


def test_every_duration_key_of_a_journey_is_bounded_where_it_is_written(tmp_path: Path):
    with pytest.raises(JourneyValidationError) as exc:
        load_journeys(tmp_path, LONG_WAITS)
    lines = LONG_WAITS.splitlines()
    where = [(p.path, lines[p.line - 1][p.col - 1 :].split(",")[0]) for p in exc.value.problems]
    assert where == [
        ("goal.within", "3651d}"),
        ("states.s.enter[0].offer.valid_for", "4000d}"),
        ("states.s.enter[1].task.due_in", "4001d}"),
        ("states.s.enter[2].survey.expires_in", "4002d}"),
        ("states.s.at.d.before", "1000000d"),
        ("states.s.at.d.after", "3652d}"),
        ("states.s.after.4000000d", "4000000d: e"),  # the key, not its rules
    ]
    assert all(TOO_LONG in p.message for p in exc.value.problems)


def test_policy_and_segment_durations_are_bounded_too(tmp_path: Path):
    (tmp_path / "policy.yaml").write_text(
        "frequency_caps:\n  - {name: weekly, max: 3, per: 4000d}\nawait_contact: 4000d\n"
    )
    with pytest.raises(JourneyValidationError) as exc:
        load_policy(tmp_path, display_root=tmp_path)
    assert [(p.path, TOO_LONG in p.message) for p in exc.value.problems] == [
        ("frequency_caps[0].per", True),
        ("await_contact", True),
    ]
    (tmp_path / "segments.yaml").write_text("window: 4000d\n")
    with pytest.raises(JourneyValidationError, match=r"segments.yaml:1:9 window: duration"):
        load_segments(tmp_path, display_root=tmp_path)


def test_a_definition_stored_before_the_bounds_still_loads():
    """Read back from PostgreSQL, durations are whole seconds and lists are as published."""
    long = 4000000 * 86400
    goal = Goal.model_validate({"event": "b", "within": long})
    assert goal.within == long
    entry = CalendarTimer.model_validate(
        {"calendar": "c", "names": ["new_year", "new_year"], "before": long}
    )
    assert entry.names == ["new_year", "new_year"]
    arms = {f"a{i}": 1 for i in range(MAX_ARMS + 5)} | {"b" * 100: 1}
    assert len(Split.model_validate({"experiment": "e", "arms": arms}).arms) == MAX_ARMS + 6
    stored = {
        "journey": "j",
        "enroll": {"on": ["a"]},
        "start": "s",
        "states": {
            "s": {"after": [{"label": "4000000d", "seconds": long, "rules": [{"goto": "e"}]}]},
            "e": {"final": True},
        },
    }
    journey = Journey.model_validate(stored)
    assert journey.states["s"].after[0].seconds == long
    # and runs: its timer waits to the end of the calendar, where 4000000d would fail
    now = utc(2026, 1, 5)
    step = machine.handle_event(Catalog.of([journey]), customer("c1"), ev("a", now), now)
    assert step.state.runs["j"].timers[0].due_at == datetime.max.replace(tzinfo=UTC)


def test_test_times_are_bounded_and_a_test_starts_in_a_sensible_year(tmp_path: Path):
    catalog = catalog_of(
        tmp_path, "journey: j\nenroll: {on: [a]}\nstart: s\nstates: {s: {final: true}}\n"
    )
    path = tmp_path / "j_test.yaml"
    path.write_text(
        "journey: j\ntests:\n  - name: far\n    start: 9999-12-01T00:00:00Z\n"
        "    steps:\n      - {at: 7301d, event: a}\n"
    )
    with pytest.raises(JourneyValidationError) as exc:
        load_test_file(path, "j_test.yaml", catalog)
    assert [(p.path, p.line) for p in exc.value.problems] == [
        ("tests[0].start", 4),
        ("tests[0].steps[0].at", 6),
    ]
    assert "a test starts in the years 1900 to 2200, not 9999" in exc.value.problems[0].message


# --- holidays and arms ------------------------------------------------------------------------


def test_a_holiday_named_twice_is_refused_at_the_second_and_the_list_is_capped():
    with pytest.raises(ValueError, match=r"'christmas' is listed twice \(first as names\[0\]\)"):
        CalendarTimer.model_validate(
            {"calendar": "c", "names": ["christmas", "new_year", "christmas"]}, context=YAML
        )
    every = list(HOLIDAY_NAMES)
    assert CalendarTimer.model_validate({"calendar": "c", "names": every}, context=YAML).names
    # one more than all known names is always a name listed twice (or an unknown one)
    with pytest.raises(ValueError, match="listed twice"):
        CalendarTimer.model_validate({"calendar": "c", "names": [*every, "easter"]}, context=YAML)


def test_a_split_has_at_most_20_arms_with_names_of_at_most_64_characters():
    arms = {f"a{i}": 1 for i in range(MAX_ARMS)}
    assert len(Split.model_validate({"experiment": "e", "arms": arms}, context=YAML).arms) == 20
    with pytest.raises(ValueError, match="a split has at most 20 arms, this one has 21"):
        Split.model_validate({"experiment": "e", "arms": {**arms, "one_more": 1}}, context=YAML)
    with pytest.raises(ValueError, match="has 65 characters; an arm's name has at most 64"):
        Split.model_validate({"experiment": "e", "arms": {"a" * 65: 1, "b": 1}}, context=YAML)
    with pytest.raises(ValueError, match="at most 64 characters"):
        Split.model_validate({"experiment": "e" * 65, "arms": {"a": 1, "b": 1}}, context=YAML)


# --- the calendar at the ends of the years ----------------------------------------------------

JOURNEY = """
journey: care
enroll: {on: [signed_up]}
start: waiting
states:
  waiting:
    at:
      soon: {date: customer.traits.birthday, before: 7d, do: [{tag: soon}]}
      later: {date: customer.traits.birthday, after: 3650d, time: "23:30", do: [{tag: later}]}
      once: {date: customer.traits.birthday, every: once, before: 3650d, do: [{tag: once}]}
      monthly: {date: customer.traits.birthday, every: month, do: [{tag: monthly}]}
    on: {closed: done}
  done: {final: true}
"""


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"])
@pytest.mark.parametrize("birthday", ["0001-01-01", "9999-12-31", "0001-01-01T00:00:00Z"])
def test_a_birthday_at_the_ends_of_the_calendar_is_an_answer_or_a_problem(
    tmp_path: Path, birthday: str, zone: str
):
    catalog = catalog_of(tmp_path, JOURNEY)
    now = utc(2026, 1, 5)
    step = machine.handle_event(
        catalog, customer("c1", birthday=birthday, timezone=zone), ev("signed_up", now), now
    )
    run = step.state.runs["care"]
    dues = {str(t.at): t.due_at for t in run.timers}
    problems = [p.message for p in step.state.problems]
    for name in ("soon", "later", "once", "monthly"):
        # every entry has a timer strictly later, or one problem saying why it has none
        has_problem = any(m.startswith(f"at {name}: ") for m in problems)
        assert (name in dues) != has_problem, (name, dues, problems)
        if name in dues:
            assert dues[name] > now
    if birthday == "9999-12-31":  # 9999-12-24 09:00 local is a correct answer
        assert dues["soon"].astimezone(ZoneInfo(zone)).date() == date(9999, 12, 24)
        assert any("no occurrence before the calendar ends" in m for m in problems)


def test_next_occurrence_never_raises_near_the_years_1_and_9999():
    for every in ("year", "month", "once"):
        for offsets in ({}, {"before": "3650d"}, {"after": "3650d"}):
            e = CalendarTimer.model_validate(
                {"date": "x", "every": every, "time": "23:30", **offsets}, context=YAML
            )
            for base in (date(1, 1, 1), date(9999, 12, 31)):
                for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
                    for after in (utc(1, 1, 2), utc(2026, 1, 5), utc(9999, 12, 20)):
                        got = next_occurrence(
                            e, base, has_year=True, zone=ZoneInfo(zone), after=after
                        )
                        assert got is None or got > after


@pytest.mark.parametrize(("text", "ok"), [("--03-05", True), ("03-05", True), ("-03-05", False)])
def test_a_date_without_a_year_is_mm_dd_or_iso_dashes_mm_dd(tmp_path: Path, text: str, ok: bool):
    catalog = catalog_of(tmp_path, JOURNEY)
    now = utc(2026, 1, 5)
    step = machine.handle_event(catalog, customer("c1", birthday=text), ev("signed_up", now), now)
    dues = {str(t.at) for t in step.state.runs["care"].timers}
    assert ("soon" in dues) is ok
    if not ok:
        assert any(f"'{text}' is not a date" in p.message for p in step.state.problems)

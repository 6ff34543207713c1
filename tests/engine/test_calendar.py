"""Calendar timers (``at:``): next occurrences, offsets, local times across the date line,
29 February, yearly re-arming, problems recorded once, holidays by country, validation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import machine
from engine._errors import JourneyValidationError
from engine._holiday_names import holiday_dates
from engine.calendar import next_occurrence, refresh
from engine.catalog import Catalog
from engine.identity import redact_traits
from engine.model import CalendarTimer, CustomerState
from tests.engine.support import catalog_of, customer, ev, load_journeys

JOURNEY = """
journey: care
enroll: {on: [signed_up]}
start: waiting
states:
  waiting:
    at:
      birthday: {date: customer.traits.birthday, before: 7d, time: "10:00",
                 do: [{tag: birthday_soon}]}
      anniversary: {date: customer.first_order, every: year, do: [{tag: anniversary}]}
      holidays: {calendar: customer.traits.country, names: [new_year, spring_festival],
                 do: [{tag: holiday}]}
    on:
      closed: done
  done:
    final: true
"""


def entry(**fields: object) -> CalendarTimer:
    return CalendarTimer.model_validate({"date": "x", **fields})


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


BERLIN = ZoneInfo("Europe/Berlin")


# --- next occurrence ------------------------------------------------------------------------


def test_the_next_birthday_is_strictly_after_the_bound_at_nine_local_by_default():
    born = date(1990, 3, 5)
    e = entry()
    assert next_occurrence(e, born, has_year=True, zone=BERLIN, after=utc(2026, 1, 5)) == utc(
        2026, 3, 5, 8
    )
    # exactly at the occurrence: the next one is a year later
    at = utc(2026, 3, 5, 8)
    assert next_occurrence(e, born, has_year=True, zone=BERLIN, after=at) == utc(2027, 3, 5, 8)


def test_before_after_and_time_are_wall_clock_in_the_customer_zone():
    born = date(1990, 4, 2)  # a week before is 26 March, before the switch to summer time
    soon = entry(before="7d", time="10:00")
    assert next_occurrence(soon, born, has_year=True, zone=BERLIN, after=utc(2026, 1, 1)) == (
        utc(2026, 3, 26, 9)  # 10:00 CET
    )
    day = entry(time="10:00")
    assert next_occurrence(day, born, has_year=True, zone=BERLIN, after=utc(2026, 1, 1)) == (
        utc(2026, 4, 2, 8)  # 10:00 CEST
    )
    later = entry(after="2d", time="18:30")
    assert next_occurrence(later, born, has_year=True, zone=BERLIN, after=utc(2026, 1, 1)) == (
        utc(2026, 4, 4, 16, 30)
    )


def test_time_zones_across_the_date_line_are_a_day_apart():
    born, e = date(1990, 6, 15), entry(time="10:00")
    after = utc(2026, 1, 1)
    kiritimati = next_occurrence(
        e, born, has_year=True, zone=ZoneInfo("Pacific/Kiritimati"), after=after
    )
    pago = next_occurrence(e, born, has_year=True, zone=ZoneInfo("Pacific/Pago_Pago"), after=after)
    assert kiritimati == utc(2026, 6, 14, 20)  # UTC+14: 10:00 on the 15th is the 14th in UTC
    assert pago == utc(2026, 6, 15, 21)  # UTC-11
    assert pago - kiritimati == timedelta(hours=25)


def test_29_february_falls_on_28_february_in_other_years():
    leap, e = date(2000, 2, 29), entry(time="10:00")
    first = next_occurrence(e, leap, has_year=True, zone=UTC, after=utc(2026, 1, 1))
    assert first == utc(2026, 2, 28, 10)
    again = next_occurrence(e, leap, has_year=True, zone=UTC, after=utc(2027, 3, 1))
    assert again == utc(2028, 2, 29, 10)


def test_month_and_once_and_dates_without_a_year():
    day31 = date(2025, 1, 31)
    monthly = entry(every="month")
    got = next_occurrence(monthly, day31, has_year=True, zone=UTC, after=utc(2026, 2, 1))
    assert got == utc(2026, 2, 28, 9)  # the month's last day
    once = entry(every="once")
    renewal = date(2026, 5, 1)
    assert next_occurrence(once, renewal, has_year=True, zone=UTC, after=utc(2026, 1, 1)) == utc(
        2026, 5, 1, 9
    )
    assert next_occurrence(once, renewal, has_year=True, zone=UTC, after=utc(2026, 6, 1)) is None
    # a date with a year never occurs before itself; one without a year does every year
    future = date(2027, 8, 1)
    assert next_occurrence(entry(), future, has_year=True, zone=UTC, after=utc(2026, 1, 1)) == utc(
        2027, 8, 1, 9
    )
    far = date(2031, 8, 1)  # far ahead: still found, on the date itself, then yearly
    assert next_occurrence(entry(), far, has_year=True, zone=UTC, after=utc(2026, 1, 1)) == utc(
        2031, 8, 1, 9
    )
    monthly_far = next_occurrence(monthly, far, has_year=True, zone=UTC, after=utc(2026, 1, 1))
    assert monthly_far == utc(2031, 8, 1, 9)
    yearless = date(2000, 8, 1)
    got = next_occurrence(entry(), yearless, has_year=False, zone=UTC, after=utc(2026, 1, 1))
    assert got == utc(2026, 8, 1, 9)


# --- in the interpreter -------------------------------------------------------------------


def start(tmp_path: Path, **traits: object) -> tuple[Catalog, CustomerState]:
    catalog = catalog_of(tmp_path, JOURNEY)
    step = machine.handle_event(
        catalog, customer("c1", **traits), ev("signed_up", utc(2026, 1, 5)), utc(2026, 1, 5)
    )
    return catalog, step.state


def dues(state: CustomerState) -> dict[str, datetime]:
    return {str(t.at): t.due_at for t in state.runs["care"].timers if t.at}


def test_entering_arms_every_entry_and_firing_rearms_it_a_year_later(tmp_path: Path):
    catalog, state = start(tmp_path, birthday="1990-03-05", country="CN", timezone="Asia/Shanghai")
    assert dues(state) == {
        "birthday": utc(2026, 2, 26, 2),  # 10:00 in Shanghai, a week before
        "holidays": utc(2026, 2, 17, 1),  # Chinese New Year 2026, 09:00 local
    }
    step = machine.fire_timers(catalog, state, utc(2026, 3, 1))
    assert [a.args["add"] for a in step.actions] == [["holiday"], ["birthday_soon"]]
    assert dues(step.state) == {"birthday": utc(2027, 2, 26, 2), "holidays": utc(2027, 1, 1, 1)}
    keys = {a.idempotency_key for a in step.actions}
    nxt = machine.fire_timers(catalog, step.state, utc(2027, 3, 1))
    assert len(nxt.actions) == 3 and not keys & {a.idempotency_key for a in nxt.actions}
    run = nxt.state.runs["care"]
    assert run.history[-1].to_state == "waiting"  # firing is no transition
    left = machine.handle_event(catalog, nxt.state, ev("closed", utc(2027, 3, 2)), utc(2027, 3, 2))
    assert left.state.runs["care"].timers == []


def test_a_missing_or_malformed_date_is_one_problem_not_a_crash(tmp_path: Path):
    catalog, state = start(tmp_path, birthday="05/03/1990", country="CN")
    messages = [p.message for p in state.problems]
    assert len(messages) == 2  # the birthday, and the anniversary without a first order
    assert "anniversary" in messages[0]  # entries in name order
    assert "'05/03/1990' is not a date" in messages[1]
    for day in (1, 2, 3):  # more changes of the customer: the same problems stay single
        at = utc(2026, 1, 5 + day)
        state = state.model_copy(
            update={"customer": machine.patch_customer(state.customer, traits={"plan": "x"})}
        )
        state = refresh(catalog, state, at)
    assert [p.message for p in state.problems] == messages
    assert "birthday" not in dues(state)
    fixed = state.model_copy(
        update={
            "customer": machine.patch_customer(state.customer, traits={"birthday": "1990-03-05"})
        }
    )
    assert dues(refresh(catalog, fixed, utc(2026, 1, 9)))["birthday"] == utc(2026, 2, 26, 10)


def test_a_date_changed_while_waiting_moves_the_timer(tmp_path: Path):
    catalog, state = start(tmp_path, birthday="1990-06-01", timezone="UTC")
    assert dues(state)["birthday"] == utc(2026, 5, 25, 10)
    moved = state.model_copy(
        update={
            "customer": machine.patch_customer(state.customer, traits={"birthday": "1990-02-01"})
        }
    )
    assert dues(refresh(catalog, moved, utc(2026, 1, 10)))["birthday"] == utc(2026, 1, 25, 10)
    first = state.model_copy(
        update={"customer": machine.patch_customer(state.customer, first_order=utc(2025, 4, 1, 12))}
    )
    assert dues(refresh(catalog, first, utc(2026, 1, 10)))["anniversary"] == utc(2026, 4, 1, 9)


def test_refresh_changes_nothing_for_journeys_without_at(tmp_path: Path):
    plain = """
    journey: plain
    enroll: {on: [signed_up]}
    start: a
    states:
      a: {after: {1d: b}}
      b: {final: true}
    """
    catalog = catalog_of(tmp_path, plain)
    state = machine.handle_event(
        catalog, customer("c1", birthday="1990-01-01"), ev("signed_up"), utc(2026, 1, 1)
    ).state
    assert refresh(catalog, state, utc(2026, 1, 1, 1)) is state


def test_the_policy_default_zone_applies_without_a_zone_trait(tmp_path: Path):
    catalog = catalog_of(tmp_path, JOURNEY).model_copy(
        update={"default_time_zone": "Pacific/Kiritimati"}
    )
    state = customer("c1", birthday="1990-03-05")
    state = machine.handle_event(catalog, state, ev("signed_up"), utc(2026, 1, 5)).state
    assert dues(state)["birthday"] == utc(2026, 2, 25, 20)


def test_upgrade_rearms_calendar_timers(tmp_path: Path):
    v1_text = JOURNEY.replace('time: "10:00"', 'time: "08:00"')
    (v1,) = load_journeys(tmp_path, v1_text)
    (v2,) = load_journeys(tmp_path, JOURNEY)
    catalog = Catalog(
        versions={"care@1": v1.model_copy(update={"version": 1}), "care@2": v2},
        latest={"care": 1},
    )
    state = customer("c1", birthday="1990-03-05", timezone="UTC")
    state = machine.handle_event(catalog, state, ev("signed_up"), utc(2026, 1, 5)).state
    assert dues(state)["birthday"] == utc(2026, 2, 26, 8)
    newer = catalog.model_copy(
        update={
            "versions": {**catalog.versions, "care@2": v2.model_copy(update={"version": 2})},
            "latest": {"care": 2},
            "floor": {"care": 2},
        }
    )
    upgraded = machine.upgrade(newer, state, utc(2026, 1, 6)).state
    assert dues(upgraded)["birthday"] == utc(2026, 2, 26, 10)


# --- holidays -------------------------------------------------------------------------------


def test_holiday_lists_for_two_countries_with_a_lunar_festival():
    cn = holiday_dates("CN", 2026)
    assert cn["new_year"] == date(2026, 1, 1)
    assert cn["spring_festival"] == date(2026, 2, 17)  # the lunar new year moves
    assert holiday_dates("cn", 2027)["spring_festival"] == date(2027, 2, 6)
    assert cn["mid_autumn"] == date(2026, 9, 25)
    de = holiday_dates("DE", 2026)
    assert de["new_year"] == date(2026, 1, 1)
    assert de["good_friday"] == date(2026, 4, 3)
    assert de["christmas"] == date(2026, 12, 25)
    assert "spring_festival" not in de


def test_a_holiday_the_country_lacks_is_a_problem_and_the_others_fire(tmp_path: Path):
    _, state = start(tmp_path, birthday="1990-03-05", country="DE", timezone="UTC")
    assert dues(state)["holidays"] == utc(2027, 1, 1, 9)
    assert any("DE has no spring_festival" in p.message for p in state.problems)
    _, unknown = start(tmp_path, birthday="1990-03-05", country="XX")
    assert any("'XX' is not a country" in p.message for p in unknown.problems)


# --- what journeys may read, and validation ---------------------------------------------


def test_birthdays_and_dates_reach_journeys_contact_details_do_not():
    traits = {
        "birthday": "1990-02-29",
        "signed_up_at": "2026-01-05T09:00:00Z",
        "phone": "+49 170 1234567",
        "mobile_number": "0170 1234567",
        "first_name": "Ann",
        "email": "ann@example.com",
        "note": "0170 1234567",
    }
    assert redact_traits(traits) == {
        "birthday": "1990-02-29",
        "signed_up_at": "2026-01-05T09:00:00Z",
    }


BAD = """
journey: bad
enroll: {on: [signed_up]}
start: a
states:
  a:
    at:
      one: {date: customer.traits.birthday, time: "25:00"}
      two: {calendar: customer.traits.country, names: [new_yaer]}
      three: {date: customer.traits.birthday, calendar: customer.traits.country, names: [easter]}
      four: {date: customer.traits.birthday, evry: year}
    on: {x: b}
  b: {final: true}
"""


def test_mistakes_in_at_entries_are_reported_at_file_line_col(tmp_path: Path):
    with pytest.raises(JourneyValidationError) as exc:
        load_journeys(tmp_path, BAD)
    text = str(exc.value)
    assert "j0.yaml:8:51 states.a.at.one.time: '25:00' is not a time of day" in text
    assert (
        "j0.yaml:9:56 states.a.at.two.names[0]: unknown holiday 'new_yaer' (did you mean "
        "'new_year'?)" in text
    )
    assert "j0.yaml:10:7 states.a.at.three: give either date:" in text
    assert "j0.yaml:11:46 states.a.at.four.evry: unknown key 'evry' (did you mean 'every'?)" in text


def test_the_simulator_follows_an_identify_that_brings_the_birthday(tmp_path: Path):
    from engine.simulate import Message, simulate

    catalog = catalog_of(tmp_path, JOURNEY)
    messages = [
        Message("track", "s1", utc(2026, 1, 5), 1, event=ev("signed_up", utc(2026, 1, 5))),
        Message("identify", "s1", utc(2026, 1, 6), 2, traits={"birthday": "1990-03-05"}),
    ]
    (result,) = simulate(catalog, messages, until=utc(2026, 3, 1))
    assert [a.args["add"] for a in result.actions] == [["birthday_soon"]]
    assert dues(result.state)["birthday"] == utc(2027, 2, 26, 10)


_ZONES = ["UTC", "Europe/Berlin", "Pacific/Kiritimati", "Pacific/Pago_Pago", "America/New_York"]


@settings(max_examples=300, deadline=None)
@given(
    base=st.dates(min_value=date(1950, 1, 1), max_value=date(2020, 12, 31)),
    after=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 12, 31)),
    zone=st.sampled_from(_ZONES),
)
def test_a_yearly_occurrence_is_the_first_on_the_day_at_the_local_time(base, after, zone):
    tz, bound = ZoneInfo(zone), after.replace(tzinfo=UTC)
    e = entry(time="10:00")
    got = next_occurrence(e, base, has_year=True, zone=tz, after=bound)
    assert got is not None and got > bound
    local = got.astimezone(tz)
    assert (local.hour, local.minute) == (10, 0)
    leap_day_moved = (base.month, base.day) == (2, 29) and (local.month, local.day) == (2, 28)
    assert (local.month, local.day) == (base.month, base.day) or leap_day_moved
    # the one a year earlier was not after the bound: this is the first
    earlier = local.replace(year=local.year - 1, day=min(local.day, 28 if local.month == 2 else 31))
    assert earlier.astimezone(UTC) <= bound or earlier.date() < base

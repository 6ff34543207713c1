"""Calendar timers in the real customer workflow on the time-skipping server, with real
PostgreSQL: a birthday on 29 February across the date line, a holiday of the lunar
calendar, continue-as-new on the way, and a birthday changed while waiting."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from engine._holiday_names import holiday_dates
from engine.identity import workflow_id
from engine.model import CustomerState, Event
from orchestration import customers
from orchestration.codec import data_converter
from orchestration.replay import replay_history
from settings import DEV_PAYLOAD_KEYS
from tests.conftest import running_worker
from tests.helpers import journeys_from, publish
from workflows.customer import CustomerWorkflow
from workflows.io import CustomerPatch

CARE = """
journey: care
enroll: {on: [joined]}
context: {birthdays: 0, holidays: 0}
start: member
states:
  member:
    at:
      birthday:
        date: customer.traits.birthday
        time: "10:00"
        set: {birthdays: 'ctx.birthdays + 1'}
      festival:
        calendar: customer.traits.country
        names: [spring_festival]
        set: {holidays: 'ctx.holidays + 1'}
    on:
      left: gone
  gone: {final: true}
"""


def _event(name: str, at: datetime) -> Event:
    return Event(name=name, id=str(uuid.uuid4()), timestamp=at)


def _dues(state: CustomerState) -> dict[str, datetime]:
    return {str(t.at): t.due_at for t in state.runs["care"].timers if t.at}


async def _replays(client: Any, cid: str) -> None:
    """A worker without the customer in its cache replays the same decisions, holidays and
    all. RECORD_HISTORIES=NAME keeps the history in tests/histories/NAME.json, for the
    replay tests of later versions."""
    history = await client.get_workflow_handle(workflow_id(cid)).fetch_history()
    failure = await replay_history(
        history, workflows=[CustomerWorkflow], data_converter=data_converter(DEV_PAYLOAD_KEYS)
    )
    assert failure is None, failure
    name = os.environ.get("RECORD_HISTORIES")
    if name:
        (Path(__file__).parent / "histories" / f"{name}.json").write_text(history.to_json())


def _next_feb_28(after: datetime) -> int:
    """The first year after ``after`` whose 28 February comes later and that has no 29th."""
    year = after.year + (1 if (after.month, after.day) >= (2, 28) else 0)
    while year % 4 == 0:
        year += 1
    return year


async def test_a_29_february_birthday_and_a_lunar_holiday_fire_across_continue_as_new(
    time_env, db, db_url, task_queue, tmp_path: Path
):
    seq = await publish(db_url, journeys_from(tmp_path, "care", CARE))
    client = time_env.client
    cid = f"cal-{task_queue}"
    kiritimati = ZoneInfo("Pacific/Kiritimati")  # UTC+14: the first birthdays on Earth
    patch = CustomerPatch(
        traits={"birthday": "2000-02-29", "timezone": "Pacific/Kiritimati", "country": "CN"}
    )
    async with running_worker(client, db, task_queue):
        now = await time_env.get_current_time()
        handle = await customers.send_events(
            client,
            cid,
            [_event("joined", now)],
            task_queue=task_queue,
            catalog_seq=seq,
            customer=patch,
            max_steps_per_run=2,
        )
        first_run = (await handle.describe()).run_id
        await time_env.sleep(timedelta(seconds=1))
        state = await customers.state(client, cid)
        year = _next_feb_28(now)
        birthday = datetime(year, 2, 28, 10, tzinfo=kiritimati).astimezone(UTC)
        festival_day = next(
            d
            for y in (now.year, now.year + 1, now.year + 2)
            if (d := holiday_dates("CN", y)["spring_festival"]) > now.astimezone(kiritimati).date()
        )
        festival = datetime.combine(festival_day, datetime.min.time().replace(hour=9))
        festival = festival.replace(tzinfo=kiritimati).astimezone(UTC)
        assert _dues(state) == {"birthday": birthday, "festival": festival}
        for _ in range(4):  # a few events: max_steps_per_run=2 continues as new
            await customers.send_events(
                client,
                cid,
                [_event("browsed", await time_env.get_current_time())],
                task_queue=task_queue,
                catalog_seq=seq,
                max_steps_per_run=2,
            )
        await time_env.sleep(timedelta(seconds=1))
        later_run = (await client.get_workflow_handle(workflow_id(cid)).describe()).run_id
        assert later_run != first_run
        assert _dues(await customers.state(client, cid)) == {
            "birthday": birthday,
            "festival": festival,
        }
        until_both = max(birthday, festival) - await time_env.get_current_time()
        await time_env.sleep(until_both + timedelta(hours=1))
        end = await time_env.get_current_time()
        state = await customers.state(client, cid)
        run = state.runs["care"]
        # once each, unless the time of year puts a second one in the window
        birthdays = sum(
            now < datetime(y, 2, 29 if y % 4 == 0 else 28, 10, tzinfo=kiritimati) <= end
            for y in range(now.year, end.year + 1)
        )
        festivals = sum(
            now < datetime.combine(d, datetime.min.time().replace(hour=9), kiritimati) <= end
            for y in range(now.year, end.year + 1)
            if (d := holiday_dates("CN", y)["spring_festival"])
        )
        assert run.context == {"birthdays": birthdays, "holidays": festivals}
        assert birthdays >= 1 and festivals >= 1
        assert run.state == "member"
        assert _dues(state)["birthday"].astimezone(kiritimati).date() in {
            date(year + 1, 2, 28),
            date(year + 1, 2, 29),
        }
        assert _dues(state)["festival"] > festival + timedelta(days=300)
        assert state.problems == []
        await _replays(client, cid)


def _no_leap_day(day: date) -> date:
    """``day``, or the next one when it is 29 February (no day of 1990)."""
    return day + timedelta(days=1) if (day.month, day.day) == (2, 29) else day


async def test_a_birthday_changed_while_waiting_moves_the_timer(
    time_env, db, db_url, task_queue, tmp_path: Path
):
    seq = await publish(db_url, journeys_from(tmp_path, "care", CARE))
    client = time_env.client
    cid = f"moved-{task_queue}"
    async with running_worker(client, db, task_queue):
        now = await time_env.get_current_time()
        far = _no_leap_day((now + timedelta(days=200)).date())
        await customers.send_events(
            client,
            cid,
            [_event("joined", now)],
            task_queue=task_queue,
            catalog_seq=seq,
            customer=CustomerPatch(traits={"birthday": f"1990-{far:%m-%d}", "timezone": "UTC"}),
        )
        await time_env.sleep(timedelta(seconds=1))
        state = await customers.state(client, cid)
        assert _dues(state)["birthday"].date() == far
        assert [p.message for p in state.problems] == [
            p.message for p in state.problems if "festival" in p.message
        ]  # no country: the festival's problem, recorded once
        soon = _no_leap_day((now + timedelta(days=10)).date())
        await customers.send_events(
            client,
            cid,
            [_event("browsed", await time_env.get_current_time())],
            task_queue=task_queue,
            catalog_seq=seq,
            customer=CustomerPatch(traits={"birthday": f"1990-{soon:%m-%d}"}),
        )
        await time_env.sleep(timedelta(seconds=1))
        state = await customers.state(client, cid)
        assert _dues(state)["birthday"] == datetime.combine(soon, datetime.min.time()).replace(
            hour=10, tzinfo=UTC
        )
        assert len(state.problems) == 1
        await time_env.sleep(timedelta(days=11))
        state = await customers.state(client, cid)
        assert state.runs["care"].context["birthdays"] == 1
        assert _dues(state)["birthday"].date().year == soon.year + 1


async def test_the_segment_refresh_carries_the_first_order_to_the_workflow_patch(db):
    """``customer.first_order`` (an anniversary's date) comes from the refresh's metrics,
    as rfm and ltv do: the standing the dispatcher patches the workflow's customer with."""
    from engine.segments import Segments
    from ingest._signals import patch_of as _patch
    from store import customers as customer_store
    from store import segments as segment_store
    from tests.test_segments_sql import AS_OF, order

    first = AS_OF - timedelta(days=300)
    async with db.connection() as conn:
        await order(conn, "fo", first, 40)
        await order(conn, "fo", AS_OF - timedelta(days=3), 60)
        await segment_store.refresh(conn, Segments(), as_of=AS_OF)
        (standing,) = await customer_store.standings(conn, ["fo"])
    patch = _patch(standing)
    assert patch is not None and patch.first_order == first


HOLIDAYS = CARE.replace("names: [spring_festival]", "names: [new_year, spring_festival]")


def _expected_holidays(country: str, zone: ZoneInfo, start: datetime, end: datetime) -> int:
    """How many times new_year and spring_festival (09:00 local) come in (start, end], by
    the package's list for ``country``."""
    count = 0
    for year in range(start.year, end.year + 1):
        days = holiday_dates(country, year)
        for name in ("new_year", "spring_festival"):
            if name in days:
                moment = datetime.combine(days[name], datetime.min.time().replace(hour=9))
                count += start < moment.replace(tzinfo=zone).astimezone(UTC) <= end
    return count


async def test_two_countries_across_the_date_line_on_the_real_workflow(
    time_env, db, db_url, task_queue, tmp_path: Path
):
    seq = await publish(db_url, journeys_from(tmp_path, "care", HOLIDAYS))
    client = time_env.client
    people = {  # the same birthday, 25 hours apart: UTC+14 and UTC-11
        f"kiri-{task_queue}": ("Pacific/Kiritimati", "CN"),
        f"pago-{task_queue}": ("Pacific/Pago_Pago", "DE"),
    }
    async with running_worker(client, db, task_queue):
        start = await time_env.get_current_time()
        for cid, (zone, country) in people.items():
            traits = {"birthday": "2000-02-29", "timezone": zone, "country": country}
            await customers.send_events(
                client,
                cid,
                [_event("joined", start)],
                task_queue=task_queue,
                catalog_seq=seq,
                customer=CustomerPatch(traits=traits),
            )
        await time_env.sleep(timedelta(seconds=1))
        kiri, pago = [await customers.state(client, cid) for cid in people]
        assert _dues(pago)["birthday"] - _dues(kiri)["birthday"] == timedelta(hours=25)
        end = _dues(pago)["birthday"] + timedelta(hours=1)
        await time_env.sleep(end - await time_env.get_current_time())
        for cid, (zone, country) in people.items():
            state = await customers.state(client, cid)
            expected = _expected_holidays(country, ZoneInfo(zone), start, end)
            assert state.runs["care"].context == {"birthdays": 1, "holidays": expected}
        kiri, pago = [await customers.state(client, cid) for cid in people]
        await _replays(client, next(iter(people)))
        assert kiri.problems == []
        assert [p.message for p in pago.problems] == [
            "at festival: the holiday calendar of DE has no spring_festival; that name never "
            "fires for this customer"
        ]

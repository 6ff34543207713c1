"""The staff figures (response time per pool and manager, overdue tasks, detractor
call-backs) against a hand-built history with answers worked out by hand, and their place
in the text and the HTML page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from reports import build_report, render_html, render_text
from store.reports import staff_figures
from tests.report_seed import connect

T = datetime(2026, 3, 2, 9, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
AS_OF = T + 2 * D
SINCE = T - D

# (manager or None, queue pool or None, customer, created, completed or None, due)
TASKS: list[tuple[str | None, str | None, str, datetime, datetime | None, datetime]] = [
    ("Ann", None, "a1", T, T + 1 * H, T + D),
    ("Ann", None, "a2", T, T + 3 * H, T + D),
    ("Ann", None, "a3", T, T + 5 * H, T + D),
    ("Ann", None, "a4", T, None, T + D),  # open, overdue at AS_OF
    ("Bob", None, "b1", T, T + 2 * H, T + D),
    ("Bob", None, "b2", T, None, T + 3 * D),  # open, not yet due
    ("Bob", None, "b3", T - 30 * D, None, T - 29 * D),  # before the period, overdue now
    (None, "sales", "s1", T, T + 10 * H, T + D),
    (None, "sales", "s2", T, None, T + D),  # overdue
    (None, "sales", "s3", T - 30 * D, T - 30 * D + 100 * H, T - 29 * D),  # before the period
    # the nps journey's call-backs, for customers without a manager
    (None, None, "d1", T, T + 3 * H, T + 2 * D),  # d1 answered at T: called back in 3h
    (None, None, "d2", T + H / 60, None, T + 5 * D),  # d2: still waiting
    (None, None, "d3", T - H, T, T + D),  # created before d3's answer: not its call-back
]
# (customer, score, answered)
ANSWERS = [
    ("d1", 3, T),
    ("d2", 6, T),
    ("d3", 0, T),  # waiting: the only task came before the answer
    ("p1", 10, T),  # a promoter
    ("d4", 2, T - 10 * D),  # before the period
]


async def seed(conn: psycopg.AsyncConnection[Any]) -> None:
    cur = await conn.execute(
        "INSERT INTO managers (pool, name, email, capacity) VALUES"
        " ('vip', 'Ann', 'ann@x.example', 4), ('vip', 'Bob', 'bob@x.example', 4) RETURNING id"
    )
    ids = dict(zip(["Ann", "Bob"], [r[0] for r in await cur.fetchall()], strict=True))
    for i, (manager, pool, customer, created, completed, due) in enumerate(TASKS):
        await conn.execute(
            "INSERT INTO tasks (idempotency_key, customer_id, journey, title, pool, manager_id,"
            " due_at, status, created_at, completed_at)"
            " VALUES (%s, %s, 'nps', 'call', %s, %s, %s, %s, %s, %s)",
            (
                f"t{i}",
                customer,
                pool,
                ids[manager] if manager else None,
                due,
                "done" if completed else "open",
                created,
                completed,
            ),
        )
    for i, (customer, score, answered) in enumerate(ANSWERS):
        await conn.execute(
            "INSERT INTO surveys (token, idempotency_key, customer_id, journey, template, kind,"
            " expires_at, created_at, answered_at, score)"
            " VALUES (%s, %s, %s, 'nps', 't', 'nps', %s, %s, %s, %s)",
            (f"s{i}", f"ks{i}", customer, answered + 14 * D, answered - D, answered, score),
        )


@pytest.fixture
async def staffed(db_url: str) -> str:
    async with await connect(db_url) as conn:
        await seed(conn)
    return db_url


def hours(h: float) -> float:
    return h * 3600


async def test_response_time_per_pool_and_manager(staffed):
    async with await connect(staffed) as conn:
        staff = await staff_figures(conn, as_of=AS_OF, since=SINCE)
    got = [
        (r.pool, r.manager, r.created, r.completed, r.median_seconds, r.p90_seconds, r.overdue)
        for r in staff.rows
    ]
    assert got == [
        ("sales", None, 2, 1, hours(10), hours(10), 1),
        # 3h (d1) and 1h (d3, created an hour before its answer); d2 still open
        ("unassigned", None, 3, 2, hours(2), pytest.approx(hours(2.8)), 0),
        # 1, 2, 3, 5 h: median 2.5h; p90 at 0.9 * 3 = 2.7 of the way: 3 + 0.7 * 2 = 4.4h
        ("vip", None, 6, 4, hours(2.5), pytest.approx(hours(4.4)), 2),
        # 1, 3, 5 h: p90 at 0.9 * 2 = 1.8: 3 + 0.8 * 2 = 4.6h
        ("vip", "Ann", 4, 3, hours(3), pytest.approx(hours(4.6)), 1),
        ("vip", "Bob", 2, 1, hours(2), hours(2), 1),  # b3 is older than the period, overdue
    ]


async def test_all_time_counts_the_older_tasks(staffed):
    async with await connect(staffed) as conn:
        staff = await staff_figures(conn, as_of=AS_OF)
    sales = staff.rows[0]
    assert (sales.pool, sales.created, sales.completed) == ("sales", 3, 2)
    assert sales.median_seconds == hours(55)  # 10h and 100h
    assert staff.callbacks.answers == 4  # d4 too, still waiting


async def test_detractor_call_backs(staffed):
    async with await connect(staffed) as conn:
        cb = (await staff_figures(conn, as_of=AS_OF, since=SINCE)).callbacks
    assert (cb.answers, cb.called_back, cb.waiting) == (3, 1, 2)
    assert (cb.median_seconds, cb.p90_seconds) == (hours(3), hours(3))


async def test_page_and_text_show_the_staff_section(staffed):
    async with await connect(staffed) as conn:
        report = await build_report(conn, since=SINCE, now=AS_OF)
    assert report.staff is not None and len(report.staff.rows) == 5
    page = render_html(report)
    body = page.split('<section id="staff"')[1].split("</section>")[0]
    assert "No data yet." not in body and '<div class="scroll"><table>' in body
    assert "<td>Ann</td><td>4</td><td>3</td><td>3h</td><td>4h 36m</td><td>1</td>" in body
    assert "<td>3</td><td>1</td><td>2</td><td>3h</td><td>3h</td>" in body
    assert '<a href="#staff">' in page
    text = render_text(report)
    section = text.split("Staff: response time and call-backs\n")[1].split("\n\n\n")[0]
    assert re.search(r"\nvip +\(all\) +6 +4 +2h 30m +4h 24m +2\n", section)
    assert re.search(r"\nsales +\(all\) +2 +1 +10h +10h +1\n", section)
    assert re.search(r"\n3 +1 +2 +3h +3h", section)


async def test_empty_database_has_no_staff_figures(db_url):
    async with await connect(db_url) as conn:
        report = await build_report(conn)
    assert report.staff is not None and report.staff.rows == []
    assert (report.staff.callbacks.answers, report.staff.callbacks.median_seconds) == (0, None)
    body = render_html(report).split('<section id="staff"')[1].split("</section>")[0]
    assert "No data yet." in body
    assert "Staff" not in render_text(report)  # shown once there are tasks or detractors

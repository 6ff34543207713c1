"""The report's forecast section against real PostgreSQL: the calibration of a kept
refresh by decile of expected orders against purchases counted by hand (same-day orders
one purchase, the 90 days' bounds), predicted CLV by tier and segment, the sentence while
no refresh is 90 days old, nothing at all without a forecast; and the refresh's own
forecast history (one kept per 30 days, the latest 5) feeding it end to end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from engine.segments import Segments
from reports import build_report, render_html, render_text
from store import forecasts
from store import segments as store
from tests.report_seed import connect, seeded
from tests.test_forecast_refresh import insert, population

__all__ = ["seeded"]  # a fixture, used by name

AS_OF = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)
_seq = iter(range(10**9))


async def event(conn, customer: str, at: datetime, name: str = "order_completed") -> None:
    await conn.execute(
        "INSERT INTO events (source, message_id, type, customer_id, name, properties,"
        " event_time, received_at) VALUES (1, %s, 'track', %s, %s, %s, %s, %s)",
        (f"r{next(_seq)}", customer, name, json.dumps({"revenue": 10}), at, at),
    )


async def kept_refresh(conn, as_of: datetime, predicted: dict[str, float]) -> int:
    """A finished refresh that forecast and kept these expected orders."""
    cur = await conn.execute(
        "INSERT INTO segment_refreshes (as_of, definitions, finished_at)"
        " VALUES (%s, 'x', %s) RETURNING id",
        (as_of, as_of),
    )
    (rid,) = await cur.fetchone()
    await conn.execute(
        "INSERT INTO forecast_fits (refresh_id, r, alpha, a, b, customers, repeat_customers,"
        " order_events) VALUES (%s, 1, 1, 1, 1, %s, %s, '{order_completed}')",
        (rid, len(predicted), len(predicted)),
    )
    for customer, value in predicted.items():
        await conn.execute(
            "INSERT INTO forecast_history (refresh_id, customer_id, expected_orders_90d)"
            " VALUES (%s, %s, %s)",
            (rid, customer, value),
        )
    return rid


async def metrics(conn, rid: int, rows: list[tuple[str, str, str, float | None, float | None]]):
    for customer, segment, tier, p_alive, clv in rows:
        await conn.execute(
            "INSERT INTO customer_metrics (customer_id, refresh_id, as_of, orders, revenue,"
            " r, f, m, segment, tier, ltv, ltv_orders, computed_at, p_alive, churn_risk,"
            " expected_orders_90d, predicted_clv_365d)"
            " VALUES (%s, %s, %s, 1, 10, 3, 3, 3, %s, %s, 10, 1, %s, %s, 1 - %s::float8, 0.5, %s)",
            (customer, rid, AS_OF, segment, tier, AS_OF, p_alive, p_alive, clv),
        )


async def test_calibration_by_decile_and_clv_by_tier_and_segment(db_url):
    # 20 customers, c01 expecting 0.1 purchases ... c20 2.0: two customers per decile
    predicted = {f"c{i:02}": i / 10 for i in range(1, 21)}
    async with await connect(db_url) as conn:
        rid = await kept_refresh(conn, AS_OF, predicted)
        await event(conn, "c01", AS_OF + 91 * DAY)  # after the 90 days: not counted
        await event(conn, "c02", AS_OF + 90 * DAY)  # the last moment of the 90 days
        await event(conn, "c03", AS_OF + 5 * DAY, name="page_viewed")  # not an order
        await event(conn, "c04", AS_OF - DAY)  # before as_of: already in the forecast
        await event(conn, "c18", AS_OF + timedelta(hours=2))  # as_of's day, a first order
        await event(conn, "c19", AS_OF - timedelta(hours=3))  # ordered that day by as_of,
        await event(conn, "c19", AS_OF + timedelta(hours=3))  # so this is the same purchase
        for hours in (24, 25, 72):  # two days with orders: two purchases
            await event(conn, "c20", AS_OF + timedelta(hours=hours))
        await event(conn, "later", AS_OF + DAY)  # no forecast as of then: not in a decile
        await metrics(
            conn,
            rid,
            [  # today's forecast: customer, segment, tier, p_alive, predicted CLV
                ("c01", "champions", "A", 0.9, 300.0),
                ("c02", "champions", "A", 0.7, 100.0),
                ("c03", "at_risk", "B", 0.4, 50.0),
                ("c04", "lost", "none", 0.2, 0.0),
                ("c05", "lost", "C", None, None),  # no forecast: left out
            ],
        )
        report = await build_report(conn, now=AS_OF + 120 * DAY)
    f = report.forecast
    assert f is not None and f.customers == 4 and f.refresh_id == rid
    cal = f.calibration
    assert cal is not None and (cal.as_of, cal.until) == (AS_OF, AS_OF + 90 * DAY)
    got = [(d.decile, d.customers, round(d.predicted, 6), d.actual) for d in cal.deciles]
    assert got == [
        (1, 2, 0.3, 1),  # c01 0, c02 1
        (2, 2, 0.7, 0),  # c03 a page view, c04 an order before as_of
        (3, 2, 1.1, 0),
        (4, 2, 1.5, 0),
        (5, 2, 1.9, 0),
        (6, 2, 2.3, 0),
        (7, 2, 2.7, 0),
        (8, 2, 3.1, 0),
        (9, 2, 3.5, 1),  # c18 on as_of's day after it
        (10, 2, 3.9, 2),  # c19 0 (the same day's purchase), c20 2
    ]
    assert (round(cal.predicted, 6), cal.actual, cal.customers) == (21.0, 4, 20)
    assert [d.mean_predicted for d in cal.deciles][9] == pytest.approx(1.95)
    tiers = [
        (r.label, r.customers, r.mean_clv, r.total_clv, round(r.mean_p_alive, 9)) for r in f.by_tier
    ]
    assert tiers == [
        ("A", 2, 200.0, 400.0, 0.8),
        ("B", 1, 50.0, 50.0, 0.4),
        ("none", 1, 0.0, 0.0, 0.2),
    ]
    assert [(r.label, r.customers, r.total_clv) for r in f.by_segment] == [
        ("champions", 2, 400.0),
        ("at_risk", 1, 50.0),
        ("lost", 1, 0.0),
    ]
    text = render_text(report)
    section = text[text.index("Forecast: calibration") :]
    lines = section.splitlines()
    assert "10              2              1.95           1.00        3.9       2" in lines
    assert "all            20              1.05           0.20       21.0       4" in lines
    assert "A             2    200.00     400.00          80.0%" in lines
    assert "champions          2    200.00     400.00          80.0%" in lines
    page = render_html(report)
    assert 'id="forecast"' in page and 'class="chart pairs" data-points="10"' in page
    assert "decile 10, actual: 1.00" in page and "decile 10, predicted: 1.95" in page


async def test_no_refresh_old_enough_says_so(db_url):
    async with await connect(db_url) as conn:
        rid = await kept_refresh(conn, AS_OF, {"c01": 1.0})
        await metrics(conn, rid, [("c01", "champions", "A", 0.5, 10.0)])
        report = await build_report(conn, now=AS_OF + 89 * DAY)
    f = report.forecast
    assert f is not None and f.calibration is None
    assert f.calibration_ready_at == AS_OF + 90 * DAY
    sentence = (
        "no refresh is 90 days old yet; the first can be compared with the orders that"
        " followed it from 2026-05-30 12:00 UTC."
    )
    assert "calibration: " + sentence in render_text(report)
    page = render_html(report)
    assert sentence in page and "chart pairs" not in page
    assert "Predicted CLV (365 days) per tier now" in page


async def test_no_forecast_no_section(seeded):
    async with await connect(seeded) as conn:
        report = await build_report(conn)  # metrics, but none with a forecast
    assert report.forecast is None
    assert "Forecast" not in render_text(report)
    assert 'id="forecast"' not in render_html(report)


async def test_the_refresh_keeps_history_and_the_report_calibrates_it(db):
    rows = population()  # orders up to AS_OF of test_forecast_refresh (2026-06-01)
    as_of = datetime(2026, 6, 1, tzinfo=UTC)
    async with db.connection() as conn:
        await insert(conn, rows)
        first = await store.refresh(conn, Segments(), as_of=as_of)
        soon = await store.refresh(conn, Segments(), as_of=as_of + 10 * DAY)  # too close
        cur = await conn.execute(
            "SELECT refresh_id, count(*) FROM forecast_history GROUP BY 1 ORDER BY 1"
        )
        kept = await cur.fetchall()
        cur = await conn.execute(
            "SELECT customer_id, expected_orders_90d FROM forecast_history WHERE refresh_id = %s",
            (first.id,),
        )
        history = dict(await cur.fetchall())
        waiting = await build_report(conn, now=as_of + 60 * DAY)
        ready = await build_report(conn, now=as_of + 95 * DAY)
    assert first.forecast and soon.forecast
    assert kept == [(first.id, len(history))] and len(history) > 300
    assert waiting.forecast is not None and waiting.forecast.calibration is None
    cal = ready.forecast.calibration if ready.forecast else None
    assert cal is not None and cal.refresh_id == first.id
    # only heavy00's order 3 days after as_of is later in the seeded population
    assert cal.actual == 1 and cal.customers == len(history)
    assert cal.predicted == pytest.approx(sum(history.values()))
    ranked = sorted(history.items(), key=lambda kv: (kv[1], kv[0]))
    top = [c for c, _ in ranked[-(len(ranked) // 10) :]]
    assert "heavy00" in top and cal.deciles[-1].actual == 1


async def test_history_is_kept_once_per_30_days_and_bounded(db):
    async with db.connection() as conn:
        await insert(conn, population())
        start = datetime(2026, 6, 1, tzinfo=UTC)
        days = [0, 29, 30, 45, 60, 90, 120, 150, 200]
        results = [await store.refresh(conn, Segments(), as_of=start + d * DAY) for d in days]
        cur = await conn.execute(
            "SELECT DISTINCT s.as_of FROM forecast_history h"
            " JOIN segment_refreshes s ON s.id = h.refresh_id ORDER BY 1"
        )
        kept = [(r[0] - start).days for r in await cur.fetchall()]
    assert all(r.forecast for r in results)
    # 29 is within 30 days of 0, 45 of 30: not kept; of the 7 kept, the latest 5 stay
    assert (forecasts.HISTORY_EVERY_DAYS, forecasts.HISTORY_KEEP) == (30, 5)
    assert kept == [60, 90, 120, 150, 200]

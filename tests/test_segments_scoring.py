"""``scoring: {method: cume_dist}`` against real PostgreSQL: the best customer of any
population scores 5, ties share a score, small populations get the fixed scores, large ones
are still split into fifths, and the SQL agrees with the Python reference."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine._segment_scoring import FixedScores, Scoring, fixed_score, quantile_score
from engine.segments import Segments, load_segments
from store import segments as store

ROOT = Path(__file__).resolve().parents[1]
AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
DAY = timedelta(days=1)
_seq = iter(range(10**9))
KEYS = ("recency_days", "orders", "revenue", "r", "f", "m", "tier", "segment")


def cume(min_population: int = 200) -> Segments:
    return Segments(
        scoring=Scoring(method="cume_dist", min_population_for_quantiles=min_population)
    )


async def order(conn, customer: str, days: float, revenue: float) -> None:
    at = AS_OF - days * DAY
    await conn.execute(
        "INSERT INTO events (source, message_id, type, customer_id, name, properties,"
        " event_time, received_at) VALUES (1, %s, 'track', %s, 'order_completed', %s, %s, %s)",
        (f"s{next(_seq)}", customer, json.dumps({"revenue": revenue}), at, at),
    )


async def scores(conn) -> dict[str, dict[str, Any]]:
    cur = await conn.execute("SELECT customer_id, r, f, m, tier, segment FROM customer_metrics")
    return {
        c: {"rfm": (r, f, m), "tier": t, "segment": s} for c, r, f, m, t, s in await cur.fetchall()
    }


async def test_a_new_shops_first_customer_is_its_best(db):
    async with db.connection() as conn:
        await order(conn, "first", 0.1, 6000)  # ordered for 6,000 today
        await store.refresh(conn, cume(), as_of=AS_OF)
        fixed = (await scores(conn))["first"]
        await store.refresh(conn, cume(min_population=0), as_of=AS_OF)
        ranked = (await scores(conn))["first"]
        await store.refresh(conn, Segments(scoring=Scoring(method="quintiles")), as_of=AS_OF)
        before = (await scores(conn))["first"]
    # one customer is below 200: fixed scores, and one order is f = 1, a new customer
    assert fixed == {"rfm": (5, 1, 5), "tier": "A", "segment": "new_customers"}
    # ranked among a population of one, the only customer is the best of it
    assert ranked == {"rfm": (5, 5, 5), "tier": "A", "segment": "champions"}
    assert before["segment"] == "lost" and before["rfm"] == (1, 1, 1)  # method: quintiles


async def test_the_shipped_scoring_rewards_a_new_shops_first_customer(db):
    shipped = load_segments(ROOT / "rules")
    async with db.connection() as conn:
        await order(conn, "first", 0.1, 6000)  # the shop's only customer: 6,000 today
        result = await store.refresh(conn, shipped, as_of=AS_OF)
        got = (await scores(conn))["first"]
    # one scored customer is below min_population_for_quantiles (200): the fixed bounds,
    # 0 days -> r = 5, one order -> f = 1, 6,000 >= 1,000 -> m = 5: a new customer, not lost
    assert got == {"rfm": (5, 1, 5), "tier": "A", "segment": "new_customers"}
    assert result.customers == 1


async def test_the_best_customer_of_a_three_customer_shop_is_a_champion(db):
    shipped = load_segments(ROOT / "rules")
    async with db.connection() as conn:
        for k in range(10):  # ten orders in the last ten days, 1,200 in all
            await order(conn, "best", 0.5 + k, 120)
        await order(conn, "mid", 40.5, 300)
        await order(conn, "mid", 60.5, 300)
        await order(conn, "low", 200.5, 20)
        await store.refresh(conn, shipped, as_of=AS_OF)
        fixed = await scores(conn)
        # ranked among the three (no fixed bounds): the best is 5/5/5 whatever its values
        await store.refresh(conn, cume(min_population=0), as_of=AS_OF)
        ranked = await scores(conn)
    assert fixed["best"] == {"rfm": (5, 5, 5), "tier": "A", "segment": "champions"}
    # mid: 40 days (r = 3), 2 orders (f = 2), 600 (m = 4); low: 200 days, 1 order, 20
    assert fixed["mid"]["rfm"] == (3, 2, 4) and fixed["mid"]["segment"] == "potential_loyalist"
    assert fixed["low"] == {"rfm": (1, 1, 1), "tier": "C", "segment": "lost"}
    assert ranked["best"] == {"rfm": (5, 5, 5), "tier": "A", "segment": "champions"}
    # ceil(5 * 2 / 3) = 4 for mid on every measure; low is the worst: 1
    assert ranked["mid"]["rfm"] == (4, 4, 4) and ranked["low"]["rfm"] == (1, 1, 1)


async def test_ties_share_a_score(db):
    async with db.connection() as conn:
        for c in ("twin1", "twin2"):  # tied for best on everything
            await order(conn, c, 0.5, 6000)
        for i in range(3):  # tied for worst on orders, spread on recency and revenue
            await order(conn, f"once{i}", 10 + 10 * i, 102 - i)
        await order(conn, "twin1", 0.6, 0)
        await order(conn, "twin2", 0.6, 0)
        await store.refresh(conn, cume(min_population=0), as_of=AS_OF)
        got = await scores(conn)
    assert got["twin1"]["rfm"] == got["twin2"]["rfm"] == (5, 5, 5)
    # the three one-order customers are the worst on orders: 1 each, though they are 3/5
    assert [got[f"once{i}"]["rfm"] for i in range(3)] == [(3, 1, 3), (2, 1, 2), (1, 1, 1)]


async def test_everyone_tied_scores_five(db):
    async with db.connection() as conn:
        for i in range(4):
            await order(conn, f"c{i}", 1.5, 50)
        await store.refresh(conn, cume(min_population=0), as_of=AS_OF)
        got = await scores(conn)
    assert {row["rfm"] for row in got.values()} == {(5, 5, 5)}


async def test_population_switches_at_the_threshold(db):
    population = [("a", 1, 5000), ("b", 20, 300), ("c", 60, 120)]
    fixed = FixedScores()
    async with db.connection() as conn:
        for c, days, rev in population:
            await order(conn, c, days + 0.5, rev)
        await store.refresh(conn, cume(min_population=4), as_of=AS_OF)  # 3 < 4: fixed
        below = await scores(conn)
        await order(conn, "d", 200.5, 10)
        await store.refresh(conn, cume(min_population=4), as_of=AS_OF)  # 4: ranked
        at = await scores(conn)
    want = {
        c: (
            fixed_score(days, fixed.recency_days, lower_is_better=True),
            fixed_score(1, fixed.orders, lower_is_better=False),
            fixed_score(rev, fixed.revenue, lower_is_better=False),
        )
        for c, days, rev in population
    }
    assert (
        {c: row["rfm"] for c, row in below.items()}
        == want
        == {
            "a": (5, 1, 5),
            "b": (4, 1, 3),
            "c": (3, 1, 2),
        }
    )
    # ranked: ceil(5 * up_to / 4), the worst 1; all tied on orders: f = 5
    assert {c: row["rfm"] for c, row in at.items()} == {
        "a": (5, 5, 5),
        "b": (4, 5, 4),
        "c": (3, 5, 3),
        "d": (1, 5, 1),
    }


async def test_a_large_population_is_still_split_into_fifths(db):
    async with db.connection() as conn:
        # 1,000 customers: revenue i, 1-4 orders (ties on f), about 3 a day on recency
        await conn.execute(
            "INSERT INTO events (source, message_id, type, customer_id, name, properties,"
            " event_time, received_at)"
            " SELECT 1, 'big' || i || '-' || k, 'track', 'big' || i, 'order_completed',"
            "   jsonb_build_object('revenue', CASE WHEN k = 1 THEN i ELSE 0 END), t, t"
            " FROM generate_series(1, 1000) i, generate_series(1, 1 + i %% 4) k,"
            "   LATERAL (SELECT %s::timestamptz"
            "     - make_interval(secs => i * 0.3 * 86400 + k * 60) AS t) x",
            (AS_OF,),
        )
        await store.refresh(conn, cume(), as_of=AS_OF)
        got = await scores(conn)
    rs, fs, ms = (Counter(row["rfm"][i] for row in got.values()) for i in range(3))
    assert ms == {1: 200, 2: 200, 3: 200, 4: 200, 5: 200}
    assert set(rs) == {1, 2, 3, 4, 5} and all(abs(n - 200) <= 10 for n in rs.values())
    assert fs == {1: 250, 3: 250, 4: 250, 5: 250}  # a quarter each: ties share a score
    assert got["big1000"]["rfm"][2] == 5 and got["big1"]["rfm"][2] == 1


# -- property: the SQL agrees with the Python reference ----------------------------------

customer_st = st.lists(st.tuples(st.integers(0, 400), st.integers(0, 1500)), max_size=3)


def expected(customers: list[list[tuple[int, int]]], defs: Segments) -> dict[str, tuple]:
    rows = {
        f"c{i}": {
            "recency_days": min(d for d, _ in c),
            "orders": len([d for d, _ in c if d < 365]),
            "revenue": sum(rev for d, rev in c if d < 365),
        }
        for i, c in enumerate(customers)
        if c
    }
    scored = [r for r in rows.values() if r["orders"]]
    n, scoring = len(scored), defs.scoring
    out = {}
    for cid, row in rows.items():
        if not row["orders"]:
            out[cid] = (0, 0, 0)
            continue
        if scoring.uses_fixed(n):
            fixed = scoring.fixed_scores
            out[cid] = (
                fixed_score(row["recency_days"], fixed.recency_days, lower_is_better=True),
                fixed_score(row["orders"], fixed.orders, lower_is_better=False),
                fixed_score(row["revenue"], fixed.revenue, lower_is_better=False),
            )
            continue
        sign = {"recency_days": -1, "orders": 1, "revenue": 1}
        r, f, m = (
            quantile_score(
                sum(sign[k] * o[k] < sign[k] * row[k] for o in scored),
                sum(sign[k] * o[k] <= sign[k] * row[k] for o in scored),
                n,
            )
            for k in ("recency_days", "orders", "revenue")
        )
        out[cid] = (r, f, m)
    return out


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(customers=st.lists(customer_st, max_size=8), min_population=st.integers(0, 8))
def test_sql_matches_python(db_url, customers, min_population):
    defs = cume(min_population)

    async def run() -> dict[str, tuple]:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            await conn.execute(
                "TRUNCATE events, customers, customer_metrics, segment_changes,"
                " segment_refreshes CASCADE"
            )
            for i, c in enumerate(customers):
                for days, rev in c:
                    await order(conn, f"c{i}", days + 0.5, rev)
            await store.refresh(conn, defs, as_of=AS_OF)
            return {c: row["rfm"] for c, row in (await scores(conn)).items()}

    assert asyncio.run(run()) == expected(customers, defs)

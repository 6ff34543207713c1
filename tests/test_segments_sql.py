"""The segment refresh against real PostgreSQL: a hand-computed fixture, a property test
against a straightforward Python computation, change detection, back-fills, bad revenue."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine._segment_scoring import fixed_score, quantile_score
from engine.segments import NO_TIER, Scoring, SegmentRule, Segments, segment_of
from store import segments as store

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
DAY = timedelta(days=1)
_seq = iter(range(10**9))


async def order(conn, customer: str, at: datetime, revenue: Any, name: str = "order_completed"):
    await conn.execute(
        "INSERT INTO events (source, message_id, type, customer_id, name, properties,"
        " event_time, received_at) VALUES (1, %s, 'track', %s, %s, %s, %s, %s)",
        (f"m{next(_seq)}", customer, name, json.dumps({"revenue": revenue}), at, at),
    )


async def metrics(conn) -> dict[str, dict[str, Any]]:
    cur = await conn.execute("SELECT * FROM customer_metrics")
    names = [d.name for d in cur.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in await cur.fetchall()}


async def test_hand_computed_customers(db):
    async with db.connection() as conn:
        for days, rev in ((1, 100), (10, 200), (20, 300)):
            await order(conn, "a", AS_OF - days * DAY, rev)
        await order(conn, "b", AS_OF - 5 * DAY, 50)
        await order(conn, "c", AS_OF - 100 * DAY, 1000)
        await order(conn, "c", AS_OF - 200 * DAY, 500)
        await order(conn, "d", AS_OF - 300 * DAY, 10)
        await order(conn, "e", AS_OF - 400 * DAY, 999)  # before the window
        await order(conn, "f", AS_OF - 2 * DAY, "abc")  # not a number: 0
        await order(conn, "f", AS_OF - 3 * DAY, "12.5")
        await order(conn, "f", AS_OF + DAY, 5000)  # after as_of: ignored
        await order(conn, "g", AS_OF - DAY, 70, name="page_viewed")  # not an order
        result = await store.refresh(conn, Segments(), as_of=AS_OF)
        got = await metrics(conn)
    assert (result.customers, result.changed) == (6, 6)
    # five scored customers, below min_population_for_quantiles (200): the fixed bounds,
    # recency [14, 30, 90, 180] days, orders [2, 3, 5, 10], revenue [100, 250, 500, 1000]
    want = {  # recency_days, orders, revenue, r, f, m, tier, segment
        "a": (1, 3, 600, 5, 3, 4, "B", "loyal"),
        "f": (2, 2, Decimal("12.5"), 5, 2, 1, "C", "potential_loyalist"),
        "b": (5, 1, 50, 5, 1, 1, "B", "new_customers"),
        "c": (100, 2, 1500, 2, 2, 5, "A", "need_attention"),
        "d": (300, 1, 10, 1, 1, 1, "C", "lost"),
        "e": (400, 0, 0, 0, 0, 0, NO_TIER, "lost"),
    }
    keys = ("recency_days", "orders", "revenue", "r", "f", "m", "tier", "segment")
    assert {c: tuple(row[k] for k in keys) for c, row in got.items()} == want
    assert (got["a"]["ltv"], got["a"]["ltv_orders"], got["a"]["aov"]) == (600, 3, 200)
    assert (got["e"]["ltv"], got["e"]["first_order_days"]) == (999, 400)
    assert got["f"]["ltv"] == Decimal("12.5") and got["f"]["last_order_at"] == AS_OF - 2 * DAY
    assert got["a"]["first_order_at"] == AS_OF - 20 * DAY and got["a"]["refresh_id"] == result.id
    async with db.connection() as conn:
        one = await store.metrics_of(conn, "a")
        assert one is not None and one["segment"] == "loyal" and one["ltv"] == 600.0
        assert await store.metrics_of(conn, "g") is None
        cur = await conn.execute(
            "SELECT customer_id, previous_segment, segment, previous_tier, tier"
            " FROM segment_changes WHERE refresh_id = %s",
            (result.id,),
        )
        changes = {r[0]: r[1:] for r in await cur.fetchall()}
    assert changes["c"] == (None, "need_attention", None, "A")
    assert set(changes) == set(want)
    # ranked (min_population_for_quantiles: 0), cume_dist: ceil(5 * up_to / 5), the worst 1;
    # f and c tie on 2 orders, up_to 4 of 5: f = 4; b and d tie for the worst: f = 1
    ranked = Segments(scoring=Scoring(min_population_for_quantiles=0))
    async with db.connection() as conn:
        await store.refresh(conn, ranked, as_of=AS_OF)
        got = await metrics(conn)
    assert {c: tuple(row[k] for k in keys[3:]) for c, row in got.items()} == {
        "a": (5, 5, 4, "B", "champions"),
        "f": (4, 4, 2, "C", "potential_loyalist"),
        "b": (3, 1, 3, "B", "promising"),
        "c": (2, 4, 5, "A", "at_risk"),
        "d": (1, 1, 1, "C", "lost"),
        "e": (0, 0, 0, NO_TIER, "lost"),
    }


async def test_second_refresh_records_only_changed_customers(db):
    async with db.connection() as conn:
        await order(conn, "steady", AS_OF - 1 * DAY, 100)
        await order(conn, "steady", AS_OF - 2 * DAY, 100)
        await order(conn, "fading", AS_OF - 3 * DAY, 900)
        await order(conn, "newbie", AS_OF + 9 * DAY, 5)  # exists only for the second refresh
        await order(conn, "steady", AS_OF + 9 * DAY, 100)
        first = await store.refresh(conn, Segments(), as_of=AS_OF)
        before = await metrics(conn)
        second = await store.refresh(conn, Segments(), as_of=AS_OF + 10 * DAY)
        after = await metrics(conn)
        cur = await conn.execute(
            "SELECT customer_id, previous_segment, segment, previous_tier, tier"
            " FROM segment_changes WHERE refresh_id = %s ORDER BY customer_id",
            (second.id,),
        )
        changes = {r[0]: r[1:] for r in await cur.fetchall()}
        matrix = await store.migration_matrix(conn)
        cur = await conn.execute(
            "SELECT customers, changed, finished_at IS NOT NULL FROM segment_refreshes"
            " WHERE id = %s",
            (second.id,),
        )
        recorded = await cur.fetchone()
    assert first.changed == 2 and set(before) == {"steady", "fading"}
    moved = {
        c
        for c in after
        if c not in before
        or (before[c]["segment"], before[c]["tier"])
        != (
            after[c]["segment"],
            after[c]["tier"],
        )
    }
    assert set(changes) == moved and "newbie" in moved and second.changed == len(moved)
    for c, (prev_seg, seg, prev_tier, tier) in changes.items():
        assert (seg, tier) == (after[c]["segment"], after[c]["tier"])
        assert (prev_seg, prev_tier) == (
            (before[c]["segment"], before[c]["tier"]) if c in before else (None, None)
        )
    assert all(row["refresh_id"] == second.id for row in after.values())
    assert recorded == (3, len(moved), True)
    expected: dict[tuple[str | None, str], int] = {}
    for c, row in after.items():
        key = (before[c]["segment"] if c in before else None, row["segment"])
        expected[key] = expected.get(key, 0) + 1
    assert matrix == expected


async def test_back_fill_ignores_history_after_as_of(db):
    async with db.connection() as conn:
        await order(conn, "ann", AS_OF - 30 * DAY, 40)
        await order(conn, "ann", AS_OF + 30 * DAY, 4000)
        await order(conn, "bob", AS_OF + 1 * DAY, 10)
        now = await store.refresh(conn, Segments(), as_of=AS_OF + 60 * DAY)
        past = await store.refresh(conn, Segments(), as_of=AS_OF)
        got = await metrics(conn)
    assert now.customers == 2
    # bob ordered only after as_of: he keeps a row, without orders, as the rules decide
    assert (got["bob"]["orders"], got["bob"]["ltv"], got["bob"]["tier"]) == (0, 0, NO_TIER)
    assert got["bob"]["segment"] == "lost" and got["bob"]["recency_days"] is None
    assert (got["ann"]["ltv"], got["ann"]["recency_days"], got["ann"]["orders"]) == (40, 30, 1)
    assert past.customers == 2 and got["ann"]["as_of"] == AS_OF


async def test_bad_revenue_values_count_as_zero(db):
    bad = ["", "12abc", "1e999999", "NaN", "Infinity", None, True, {"x": 1}, [1], "  7.5 ", -3]
    async with db.connection() as conn:
        for i, value in enumerate(bad):
            await order(conn, "zed", AS_OF - (i + 1) * DAY, value)
        await conn.execute(
            "INSERT INTO events (source, message_id, type, customer_id, name, properties,"
            " event_time, received_at) VALUES (1, 'nop', 'track', 'zed', 'order_completed',"
            " '{}', %s, %s)",
            (AS_OF - DAY, AS_OF),
        )
        await store.refresh(conn, Segments(), as_of=AS_OF)
        got = await metrics(conn)
    assert got["zed"]["orders"] == len(bad) + 1 and got["zed"]["revenue"] == Decimal("4.5")


async def test_huge_amounts_are_summed_exactly_and_others_to_six_decimals(db):
    """The refresh sums amounts in int64 micro-units; from 10^9 on a customer's orders are
    summed in numeric instead, so nothing overflows or loses digits (even 1e400, a valid
    JSON number); below it, amounts count to six decimals."""
    async with db.connection() as conn:
        await order(conn, "whale", AS_OF - 2 * DAY, 5_000_000_000)
        await order(conn, "whale", AS_OF - 1 * DAY, "0.1234567")
        await order(conn, "whale", AS_OF - 400 * DAY, 2)  # before the window: ltv only
        await conn.execute(
            "INSERT INTO events (source, message_id, type, customer_id, name, properties,"
            " event_time, received_at) VALUES (1, 'huge', 'track', 'titan', 'order_completed',"
            " '{\"revenue\": 1e400}', %s, %s)",
            (AS_OF - DAY, AS_OF),
        )
        await order(conn, "fine", AS_OF - 1 * DAY, "0.1234567")
        await order(conn, "fine", AS_OF - 3 * DAY, 0.1)
        await order(conn, "fine", AS_OF - 3 * DAY, 0.2)  # the same day: one purchase
        await store.refresh(conn, Segments(), as_of=AS_OF)
        got = await metrics(conn)
    assert got["whale"]["revenue"] == Decimal("5000000000.1234567")
    assert got["whale"]["ltv"] == Decimal("5000000002.1234567")
    assert (got["whale"]["orders"], got["whale"]["ltv_orders"]) == (2, 3)
    assert got["titan"]["revenue"] == Decimal("1e400") and got["titan"]["orders"] == 1
    assert got["fine"]["revenue"] == Decimal("0.423457")  # 0.1234567 to six decimals
    assert (got["fine"]["orders"], got["fine"]["m"] >= 1) == (3, True)


# -- property: the SQL agrees with a straightforward Python computation ------------------

RULES = Segments(
    segments=[
        SegmentRule(name="gold", when='traits.plan == "gold" && r >= 3'),
        SegmentRule(name="big", when="revenue / 2.0 > 600.0 || orders * 2 >= 8"),
        SegmentRule(name="grown_up", when="has(traits.age) && traits.age >= 30 && !(f in [1])"),
        SegmentRule(name="old_friend", when="first_order_days - recency_days > 100"),
        *Segments().segments,
    ]
)
customer_st = st.fixed_dictionaries(
    {
        "orders": st.lists(
            st.tuples(st.integers(-20, 500), st.integers(0, 23), st.integers(0, 900)), max_size=4
        ),
        "traits": st.fixed_dictionaries(
            {},
            optional={
                "plan": st.sampled_from(["gold", "free", 5]),
                "age": st.sampled_from([20, 45, "45", None]),
            },
        ),
    }
)


def expected(customers: list[dict[str, Any]], defs: Segments) -> dict[str, tuple[Any, ...]]:
    window = timedelta(seconds=defs.window)
    rows: dict[str, dict[str, Any]] = {}
    for i, c in enumerate(customers):
        times = [(AS_OF - d * DAY - h * timedelta(hours=1), rev) for d, h, rev in c["orders"]]
        times = [(t, rev) for t, rev in times if t <= AS_OF]
        if not times:
            continue
        recent = [(t, rev) for t, rev in times if t > AS_OF - window]
        last, first = max(t for t, _ in times), min(t for t, _ in times)
        rows[f"c{i}"] = {
            "recency_days": (AS_OF - last) // DAY,
            "first_order_days": (AS_OF - first) // DAY,
            "orders": len(recent),
            "revenue": sum(rev for _, rev in recent),
            "traits": c["traits"],
        }
    scored = [r for r in rows.values() if r["orders"]]
    n, scoring = len(scored), defs.scoring
    measures = {"r": ("recency_days", -1), "f": ("orders", 1), "m": ("revenue", 1)}
    for row in rows.values():
        if not row["orders"]:
            row.update(r=0, f=0, m=0, tier=NO_TIER)
        else:
            for score, (key, sign) in measures.items():
                below = sum(sign * o[key] < sign * row[key] for o in scored)
                up_to = sum(sign * o[key] <= sign * row[key] for o in scored)
                if scoring.method == "quintiles":
                    row[score] = 1 + 5 * below // n
                elif scoring.uses_fixed(n):
                    bounds = getattr(scoring.fixed_scores, key)
                    row[score] = fixed_score(row[key], bounds, lower_is_better=sign < 0)
                else:
                    row[score] = quantile_score(below, up_to, n)
            better = sum(o["revenue"] > row["revenue"] for o in scored)
            row["tier"] = next(t.name for t in defs.tiers if better * 100 < t.top * n)
    out = {}
    for cid, row in rows.items():
        keys = ("recency_days", "orders", "revenue", "r", "f", "m", "tier")
        out[cid] = (*(row[k] for k in keys), segment_of(defs, row))
    return out


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    customers=st.lists(customer_st, max_size=8),
    scoring=st.sampled_from(
        [
            Scoring(),  # the default: 8 customers at most are always below 200, fixed bounds
            Scoring(min_population_for_quantiles=0),  # cume_dist ranks
            Scoring(min_population_for_quantiles=4),  # either, by the population
            Scoring(method="quintiles"),
        ]
    ),
)
def test_sql_matches_python(db_url, customers, scoring):
    rules = RULES.model_copy(update={"scoring": scoring})

    async def run() -> dict[str, tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            await conn.execute(
                "TRUNCATE events, customers, customer_metrics, segment_changes,"
                " segment_refreshes CASCADE"
            )
            for i, c in enumerate(customers):
                await conn.execute(
                    "INSERT INTO customers (customer_id, traits) VALUES (%s, %s)",
                    (f"c{i}", json.dumps(c["traits"])),
                )
                for d, h, rev in c["orders"]:
                    at = AS_OF - d * DAY - h * timedelta(hours=1)
                    await order(conn, f"c{i}", at, rev)
            await store.refresh(conn, rules, as_of=AS_OF)
            keys = ("recency_days", "orders", "revenue", "r", "f", "m", "tier", "segment")
            return {c: tuple(row[k] for k in keys) for c, row in (await metrics(conn)).items()}

    assert asyncio.run(run()) == expected(customers, rules)

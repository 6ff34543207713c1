"""The forecast step of the segment refresh against real PostgreSQL: a seeded population
of orders is summarised in SQL exactly as engine.forecast.summarise does, fitted, scored
and stored; a customer who stops buying sees their churn risk rise over later refreshes
and crosses bands; below the minimum of repeat customers nothing is forecast."""

from __future__ import annotations

import dataclasses
import itertools
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from temporalio.testing import ActivityEnvironment

from activities.segments import SegmentActivities
from engine.forecast import fit, score, summarise
from engine.segments import Segments, load_segments
from store import customers as customer_store
from store import events, forecasts
from store import segments as store
from workflows.segments import NotifyInput

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def population(seed: int = 7) -> list[tuple[str, datetime, float]]:
    """300 customers drawn from BG/NBD itself (rates ~ Gamma, dropout after each purchase
    ~ Beta) over 400 days, plus 20 heavy buyers (every ~5 days up to now) and 20 lapsed ones
    (as often, then nothing for 200 days); a few same-day baskets of several orders."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, datetime, float]] = []
    start = AS_OF - 400 * DAY
    for i in range(300):
        rate, drop, mean = rng.gamma(0.8, 1 / 20), rng.beta(1, 8), rng.uniform(20, 80)
        t = rng.uniform(0, 300)
        while t <= 400:
            rows.append((f"drawn{i:03}", start + t * DAY, float(rng.gamma(4, mean / 4))))
            if rng.random() < drop:
                break
            t += rng.exponential(1 / rate)
    for group, until in (("heavy", 400), ("lapsed", 200)):
        for i in range(20):
            t = rng.uniform(0, 30)
            while t <= until:
                rows.append((f"{group}{i:02}", start + t * DAY, float(rng.uniform(20, 80))))
                t += rng.exponential(5)
    for i in range(10):  # a basket split into three orders is one purchase
        at = AS_OF - (10 + i) * DAY
        rows += [(f"heavy{i:02}", at + k * timedelta(minutes=5), 10.0) for k in range(3)]
    rows.append(("heavy00", AS_OF + 3 * DAY, 50.0))  # after the refresh date: left out
    return rows


async def insert(conn, rows: list[tuple[str, datetime, float]]) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO events (source, message_id, type, customer_id, name, properties,"
            " event_time, received_at) VALUES (1, %s, 'track', %s, 'order_completed', %s, %s, %s)",
            [(f"f{n}", c, json.dumps({"revenue": v}), at, at) for n, (c, at, v) in enumerate(rows)],
        )


async def forecast_columns(conn) -> dict[str, tuple]:
    cur = await conn.execute(
        "SELECT customer_id, p_alive, churn_risk, expected_orders_90d, predicted_clv_365d"
        " FROM customer_metrics"
    )
    return {r[0]: r[1:] for r in await cur.fetchall()}


async def test_refresh_stores_the_reference_forecast(db):
    rows = population()
    async with db.connection() as conn:
        await insert(conn, rows)
        result = await store.refresh(conn, Segments(), as_of=AS_OF)
        got = await forecast_columns(conn)
        fitted = await forecasts.latest_fit(conn)
        shown = await customer_store.metrics(conn, "heavy00")  # GET /v1/customers/{id}
    assert result.forecast and fitted is not None and fitted["refresh_id"] == result.id
    assert shown is not None and (shown.p_alive, shown.predicted_clv_365d) == (
        got["heavy00"][0],
        got["heavy00"][3],
    )
    # the SQL summaries are the reference's: the same fit and the same scores
    names = sorted({c for c, _, _ in rows})
    index = {c: i for i, c in enumerate(names)}
    ids, summary = summarise(
        [index[c] for c, _, _ in rows],
        [(at - EPOCH) / DAY for _, at, _ in rows],
        [v for _, _, v in rows],
        as_of=(AS_OF - EPOCH) / DAY,
    )
    models = fit(summary)
    want = score(models, summary)
    assert fitted["customers"] == len(names) == len(got)
    assert fitted["repeat_customers"] == models.repeat_customers
    assert fitted["r"] == pytest.approx(models.bgnbd.r, rel=1e-6)
    assert fitted["alpha"] == pytest.approx(models.bgnbd.alpha, rel=1e-6)
    for k, i in enumerate(ids):
        p_alive, churn, orders_90, clv = got[names[i]]
        assert p_alive == pytest.approx(want.p_alive[k], abs=1e-9)
        assert churn == pytest.approx(want.churn_risk[k], abs=1e-9)
        assert orders_90 == pytest.approx(want.expected_orders_90d[k], rel=1e-6, abs=1e-9)
        assert clv == pytest.approx(want.predicted_clv_365d[k], rel=1e-6, abs=1e-9)
    # and they are plausible
    heavy = [got[f"heavy{i:02}"] for i in range(20)]
    lapsed = [got[f"lapsed{i:02}"] for i in range(20)]
    assert min(h[0] for h in heavy) > 0.75 and np.median([h[0] for h in heavy]) > 0.9
    assert max(x[0] for x in lapsed) < 0.1
    assert min(h[2] for h in heavy) > 5 > max(x[2] for x in lapsed)
    assert np.median([h[3] for h in heavy]) > 50 * np.median([x[3] for x in lapsed])
    once = [k for k, i in enumerate(ids) if summary.frequency[k] == 0]
    assert once and all(got[names[ids[k]]][0] == 1.0 for k in once)


async def test_a_customer_who_stops_buying_rises_in_churn_risk(db):
    rows = population(seed=11)
    # "quitter" bought every 5 days for a year, then stops at AS_OF
    rows += [("quitter", AS_OF - k * 5 * DAY, 50.0) for k in range(73)]
    async with db.connection() as conn:
        await insert(conn, rows)
        risks, crossings = [], []
        for months in range(0, 8):
            result = await store.refresh(conn, Segments(), as_of=AS_OF + months * 30 * DAY)
            risks.append((await forecast_columns(conn))["quitter"][1])
            cur = await conn.execute(
                "SELECT previous_band, band, previous_churn_risk, churn_risk"
                " FROM churn_changes WHERE refresh_id = %s AND customer_id = 'quitter'",
                (result.id,),
            )
            crossings += await cur.fetchall()
    assert risks[0] < 0.05
    assert all(b > a for a, b in itertools.pairwise(risks)), risks
    assert risks[-1] > 0.75
    # the bands are crossed upwards only, each from where the last crossing left it
    assert crossings and crossings[0][0] == 0 and crossings[-1][1] == 3
    assert all(b > p for p, b, _, _ in crossings)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(crossings))
    assert all(forecasts.band(r) == b for _, b, _, r in crossings)


async def test_below_the_minimum_nothing_is_forecast(db):
    at = AS_OF - 10 * DAY
    rows = [(f"c{i}", at - k * 7 * DAY, 20.0) for i in range(5) for k in range(3)]
    async with db.connection() as conn:
        await insert(conn, rows)
        result = await store.refresh(conn, Segments(), as_of=AS_OF)
        got = await forecast_columns(conn)
        assert await forecasts.latest_fit(conn) is None
        # a later refresh with enough customers forecasts; one below again clears it
        fitted = await store.refresh(conn, Segments(), as_of=AS_OF, min_repeat_customers=5)
        assert fitted.forecast and await forecasts.latest_fit(conn) is not None
        assert all(v[0] is not None for v in (await forecast_columns(conn)).values())
        again = await store.refresh(conn, Segments(), as_of=AS_OF + DAY)
        cleared = await forecast_columns(conn)
    assert not result.forecast and result.customers == 5
    assert all(v == (None, None, None, None) for v in got.values()) and len(got) == 5
    assert not again.forecast and again.churn_changed == 0
    assert all(v == (None, None, None, None) for v in cleared.values())


async def test_the_forecast_keys_of_segments_yaml(db, tmp_path):
    at = AS_OF - 10 * DAY
    rows = [(f"c{i}", at - k * 7 * DAY, 20.0) for i in range(5) for k in range(3)]
    (tmp_path / "segments.yaml").write_text("forecast: {min_repeat_customers: 5}\n")
    five = load_segments(tmp_path)
    (tmp_path / "segments.yaml").write_text("forecast: {enabled: false, min_repeat_customers: 5}\n")
    off = load_segments(tmp_path)
    (tmp_path / "segments.yaml").write_text("forecast: {min_repeat_customers: 6}\n")
    six = load_segments(tmp_path)
    async with db.connection() as conn:
        await insert(conn, rows)
        too_few = await store.refresh(conn, six, as_of=AS_OF)  # 5 repeat customers < 6
        fitted = await store.refresh(conn, five, as_of=AS_OF)  # 5 >= 5: from the file
        columns = await forecast_columns(conn)
        skipped = await store.refresh(conn, off, as_of=AS_OF + DAY)  # enough, but off
        cleared = await forecast_columns(conn)
        cur = await conn.execute("SELECT refresh_id FROM forecast_fits")
        fits = [r[0] for r in await cur.fetchall()]
    assert not too_few.forecast and fitted.forecast and not skipped.forecast
    assert fits == [fitted.id] and "forecast" in fitted.phases
    assert all(v[0] is not None for v in columns.values()) and len(columns) == 5
    assert all(v == (None, None, None, None) for v in cleared.values())


async def test_no_orders_at_all(db):
    async with db.connection() as conn:
        result = await store.refresh(conn, Segments(), as_of=AS_OF)
    assert result.customers == 0 and not result.forecast


async def test_band_crossings_become_churn_risk_changed_events_once(db):
    rows = population(seed=11) + [("quitter", AS_OF - k * 5 * DAY, 50.0) for k in range(73)]
    async with db.connection() as conn:
        await insert(conn, rows)
        await store.refresh(conn, Segments(), as_of=AS_OF)
        later = await store.refresh(conn, Segments(), as_of=AS_OF + 120 * DAY)
        assert later.churn_changed > 0
        first = await events.record_churn_changes(conn, after=(0, ""), limit=10, wanted=True)
        rest = await events.record_churn_changes(
            conn, after=first.last or (0, ""), limit=10**6, wanted=True
        )
        again = await events.record_churn_changes(conn, after=(0, ""), limit=10, wanted=True)
        cur = await conn.execute(
            "SELECT e.customer_id, e.message_id, e.properties, o.event_id IS NOT NULL"
            " FROM events e LEFT JOIN outbox o ON o.event_id = e.id"
            " WHERE e.name = 'churn_risk_changed'"
        )
        stored = {r[0]: r[1:] for r in await cur.fetchall()}
        cur = await conn.execute("SELECT count(*) FROM churn_changes WHERE notified_at IS NULL")
        pending = await cur.fetchone()
    assert first.count == 10 and first.count + rest.count == later.churn_changed
    assert again.count == 0 and pending == (0,) and len(stored) == later.churn_changed
    message_id, properties, queued = stored["quitter"]
    assert message_id == f"churn_risk_changed:{later.id}:quitter" and queued
    assert properties["rising"] and properties["band"] > properties["previous_band"]
    assert properties["churn_risk"] > properties["previous_churn_risk"]


async def test_the_fan_out_tells_segment_then_churn_changes_and_resumes_in_the_churn_phase(db):
    rows = population(seed=11) + [("quitter", AS_OF - k * 5 * DAY, 50.0) for k in range(73)]
    async with db.connection() as conn:
        await insert(conn, rows)
        await store.refresh(conn, Segments(), as_of=AS_OF)
        await conn.execute("UPDATE segment_changes SET notified_at = now()")  # told already
        later = await store.refresh(conn, Segments(), as_of=AS_OF + 120 * DAY)
    acts = SegmentActivities(db, Segments())
    beats: list[tuple] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    # a retry after the segment phase and two churn batches: only the churn rest is told
    env.info = dataclasses.replace(env.info, heartbeat_details=[7, 0, "", "churn"])
    told = await env.run(acts.notify_segment_changes, NotifyInput(batch_size=2))
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT name, count(*) FROM events WHERE source = 0 GROUP BY name ORDER BY name"
        )
        stored = dict(await cur.fetchall())
    assert stored == {"churn_risk_changed": later.churn_changed}  # no segment_changed
    assert told == 7 + later.churn_changed
    assert all(b[-1] == "churn" and len(b) == 4 for b in beats)
    # from the start: the second refresh's segment changes, then nothing left of churn
    env.info = dataclasses.replace(env.info, heartbeat_details=[])
    assert await env.run(acts.notify_segment_changes, NotifyInput()) == later.changed

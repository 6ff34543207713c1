"""What ``journeys demo`` reads back (``store/demo.py``), on real PostgreSQL: only its own
customers (an id prefix, with LIKE's wildcards taken literally), the segments the workflows
have not shown yet, the coupons still usable and the newest survey of each customer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.loader import load_rules
from engine.segments import Segments
from store import catalog, demo, offers, read_model, segments, surveys
from store.events import NewEvent, Queued, append, queue
from workflows.io import CustomerSnapshot, JourneySnapshot, RecordTransitionsInput

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def _order(message_id: str, customer: str, at: datetime) -> NewEvent:
    return NewEvent(message_id, "track", customer, "order_completed", {"revenue": 50}, at, {})


async def _coupon(conn, key: str, customer: str, journey: str, *, valid: timedelta) -> str:
    coupon = await offers.issue(
        conn,
        idempotency_key=key,
        customer_id=customer,
        journey=journey,
        template="winback_offer",
        percent_off=15.0,
        amount_off=None,
        valid_for=valid,
        budget=None,
        now=NOW - DAY,
    )
    assert coupon is not None
    return coupon.code


async def test_progress_and_segments_only_count_the_prefix(db):
    async with db.connection() as conn:
        ids = await append(
            conn,
            1,
            [
                _order("demo1-0001:order:1", "demo1-0001", NOW - 3 * DAY),
                _order("demo1-0002:order:1", "demo1-0002", NOW - 40 * DAY),
                _order("segment_changed:1:demo1-0001", "demo1-0001", NOW),  # not sent by it
                _order("demo10-0003:order:1", "demo10-0003", NOW),  # another seed
                _order("other:1", "other", NOW),
            ],
            received_at=NOW,
        )
        await queue(conn, [Queued(ids["demo1-0001:order:1"], "demo1-0001")])
        assert await demo.progress(conn, "demo1-") == demo.Progress(3, 2, 1, 0)
        assert await demo.progress(conn, "demo1_") == demo.Progress(
            0, 0, 0, 0
        )  # "_" is no wildcard
        assert await demo.tiered_as_of(conn, "demo1-") is None

        await segments.refresh(conn, Segments(), as_of=NOW)
        assert await demo.tiered_as_of(conn, "demo1-") == NOW
        assert await demo.segments_behind(conn, "demo1-") == 2  # no workflow showed them yet
        cur = await conn.execute(
            "SELECT customer_id, segment, tier FROM customer_metrics WHERE customer_id LIKE 'demo1-%'"
        )
        rows = await cur.fetchall()
        for customer, segment, tier in rows:
            journey = JourneySnapshot(
                journey="lifecycle",
                version=1,
                state="active",
                status="active",
                context={"orders": 1},
                since=NOW,
                enrolled_at=NOW,
            )
            snap = CustomerSnapshot(seq=1, at=NOW, tier=tier, segment=segment, journeys=[journey])
            log = RecordTransitionsInput(customer_id=customer, snapshot=snap)
            await read_model.record(conn, customer, log.model_dump_json())
        assert await demo.segments_behind(conn, "demo1-") == 0
        assert await demo.counted_orders(conn, "demo1-") == {"demo1-0001": 1, "demo1-0002": 1}
        states = await demo.journey_states(conn, "demo1-", "lifecycle")
        assert states == {"demo1-0001": "active", "demo1-0002": "active"}


async def test_assignments_coupons_and_surveys(db):
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO experiment_assignments (experiment, customer_id, arm, journey, version,"
            " enrollment, assigned_at, idempotency_key) VALUES"
            " ('winback_2026q4', 'demo1-0001', 'offer_15', 'winback_test', 1, 1, %(t)s, 'k1'),"
            " ('winback_2026q4', 'other', 'holdout', 'winback_test', 1, 1, %(t)s, 'k2'),"
            " ('another', 'demo1-0002', 'holdout', 'winback_test', 1, 1, %(t)s, 'k3')",
            {"t": NOW},
        )
        found = await demo.assignments(conn, "winback_2026q4", "demo1-")
        assert found == {"demo1-0001": ("offer_15", NOW)}

        usable = await _coupon(conn, "o1", "demo1-0001", "winback_test", valid=14 * DAY)
        await _coupon(conn, "o2", "demo1-0002", "winback_test", valid=DAY / 2)  # expired
        await _coupon(conn, "o3", "demo1-0003", "at_risk", valid=14 * DAY)  # other journey
        redeemed = await _coupon(conn, "o4", "demo1-0004", "winback_test", valid=14 * DAY)
        await offers.redeem(conn, redeemed, customer_id=None, via="api", now=NOW)
        coupons = await demo.open_coupons(conn, "winback_test", "demo1-", now=NOW)
        assert coupons == {"demo1-0001": usable}

        made = {}
        for key, customer, age in (("s1", "demo1-0001", 3), ("s2", "demo1-0001", 1)):
            made[key] = await surveys.create(
                conn,
                idempotency_key=key,
                customer_id=customer,
                journey="nps",
                template="nps_survey",
                kind="nps",
                expires_in=14 * DAY,
                now=NOW - age * DAY,
            )
        await surveys.answer(conn, made["s2"].token, score=9, comment=None, now=NOW)
        links = await demo.nps_surveys(conn, "demo1-")
        assert links == {"demo1-0001": demo.SurveyLink("demo1-0001", made["s2"].token, True)}


async def test_published_definitions_are_the_latest_versions(db):
    journeys = load_rules(ROOT / "rules", ROOT / "templates")
    async with db.connection() as conn:
        assert await demo.published_definitions(conn) == {}
        await catalog.publish(conn, journeys)
        first = await demo.published_definitions(conn)
        assert set(first) == {j.journey for j in journeys}
        nps = next(j for j in journeys if j.journey == "nps")
        changed = nps.model_copy(update={"description": "v2", "digest": "v2-digest"})
        others = [j for j in journeys if j.journey != "nps"]
        await catalog.publish(conn, [*others, changed])  # a new version of nps only
        latest = await demo.published_definitions(conn)
    assert latest["nps"]["description"] == "v2" and latest["nps"]["version"] == 2
    assert latest["lifecycle"] == first["lifecycle"]

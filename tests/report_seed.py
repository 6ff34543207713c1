"""A small, hand-checked history for the report tests: transitions, orders, offers,
surveys, managers and two segment refreshes, published and inserted for real."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from engine import load_rules
from store import catalog

T0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday: NPS weeks start here
DAY = timedelta(days=1)


def at(days: float) -> datetime:
    return T0 + days * DAY


# (customer, [(key suffix, from, to, day)]): lifecycle; c4 only enrols in onboarding
TRANSITIONS = {
    "c1": [
        ("1/1", None, "new", 0),
        ("1/2", "new", "active", 1),
        ("1/3", "active", "dormant", 61),
        ("1/4", "dormant", "active", 70),
    ],
    "c2": [  # enrolled and moved on in the same instant: the key orders them
        ("1/2", "new", "active", 0),
        ("1/1", None, "new", 0),
        ("1/3", "active", "dormant", 60),
        ("1/4", "dormant", "lost", 90),
    ],
    "c3": [
        ("1/1", None, "new", 2),
        ("1/2", "new", "dormant", 16),
        ("1/3", "dormant", "active", 50),  # 34 days: too late to count as reactivated
        ("1/3/exit", "active", "exited", 55),
    ],
}
JOURNEYS = {  # published for real: exits count the states a version marks final
    "lifecycle": """
journey: lifecycle
enroll: {on: [signed_up]}
exit_when: 'event.name == "unsubscribed"'
start: new
states:
  new:
    on: {order_completed: [{goto: active}]}
    after: {14d: dormant}
  active:
    after: {60d: dormant}
  dormant:
    on: {order_completed: [{goto: active}]}
    after: {30d: lost}
  lost: {final: true}
""",
    "onboarding": """
journey: onboarding
enroll: {on: [signed_up]}
start: start
states:
  start:
    on: {order_completed: [{goto: done}]}
  done: {final: true}
""",
}
# (customer, day, revenue, coupon redeemed by this order)
ORDERS = [
    ("c1", 1, 100, None),
    ("c1", 70, "50.5", "o1"),
    ("c2", 0, 200, None),
    ("c3", 50, 80, "o3"),
    ("c5", 10, 30, None),
]
# (code, customer, template, created day, redeemed day or None); o4 redeemed by an admin
OFFERS = [
    ("o1", "c1", "reactivation_offer", 61, 70),
    ("o2", "c2", "reactivation_offer", 60, None),
    ("o3", "c3", "reactivation_offer", 16, 50),
    ("o4", "c5", "welcome_gift", 5, 6),
]
# (kind, sent day, score or None)
SURVEYS = [
    ("nps", 1, 10),
    ("nps", 2, 9),
    ("nps", 3, 3),
    ("nps", 4, None),
    ("nps", 8, 7),
    ("nps", 9, None),
    ("nps", 22, None),
    ("csat", 3, 4),
    ("csat", 4, 5),
    ("csat", 5, None),
]


async def seed(conn: psycopg.AsyncConnection[Any]) -> None:
    """The hand-built history the expected figures below are worked out from."""
    with tempfile.TemporaryDirectory() as folder:
        for name, text in JOURNEYS.items():
            (Path(folder) / f"{name}.yaml").write_text(text)
        await catalog.publish(conn, load_rules(Path(folder), None))
    rows = [
        (f"{c}/lifecycle/{key}", c, "lifecycle", src, dst, f"cause:{dst}", at(day))
        for c, moves in TRANSITIONS.items()
        for key, src, dst, day in moves
    ]
    rows.append(("c4/onboarding/1/1", "c4", "onboarding", None, "start", "enroll:x", at(3)))
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO journey_transitions (key, customer_id, journey, version, from_state,"
            " to_state, cause, at) VALUES (%s, %s, %s, 1, %s, %s, %s, %s)",
            rows,
        )
    order_ids: dict[str, int] = {}
    for i, (customer, day, revenue, coupon) in enumerate(ORDERS):
        cur = await conn.execute(
            "INSERT INTO events (source, message_id, type, customer_id, name, properties,"
            " event_time, received_at) VALUES (1, %s, 'track', %s, 'order_completed', %s, %s, %s)"
            " RETURNING id",
            (f"m{i}", customer, json.dumps({"revenue": revenue}), at(day), at(day)),
        )
        row = await cur.fetchone()
        assert row is not None
        if coupon:
            order_ids[coupon] = row[0]
    await conn.execute(  # not an order: never counted
        "INSERT INTO events (source, message_id, type, customer_id, name, properties,"
        " event_time, received_at) VALUES (1, 'v', 'track', 'c5', 'page_viewed',"
        " '{\"revenue\": 999}', %s, %s)",
        (at(11), at(11)),
    )
    for code, customer, template, created, redeemed in OFFERS:
        via = f"order:{order_ids[code]}" if code in order_ids else "api"
        await conn.execute(
            "INSERT INTO offers (code, idempotency_key, customer_id, journey, template,"
            " percent_off, expires_at, created_at, redeemed_at, redeemed_via)"
            " VALUES (%s, %s, %s, 'lifecycle', %s, 15, %s, %s, %s, %s)",
            (code, f"k-{code}", customer, template, at(created + 14), at(created))
            + ((at(redeemed), via) if redeemed is not None else (None, None)),
        )
    for i, (kind, sent, score) in enumerate(SURVEYS):
        await conn.execute(
            "INSERT INTO surveys (token, idempotency_key, customer_id, journey, template, kind,"
            " expires_at, created_at, answered_at, score)"
            " VALUES (%s, %s, 'c1', 'nps', 't', %s, %s, %s, %s, %s)",
            (f"s{i}", f"ks{i}", kind, at(sent + 14), at(sent), at(sent + 1), score)
            if score is not None
            else (f"s{i}", f"ks{i}", kind, at(sent + 14), at(sent), None, None),
        )
    await seed_managers(conn)
    await seed_segments(conn)


async def seed_managers(conn: psycopg.AsyncConnection[Any]) -> None:
    cur = await conn.execute(
        "INSERT INTO managers (pool, name, email, capacity, active) VALUES"
        " ('vip', 'Ann', 'ann@x.example', 4, true), ('vip', 'Bob', 'bob@x.example', 2, false)"
        " RETURNING id"
    )
    ann, _ = [r[0] for r in await cur.fetchall()]
    await conn.execute(
        "INSERT INTO manager_assignments (customer_id, pool, manager_id)"
        " VALUES ('c1', 'vip', %s), ('c2', 'vip', %s)",
        (ann, ann),
    )
    await conn.execute(
        "INSERT INTO tasks (idempotency_key, customer_id, journey, title, pool, manager_id,"
        " due_at, status) VALUES ('t1', 'c1', 'nps', 'call', NULL, %s, %s, 'open'),"
        " ('t2', 'c2', 'nps', 'call', NULL, %s, %s, 'done'),"
        " ('t3', 'c3', 'nps', 'call', 'sales', NULL, %s, 'open')",
        (ann, T0, ann, T0, T0),
    )


async def seed_segments(conn: psycopg.AsyncConnection[Any]) -> None:
    """Two finished refreshes and one still running; the last finished one moved c2 from
    champions to at_risk, brought in c3, changed only c1's tier and left c5 alone."""
    cur = await conn.execute(
        "INSERT INTO segment_refreshes (as_of, definitions, finished_at) VALUES"
        " (%s, 'x', %s), (%s, 'x', %s), (%s, 'x', NULL) RETURNING id",
        (at(30), at(30), at(60), at(60), at(90)),
    )
    _, last, _ = [r[0] for r in await cur.fetchall()]
    for customer, segment, tier in [
        ("c1", "champions", "A"),
        ("c2", "at_risk", "B"),
        ("c3", "at_risk", "C"),
        ("c5", "hibernating", "none"),
    ]:
        await conn.execute(
            "INSERT INTO customer_metrics (customer_id, refresh_id, as_of, orders, revenue,"
            " r, f, m, segment, tier, ltv, ltv_orders, computed_at)"
            " VALUES (%s, %s, %s, 1, 10, 3, 3, 3, %s, %s, 10, 1, %s)",
            (customer, last, at(60), segment, tier, at(60)),
        )
    await conn.execute(
        "INSERT INTO segment_changes (refresh_id, customer_id, previous_segment, segment,"
        " previous_tier, tier, r, f, m) VALUES"
        " (%(id)s, 'c2', 'champions', 'at_risk', 'A', 'B', 2, 3, 3),"
        " (%(id)s, 'c3', NULL, 'at_risk', NULL, 'C', 2, 1, 1),"
        " (%(id)s, 'c1', 'champions', 'champions', 'B', 'A', 5, 5, 5)",
        {"id": last},
    )


@pytest.fixture
async def seeded(db_url: str) -> str:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await seed(conn)
    return db_url


async def connect(url: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(url, autocommit=True)

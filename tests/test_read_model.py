"""The admin read model (#10, section 7): snapshots written through the
``record_transitions`` activity, idempotent and never overwritten by an older one; admin
reads of a customer answered from PostgreSQL while Temporal is down."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn

from activities.journeys import JourneyActivities
from api import create_app
from devstack.stack import free_port
from engine.machine import TransitionRecord
from engine.model import Problem
from ingest import keys
from settings import Settings
from store import read_model
from workflows.io import CustomerSnapshot, JourneySnapshot, RecordTransitionsInput

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def snapshot(seq: int, state: str = "new", orders: int = 0, **extra: Any) -> CustomerSnapshot:
    journey = JourneySnapshot(
        journey="lifecycle",
        version=1,
        state=state,
        status="active",
        context={"orders": orders, "spent": 10.0 * orders},
        since=T0 + timedelta(minutes=seq),
        enrolled_at=T0,
        next_timer_due=T0 + timedelta(days=14),
        next_timer_label="14d",
        next_timer_target="dormant",
    )
    return CustomerSnapshot(
        seq=seq, at=T0 + timedelta(minutes=seq), journeys=[journey], tier="B", **extra
    )


async def record(db: Any, snap: CustomerSnapshot | None, *transitions: TransitionRecord) -> int:
    data = RecordTransitionsInput(customer_id="c1", transitions=list(transitions), snapshot=snap)
    return await JourneyActivities(db).record_transitions(data)


async def stored(db: Any) -> tuple[int, list[tuple[str, str, Any]]] | None:
    async with db.connection() as conn:
        snap = await read_model.read(conn, "c1")
    if snap is None:
        return None
    return snap.seq, [(j.journey, j.state, j.context["orders"]) for j in snap.journeys]


async def test_a_newer_snapshot_wins_an_older_or_repeated_one_changes_nothing(db):
    assert await stored(db) is None
    await record(db, snapshot(2, "active", orders=1))
    await record(db, snapshot(1, "new"))  # late: an older workflow task's write
    await record(db, snapshot(2, "active", orders=1))  # a retried activity
    assert await stored(db) == (2, [("lifecycle", "active", 1)])
    await record(db, snapshot(3, "active", orders=2))
    assert await stored(db) == (3, [("lifecycle", "active", 2)])
    await record(db, None)  # a history recorded before snapshots existed: untouched
    assert await stored(db) == (3, [("lifecycle", "active", 2)])


async def test_concurrent_writes_in_any_order_keep_the_highest_seq(db):
    seqs = list(range(1, 21))
    random.Random(7).shuffle(seqs)
    await asyncio.gather(*(record(db, snapshot(s, "active", orders=s)) for s in seqs))
    assert await stored(db) == (20, [("lifecycle", "active", 20)])


async def test_a_journey_gone_from_the_snapshot_is_gone_from_the_read_model(db):
    two = snapshot(1)
    two.journeys.append(two.journeys[0].model_copy(update={"journey": "nps", "state": "asked"}))
    await record(db, two)
    assert await stored(db) == (1, [("lifecycle", "new", 0), ("nps", "asked", 0)])
    await record(db, snapshot(2))
    assert await stored(db) == (2, [("lifecycle", "new", 0)])
    await record(db, CustomerSnapshot(seq=3, at=T0))  # in no journey any more
    assert await stored(db) == (3, [])


async def test_concurrent_writers_leave_exactly_the_newest_snapshots_journeys(db):
    """Each seq is in a different set of journeys; written all at once in a shuffled
    order, the read model ends with the newest one's set: no journey an older writer
    added survives (the journeys rows are written under the customer's row lock)."""

    def of(seq: int) -> CustomerSnapshot:
        snap = snapshot(seq, "active", orders=seq)
        base = snap.journeys[0]
        names = ["lifecycle", "nps", "at_risk", "birthday"][: seq % 4 + 1]
        snap.journeys = [base.model_copy(update={"journey": n}) for n in names]
        return snap

    seqs = list(range(1, 31))
    random.Random(11).shuffle(seqs)
    await asyncio.gather(*(record(db, of(s)) for s in seqs))
    assert await stored(db) == (
        30,
        [(n, "active", 30) for n in sorted(["lifecycle", "nps", "at_risk"])],
    )


async def test_transitions_and_the_snapshot_go_in_one_call_each_transition_once(db):
    moved = [
        TransitionRecord(
            journey="lifecycle",
            version=1,
            from_state=from_state,
            to_state=to_state,
            cause="event:order_completed",
            at=T0,
            key=f"c1/lifecycle/1/{n}",
        )
        for n, (from_state, to_state) in enumerate([(None, "new"), ("new", "active")])
    ]
    tagged = snapshot(1, "active", orders=1)
    tagged.journeys[0].experiment, tagged.journeys[0].arm = "welcome_test", "b"  # elsewhere
    assert await record(db, tagged, *moved) == 2
    assert await record(db, tagged, *moved) == 2  # a retried activity: stored once
    assert await record(db, None, moved[1]) == 1  # without a snapshot: the log only
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT key, from_state, to_state FROM journey_transitions ORDER BY key"
        )
        assert await cur.fetchall() == [
            ("c1/lifecycle/1/0", None, "new"),
            ("c1/lifecycle/1/1", "new", "active"),
        ]
    assert await stored(db) == (1, [("lifecycle", "active", 1)])


def test_recorded_inputs_without_a_snapshot_still_decode():
    old = {"customer_id": "c1", "transitions": []}  # as histories before #10 hold it
    assert RecordTransitionsInput.model_validate(old).snapshot is None


@pytest.fixture
async def api_without_temporal(db, db_url) -> AsyncIterator[tuple[str, str]]:
    """The API with Temporal unreachable (nothing listens at its address)."""
    async with db.connection() as conn:
        _, admin = await keys.create(conn, "admin", "test admin")
    settings = Settings.model_validate(
        {
            "DATABASE_URL": db_url,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
            "JOURNEYS_DISPATCHER": "false",
            "JOURNEYS_ENV": "development",
        }
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}", admin
    server.should_exit = True
    await task


async def test_a_customer_is_read_from_postgres_while_temporal_is_down(db, api_without_temporal):
    url, admin = api_without_temporal
    problem = Problem(at=T0, journey="lifecycle", state="new", message="send welcome failed")
    entered = TransitionRecord(
        journey="lifecycle",
        version=1,
        from_state=None,
        to_state="new",
        cause="enroll:signed_up",
        at=T0,
        key="c1/lifecycle/1/0",
    )
    await record(db, snapshot(4, "new", orders=0, problems=[problem]), entered)
    headers = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        r = await http.get("/v1/customers/c1", headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        live = await http.get("/v1/customers/c1", params={"live": "true"}, headers=headers)
    assert body["read_from"] == "read_model"
    assert body["tier"] == "B"
    lifecycle = body["journeys"]["lifecycle"]
    assert lifecycle["state"] == "new" and lifecycle["status"] == "active"
    assert lifecycle["context"] == {"orders": 0, "spent": 0.0}
    assert lifecycle["next_timer"]["after"] == "14d"
    assert lifecycle["next_timer"]["to"] == "dormant"
    assert [h["to_state"] for h in lifecycle["history"]] == ["new"]
    assert [p["message"] for p in body["problems"]] == ["send welcome failed"]
    # the live view asks the workflow, which cannot be reached now
    assert live.status_code == 503
    assert live.json()["error"] == "temporal_unavailable"


def test_the_snapshot_of_a_customer_names_state_context_and_next_timer():
    from engine import load_rules, machine
    from engine.catalog import Catalog
    from engine.model import Customer, CustomerState, Event
    from tests.helpers import ROOT

    catalog = Catalog.of(load_rules(ROOT / "rules", ROOT / "templates"))
    state = CustomerState(customer=Customer(id="c1", tier="A"))
    signed_up = Event(name="signed_up", id="e1", timestamp=T0)
    state = machine.handle_event(catalog, state, signed_up, T0).state
    snap = CustomerSnapshot.of(state, catalog, seq=1, at=T0)
    (lifecycle,) = [j for j in snap.journeys if j.journey == "lifecycle"]
    assert (lifecycle.state, lifecycle.status, lifecycle.since) == ("new", "active", T0)
    assert lifecycle.context == {"orders": 0, "spent": 0.0}
    assert (lifecycle.next_timer_label, lifecycle.next_timer_target) == ("14d", "dormant")
    assert lifecycle.next_timer_due == T0 + timedelta(days=14)
    assert (snap.seq, snap.tier) == (1, "A")
    # without the catalog the target is not known; the rest is
    assert CustomerSnapshot.of(state, None, seq=1, at=T0).journeys[0].next_timer_target is None

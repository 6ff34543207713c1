"""Account managers against real PostgreSQL: fair assignment under concurrency, capacity,
idempotency per customer, deactivation, and the ``journeys managers`` CLI."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.types.json import Jsonb

import cli
from activities.actions import ActionActivities
from settings import get_settings
from store import managers, tasks
from store.db import pool as make_pool
from tests.helpers import local_activity_env, send_action
from tests.standins import RecordingSMTPServer
from tests.test_actions_workflow import settings_for
from workflows.io import ActionInput

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def _add(db, pool: str, n: int, capacity: int) -> list[managers.Manager]:
    async with db.connection() as conn:
        return [
            await managers.add(
                conn, pool=pool, name=f"M{i}", email=f"m{i}@x.test", capacity=capacity
            )
            for i in range(n)
        ]


async def test_200_concurrent_assignments_stay_fair(db, db_url):
    await _add(db, "vip", 7, 40)
    wide = make_pool(db_url, min_size=20, max_size=20)
    await wide.open()
    try:

        async def one(i: int):
            async with wide.connection() as conn:
                return await managers.assign(conn, customer_id=f"c{i}", pool="vip")

        results = await asyncio.gather(*(one(i) for i in range(200)))
        # a second wave for the same customers changes nothing
        again = await asyncio.gather(*(one(i) for i in range(200)))
    finally:
        await wide.close()
    assert all(r is not None and r[1] for r in results)
    assert all(r is not None and not r[1] for r in again)
    assert [r[0].id for r in results if r] == [r[0].id for r in again if r]
    async with db.connection() as conn:
        loads = [m.load for m in await managers.list_managers(conn, "vip")]
        cur = await conn.execute("SELECT count(*) FROM manager_assignments")
        assert (await cur.fetchone())[0] == 200
    assert sum(loads) == 200
    assert max(loads) - min(loads) <= 1, loads
    assert max(loads) <= 40


async def test_assignment_is_kept_and_capacity_is_respected(db):
    first, second = await _add(db, "vip", 2, 1)
    async with db.connection() as conn:
        a = await managers.assign(conn, customer_id="ann", pool="vip")
        b = await managers.assign(conn, customer_id="bob", pool="vip")
        assert a is not None and b is not None
        assert (a[0].id, a[1], a[0].load) == (first.id, True, 1)
        assert (b[0].id, b[1]) == (second.id, True)
        assert await managers.assign(conn, customer_id="cid", pool="vip") is None  # full
        kept = await managers.assign(conn, customer_id="ann", pool="vip")
        assert kept is not None and (kept[0].id, kept[1]) == (first.id, False)
        mine = await managers.manager_of(conn, "ann")
        assert mine is not None and mine.id == first.id
        assert await managers.manager_of(conn, "cid") is None


async def test_unknown_pool_is_a_configuration_error(db):
    async with db.connection() as conn:
        with pytest.raises(managers.UnknownPool, match="journeys managers add --pool gold"):
            await managers.assign(conn, customer_id="ann", pool="gold")


async def test_duplicate_and_reactivated_manager(db):
    (m,) = await _add(db, "vip", 1, 5)
    async with db.connection() as conn:
        with pytest.raises(managers.DuplicateManager, match="already an active manager"):
            await managers.add(conn, pool="vip", name="Again", email=m.email, capacity=3)
        await managers.deactivate(conn, m.id)
        back = await managers.add(conn, pool="vip", name="Back", email=m.email, capacity=3)
        assert (back.id, back.name, back.capacity, back.active) == (m.id, "Back", 3, True)
        with pytest.raises(managers.ManagerError, match="capacity must be at least 1"):
            await managers.add(conn, pool="vip", name="Z", email="z@x.test", capacity=0)
        with pytest.raises(managers.ManagerError, match="'VIP pool' is not a pool name"):
            await managers.add(conn, pool="VIP pool", name="Z", email="z@x.test", capacity=1)


async def test_deactivate_reassigns_fairly_and_moves_open_tasks(db):
    m0, m1, m2 = await _add(db, "vip", 3, 10)
    async with db.connection() as conn:
        for i in range(9):
            await managers.assign(conn, customer_id=f"c{i}", pool="vip")
        owners = {f"c{i}": await managers.manager_of(conn, f"c{i}") for i in range(9)}
        mine = [c for c, m in owners.items() if m is not None and m.id == m0.id]
        assert len(mine) == 3
        task = await tasks.create(
            conn,
            idempotency_key="k1",
            customer_id=mine[0],
            journey="lifecycle",
            title="Say hello",
            note=None,
            assignee="manager",
            due_at=NOW,
        )
        assert task.manager_id == m0.id
        moves = await managers.deactivate(conn, m0.id)
        assert sorted(c for c, _ in moves) == sorted(mine)
        assert all(new is not None and new.id != m0.id for _, new in moves)
        loads = {m.id: m.load for m in await managers.list_managers(conn, "vip")}
        assert loads[m0.id] == 0 and sorted([loads[m1.id], loads[m2.id]]) == [4, 5]
        moved = await tasks.get(conn, task.id)
        new_owner = dict(moves)[mine[0]]
        assert moved is not None and new_owner is not None and moved.manager_id == new_owner.id
        assert await managers.deactivate(conn, m0.id) == []  # again: nothing to do
        with pytest.raises(managers.UnknownManager, match="no manager with id 999"):
            await managers.deactivate(conn, 999)


async def test_deactivate_without_room_leaves_customers_unassigned(db):
    m0, m1 = await _add(db, "vip", 2, 1)
    async with db.connection() as conn:
        await managers.assign(conn, customer_id="ann", pool="vip")
        await managers.assign(conn, customer_id="bob", pool="vip")
        await tasks.create(
            conn,
            idempotency_key="k",
            customer_id="ann",
            journey="j",
            title="t",
            note=None,
            assignee="manager",
            due_at=NOW,
        )
        assert await managers.deactivate(conn, m0.id) == [("ann", None)]
        assert await managers.manager_of(conn, "ann") is None
        (queued,) = await tasks.list_tasks(conn, assignee="vip", status="open")
        assert queued.customer_id == "ann" and queued.manager_id is None
        # room again: ann gets a manager at the next assignment
        await managers.add(conn, pool="vip", name="New", email="new@x.test", capacity=2)
        again = await managers.assign(conn, customer_id="ann", pool="vip")
        assert again is not None and again[1] and again[0].id not in (m0.id, m1.id)


def _care(customer_id: str, key: str) -> ActionInput:
    return send_action(customer_id, key, NOW, state="at_risk", template="churn_care",
                       channel="email", transactional=True)  # fmt: skip


async def test_a_message_names_the_customers_active_manager(db, db_url):
    """A template's ``manager`` is read with the message's claim, in the same statement:
    the customer's active manager; their successor after a deactivation; nobody for a
    customer without one."""
    m0, m1 = await _add(db, "vip", 2, 1)
    async with db.connection() as conn:
        for c in ("ann", "bob"):
            email = Jsonb({"email": f"{c}@example.com"})
            await conn.execute("INSERT INTO customers (customer_id, traits) VALUES (%s, %s)",
                               (c, email))  # fmt: skip
        await managers.assign(conn, customer_id="ann", pool="vip")
    with RecordingSMTPServer() as smtp:
        acts, env = ActionActivities(db, settings_for(smtp, db_url)), local_activity_env()
        for customer, key in (("ann", "k1"), ("bob", "k2")):
            assert (await env.run(acts.perform, _care(customer, key))).status == "done"
        async with db.connection() as conn:
            [(moved, to)] = await managers.deactivate(conn, m0.id)
        assert moved == "ann" and to is not None and to.id == m1.id
        assert (await env.run(acts.perform, _care("ann", "k3"))).status == "done"
        mail = await smtp.wait_for(3)
    texts = [m.message.get_body(("plain",)).get_content() for m in mail]  # type: ignore[union-attr]
    assert f"{m0.name}, your account manager" in texts[0]
    assert "account manager" not in texts[1]
    assert f"{m1.name}, your account manager" in texts[2]


def test_cli_add_list_deactivate(db_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        for email in ("ann@x.test", "bob@x.test"):
            assert cli.run(["managers", "add", "--pool", "vip", "--name", email[:3].title(),
                            "--email", email, "--capacity", "2"]) == 0  # fmt: skip
        assert "added manager 2: Bob <bob@x.test> to pool vip" in capsys.readouterr().out
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO manager_assignments (customer_id, pool, manager_id)"
                " VALUES ('c1', 'vip', 1)"
            )
        assert cli.run(["managers", "list", "--pool", "vip"]) == 0
        out = capsys.readouterr().out
        assert "1/2" in out and "Ann <ann@x.test>" in out and "yes" in out
        assert cli.run(["managers", "deactivate", "1"]) == 0
        out = capsys.readouterr().out
        assert "deactivated manager 1 (Ann <ann@x.test>); 1 customer(s)" in out
        assert "c1 -> Bob (id 2)" in out
        assert cli.run(["managers", "deactivate", "7"]) == 1
        assert "no manager with id 7" in capsys.readouterr().err
        assert cli.run(["managers", "add", "--pool", "vip", "--name", "X",
                        "--email", "bob@x.test", "--capacity", "2"]) == 1  # fmt: skip
        assert "already an active manager" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()

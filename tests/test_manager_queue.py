"""Customers waiting for an account manager: an ``assign_manager`` to a pool with nobody
(the README's order: the VIP order first, ``journeys managers add`` after) or nobody with
room queues the customer; adding a manager assigns the queue, once per customer, with the
introduction task and the note a direct assignment gives. Real PostgreSQL, real workflows
on the time-skipping server, the API over real HTTP, the CLI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn

import cli
from activities.actions import ActionActivities
from activities.assignment import ManagerNotes
from api import create_app
from devstack.stack import free_port
from engine.model import Event
from engine.policy import Policy
from ingest import keys
from orchestration import customers
from settings import Settings, get_settings
from store import managers, waitlist
from store.db import pool as make_pool
from tests.conftest import running_worker
from tests.helpers import ROOT, journeys_from, publish, until
from tests.standins import RecordingSMTPServer

VIP = """
journey: vip_rush
enroll: {on: [promoted]}
start: vip
states:
  vip:
    enter:
      - assign_manager: {pool: vip}
    on: {never: done}
  done: {final: true}
"""
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def settings_for(smtp: RecordingSMTPServer, db_url: str) -> Settings:
    return Settings.model_validate(
        {
            **smtp.env(),
            "DATABASE_URL": db_url,
            "JOURNEYS_TEMPLATES": str(ROOT / "templates"),
            "JOURNEYS_DISPATCHER": "false",
            "JOURNEYS_ENV": "development",
        }
    )


async def rows(db: Any, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    async with db.connection() as conn:
        cur = await conn.execute(sql, args)
        return list(await cur.fetchall())


async def promote(env: Any, seq: int, task_queue: str, *ids: str) -> None:
    now = await env.get_current_time()
    for cid in ids:
        event = Event(name="promoted", id=f"p-{cid}", timestamp=now)
        await customers.send_events(
            env.client, cid, [event], task_queue=task_queue, catalog_seq=seq
        )


@pytest.fixture
async def api_url(time_env, db, db_url) -> AsyncIterator[tuple[str, dict[str, str]]]:
    async with db.connection() as conn:
        _, admin = await keys.create(conn, "admin", "test admin")
    settings = Settings.model_validate(
        {"DATABASE_URL": db_url, "JOURNEYS_DISPATCHER": "false", "JOURNEYS_ENV": "development"}
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, temporal=time_env.client),
            host="127.0.0.1",
            port=(port := free_port()),
            log_level="warning",
        )
    )
    task = asyncio.create_task(server.serve())
    await until(lambda: asyncio.sleep(0, server.started))
    yield f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {admin}"}
    server.should_exit = True
    await task


async def test_readme_order_vip_first_then_a_manager_added_over_the_api(
    time_env, db, db_url, task_queue, tmp_path, api_url
):
    url, admin = api_url
    seq = await publish(db_url, journeys_from(tmp_path, "vip_rush", VIP))
    with RecordingSMTPServer() as smtp:
        settings = settings_for(smtp, db_url)
        async with running_worker(time_env.client, db, task_queue, settings=settings):
            await promote(time_env, seq, task_queue, "vip-1", "vip-2")
            await until(lambda: rows(db, "SELECT 1 FROM action_log WHERE status = 'failed'"))
            await until(lambda: _count(db, "manager_waitlist", 2))
            state = await customers.state(time_env.client, "vip-1")
            # the misconfiguration is still shown, and says the customer is not lost
            assert "waits in the pool's queue" in state.problems[0].message
            assert "journeys managers add --pool vip" in state.problems[0].message
        async with httpx.AsyncClient(base_url=url, headers=admin, timeout=10) as http:
            body = {"pool": "vip", "name": "Ann", "email": "ann@shop.test", "capacity": 5}
            added = await http.post("/v1/managers", json=body)
            assert added.status_code == 201, added.text
            assert (added.json()["assigned_from_queue"], added.json()["load"]) == (2, 2)
            body = {**body, "email": "bob@shop.test"}
            assert (await http.post("/v1/managers", json=body)).json()["assigned_from_queue"] == 0
        notes = ManagerNotes(db, ActionActivities(db, settings, policy=Policy()).messenger)
        assert await notes.round() == 2
        assert await notes.round() == 0  # each note once
        assert sorted(m.message["Subject"] for m in smtp.mail) == [
            "New vip_rush customer for you: vip-1",
            "New vip_rush customer for you: vip-2",
        ]
        assert all(m.rcpt_tos == ["ann@shop.test"] for m in smtp.mail)
    intro = await rows(db, "SELECT customer_id, title, m.email FROM tasks t JOIN managers m"
                           " ON m.id = t.manager_id ORDER BY customer_id")  # fmt: skip
    assert intro == [
        ("vip-1", "Introduce yourself to customer vip-1", "ann@shop.test"),
        ("vip-2", "Introduce yourself to customer vip-2", "ann@shop.test"),
    ]
    assert await rows(db, "SELECT DISTINCT status FROM action_log") == [("done",)]
    assert await _count(db, "manager_waitlist", 0)


async def test_a_full_pool_queues_quietly_and_the_cli_add_assigns_the_queue(
    time_env, db, db_url, task_queue, tmp_path, monkeypatch, capsys
):
    seq = await publish(db_url, journeys_from(tmp_path, "vip_rush", VIP))
    async with db.connection() as conn:
        await managers.add(conn, pool="vip", name="Ann", email="ann@shop.test", capacity=1)
    with RecordingSMTPServer() as smtp:
        settings = settings_for(smtp, db_url)
        async with running_worker(time_env.client, db, task_queue, settings=settings):
            await promote(time_env, seq, task_queue, "c-1")
            await smtp.wait_for(1)  # c-1 got Ann directly, with the note
            await promote(time_env, seq, task_queue, "c-2")
            await until(lambda: _count(db, "manager_waitlist", 1))
            (status,) = await until(
                lambda: rows(db, "SELECT status FROM action_log WHERE customer_id = 'c-2'")
            )
            assert status == ("queued",)
            assert (await customers.state(time_env.client, "c-2")).problems == []
        monkeypatch.setenv("DATABASE_URL", db_url)
        get_settings.cache_clear()
        try:
            args = ["managers", "add", "--pool", "vip", "--name", "Bob",
                    "--email", "bob@shop.test", "--capacity", "3"]  # fmt: skip
            assert await asyncio.to_thread(cli.run, args) == 0  # the CLI runs its own loop
        finally:
            get_settings.cache_clear()
        out = capsys.readouterr().out
        assert "assigned 1 customer(s) waiting in pool vip's queue" in out
        assert "c-2 -> Bob (id 2)" in out
        notes = ManagerNotes(db, ActionActivities(db, settings, policy=Policy()).messenger)
        assert await notes.round() == 1
        assert [m.rcpt_tos for m in smtp.mail] == [["ann@shop.test"], ["bob@shop.test"]]
    assert await rows(db, "SELECT customer_id, count(*) FROM tasks GROUP BY 1 ORDER BY 1") == [
        ("c-1", 1),
        ("c-2", 1),
    ]


async def _count(db: Any, table: str, n: int) -> bool:
    return len(await rows(db, f"SELECT 1 FROM {table}")) == n


def _waiting(i: int) -> waitlist.Waiting:
    return waitlist.Waiting(f"c{i:02}", "vip", f"c{i:02}/vip_rush/1/1/enter:vip/0", "vip_rush",
                            "vip", {"journey": {"name": "vip_rush", "version": 1}})  # fmt: skip


async def test_concurrent_adds_drains_and_actions_assign_each_customer_once(db, db_url):
    async with db.connection() as conn:
        for i in range(60):
            await waitlist.enqueue(conn, _waiting(i))
    wide = make_pool(db_url, min_size=12, max_size=12)
    await wide.open()
    try:

        async def add_then_drain(n: int) -> list[waitlist.Assigned]:
            async with wide.connection() as conn:
                m = await managers.add(conn, pool="vip", name=f"M{n}", email=f"m{n}@x.test",
                                       capacity=20)  # fmt: skip
                return await waitlist.assign_waiting(conn, m.pool, now=NOW)

        async def drain() -> list[waitlist.Assigned]:
            async with wide.connection() as conn:
                return await waitlist.assign_waiting(conn, "vip", now=NOW)

        async def direct(i: int) -> Any:  # a retried action of a waiting customer
            async with wide.connection() as conn:
                try:
                    return await managers.assign(conn, customer_id=f"c{i:02}", pool="vip")
                except managers.UnknownPool:
                    return None

        results = await asyncio.gather(
            *(add_then_drain(n) for n in range(3)),
            *(drain() for _ in range(4)),
            *(direct(i) for i in range(0, 60, 7)),
        )
        # a direct assignment after the last drain leaves its row until the next drain
        settled = await drain()
    finally:
        await wide.close()
    from_queue = [a.waiting.customer_id for batch in [*results[:7], settled] for a in batch]
    assert len(from_queue) == len(set(from_queue))  # nobody assigned from the queue twice
    assigned = await rows(db, "SELECT customer_id, manager_id FROM manager_assignments")
    assert sorted(c for c, _ in assigned) == [f"c{i:02}" for i in range(60)]
    async with db.connection() as conn:
        loads = sorted(m.load for m in await managers.list_managers(conn, "vip"))
    assert loads == [20, 20, 20]
    intro = await rows(db, "SELECT customer_id FROM tasks")
    assert sorted(c for (c,) in intro) == sorted(from_queue)  # one task per queue assignment
    assert await _count(db, "manager_waitlist", len(from_queue))  # their notes are pending


async def test_the_worker_round_assigns_a_queue_an_add_left_behind(db, db_url):
    with RecordingSMTPServer() as smtp:
        settings = settings_for(smtp, db_url)
        async with db.connection() as conn:
            await waitlist.enqueue(conn, _waiting(1))
            # a CLI that died between adding the manager and assigning the queue
            await managers.add(conn, pool="vip", name="Ann", email="ann@shop.test", capacity=1)
            await waitlist.enqueue(conn, _waiting(2))
        notes = ManagerNotes(db, ActionActivities(db, settings, policy=Policy()).messenger)
        assert await notes.round(NOW) == 1
        assert [m.message["Subject"] for m in smtp.mail] == ["New vip_rush customer for you: c01"]
        assert await notes.round(NOW + timedelta(minutes=1)) == 0  # c02: Ann is full
    async with db.connection() as conn:
        assert [w.customer_id for w in await waitlist.queued(conn)] == ["c02"]

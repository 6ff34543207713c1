"""Upgrading a journey as a library function (``orchestration.upgrade``), the one
``journeys upgrade`` calls: publish, raise the floor, notify the customers in flight.
Real workflows on a real Temporal dev server, real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import httpx
import psycopg
import pytest
import uvicorn
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api import create_app
from devstack.stack import free_port
from engine import JourneyValidationError, Run
from engine.model import Event
from ingest import keys
from orchestration import customers
from orchestration.codec import data_converter
from orchestration.temporal import register_search_attributes
from orchestration.upgrade import upgrade_journey
from settings import DEV_PAYLOAD_KEYS, Settings
from store import catalog as catalog_store
from tests.conftest import running_worker, tool
from tests.helpers import ROOT, journeys_from, publish

T = TypeVar("T")

V1 = """
journey: upg
enroll: {on: [joined]}
start: trial
states:
  trial:
    on:
      paid: member
  member:
    on:
      left: gone
  gone:
    final: true
"""
V2 = V1.replace("member", "subscriber").replace(
    "start: trial\n", "start: trial\nmigrate:\n  member: subscriber\n"
)


@pytest.fixture
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server: finding the customers in flight lists workflows by search
    attribute, which the time-skipping test server does not implement."""
    env = await WorkflowEnvironment.start_local(
        data_converter=data_converter(DEV_PAYLOAD_KEYS),
        dev_server_existing_path=tool("temporal"),
        ui=False,
    )
    await register_search_attributes(env.client, env.client.namespace)
    yield env
    await env.shutdown()


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 30) -> T:
    """``check``'s first true answer, polled until a deadline (visibility lags by a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s")
        await asyncio.sleep(0.1)


async def test_upgrade_journey_publishes_raises_the_floor_and_notifies_customers_in_flight(
    dev_env, db, db_url, task_queue, tmp_path
):
    client = dev_env.client
    seq = await publish(db_url, journeys_from(tmp_path / "v1", "upg", V1))
    cid = f"u-{task_queue}"

    async def run() -> Run | None:
        state = await customers.state(client, cid)
        return state.runs.get("upg")

    async with running_worker(client, db, task_queue):
        now = datetime.now(UTC)
        events = [Event(name=n, id=n, timestamp=now) for n in ("joined", "paid")]
        await customers.send_events(client, cid, events, task_queue=task_queue, catalog_seq=seq)
        assert (await eventually(run)).state == "member"
        query = f"JourneyVersions = 'upg@1' AND CustomerId = '{cid}'"
        await eventually(lambda: _listed(client, query))
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            done = await upgrade_journey(
                conn, client, journeys_from(tmp_path / "v2", "upg", V2), "upg"
            )
            _, latest, floor = await catalog_store.head(conn)
        assert (done.version, latest, floor) == (2, {"upg": 2}, {"upg": 2})
        assert done.notified == 1
        moved = await eventually(lambda: _on_version(run, 2))
        assert (moved.version, moved.state) == (2, "subscriber")


async def _listed(client: Client, query: str) -> bool:
    return bool([wf async for wf in client.list_workflows(query)])


async def _on_version(run: Callable[[], Awaitable[Run | None]], version: int) -> Run | None:
    current = await run()
    return current if current is not None and current.version == version else None


async def test_upgrade_journey_refuses_an_unmapped_state_and_moves_nobody(
    time_env, db_url, tmp_path
):
    await publish(db_url, journeys_from(tmp_path / "v1", "upg", V1))
    broken = V2.replace("migrate:\n  member: subscriber\n", "")
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        with pytest.raises(JourneyValidationError, match="state 'member' of v1 is gone"):
            await upgrade_journey(
                conn, time_env.client, journeys_from(tmp_path / "v2", "upg", broken), "upg"
            )
        _, latest, floor = await catalog_store.head(conn)
    assert (latest, floor) == ({"upg": 2}, {})


@asynccontextmanager
async def serving(settings: Settings, client: Client) -> AsyncIterator[str]:
    """The real API on uvicorn; yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, temporal=client),
            host="127.0.0.1",
            port=(port := free_port()),
            log_level="warning",
            lifespan="on",
        )
    )
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_the_api_upgrades_a_journey_from_the_servers_rules_as_the_cli_does(
    dev_env, db, db_url, task_queue, tmp_path
):
    client = dev_env.client
    seq = await publish(db_url, journeys_from(tmp_path / "v1", "upg", V1))
    journeys_from(tmp_path / "v2", "upg", V2)  # what the next deploy ships
    broken = tmp_path / "broken"
    journeys_from(broken, "upg", V2.replace("migrate:\n  member: subscriber\n", ""))
    cid = f"api-{task_queue}"
    async with db.connection() as conn:
        _, admin = await keys.create(conn, "admin", "deploys")
    auth = {"Authorization": f"Bearer {admin}"}

    def settings_for(rules: Path) -> Settings:
        return Settings.model_validate(
            {
                "DATABASE_URL": db_url,
                "JOURNEYS_TASK_QUEUE": task_queue,
                "JOURNEYS_ENV": "development",
                "JOURNEYS_DISPATCHER": "false",
                "JOURNEYS_RULES": str(rules),
                "JOURNEYS_TEMPLATES": str(ROOT / "templates"),
            }
        )

    async def run() -> Run | None:
        return (await customers.state(client, cid)).runs.get("upg")

    async with running_worker(client, db, task_queue):
        now = datetime.now(UTC)
        events = [Event(name=n, id=n, timestamp=now) for n in ("joined", "paid")]
        await customers.send_events(client, cid, events, task_queue=task_queue, catalog_seq=seq)
        assert (await eventually(run)).state == "member"
        await eventually(
            lambda: _listed(client, f"JourneyVersions = 'upg@1' AND CustomerId = '{cid}'")
        )

        async with (
            serving(settings_for(broken / "upg"), client) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as http,
        ):
            refused = await http.post("/v1/journeys/upg/upgrade", headers=auth)
            assert refused.status_code == 422, refused.text
            assert "state 'member' of v1 is gone" in refused.json()["message"]
            unknown = await http.post("/v1/journeys/nope/upgrade", headers=auth)
            assert unknown.status_code == 404
            assert unknown.json()["message"] == "the rules hold no journey 'nope'; journeys: upg"
            anonymous = await http.post("/v1/journeys/upg/upgrade")
            assert anonymous.status_code == 401
        still = await run()
        assert still is not None and still.version == 1  # nobody moved

        async with (
            serving(settings_for(tmp_path / "v2" / "upg"), client) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as http,
        ):
            done = await http.post("/v1/journeys/upg/upgrade", headers=auth)
        assert done.status_code == 200, done.text
        assert {k: done.json()[k] for k in ("journey", "version", "notified")} == {
            "journey": "upg",
            "version": 3,  # the refused upgrade published v2 and moved nobody, as the CLI does
            "notified": 1,
        }
        moved = await eventually(lambda: _on_version(run, 3))
        assert (moved.version, moved.state) == (3, "subscriber")

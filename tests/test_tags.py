"""Tags for real: a journey tags a customer and another branches on ``customer.tags``
(time-skipping server, real PostgreSQL, events through the real ingestion path); the
tag activity writes ``customer_tags`` once however often it is retried; segment rules
read the table; ``GET /v1/customers/{id}`` and ``journeys show`` list the tags."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from temporalio.testing import ActivityEnvironment

import cli
from activities.actions import ActionActivities
from api import create_app
from devstack.stack import free_port
from engine.model import ActionCommand
from engine.policy import Policy
from engine.segments import load_segments, segment_of
from ingest import keys
from orchestration import customers
from settings import Settings, get_settings
from store import segments, tags
from tests.conftest import running_worker
from tests.engine.test_tags import ROUTER, TAGGER
from tests.helpers import ROOT, journeys_from, publish, until
from tests.test_actions_workflow import Shop, rows
from tests.test_segments_sql import order
from workflows.io import ActionInput

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)


def tag_command(
    key: str, *, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()
) -> ActionCommand:
    return ActionCommand(
        kind="tag",
        args={"add": list(add), "remove": list(remove)},
        journey="j",
        version=1,
        state="s",
        idempotency_key=key,
        summary="tag customer c1",
    )


async def test_a_retried_tag_activity_tags_once(db) -> None:
    acts = ActionActivities(db, Settings(), policy=Policy())
    env = ActivityEnvironment()
    first = ActionInput(
        customer_id="c1", command=tag_command("c1/j/1/1/a", add=("vip",)), now=AS_OF
    )
    for attempt in range(3):  # the worker died after the insert, twice
        retry = first.model_copy(update={"now": AS_OF + timedelta(minutes=attempt)})
        assert (await env.run(acts.tag_customer, retry)).status == "done"
    async with db.connection() as conn:
        (row,) = await tags.tags_of(conn, "c1")
        assert (row.tag, row.tagged_at, row.idempotency_key) == ("vip", AS_OF, "c1/j/1/1/a")
        # another action adding it again keeps who tagged first; a removal removes it
        again = tag_command("c1/j/1/2/b", add=("vip", "pro"))
        await tags.record(conn, "c1", again, now=AS_OF + timedelta(days=1))
        assert [(t.tag, t.idempotency_key) for t in await tags.tags_of(conn, "c1")] == [
            ("pro", "c1/j/1/2/b"),
            ("vip", "c1/j/1/1/a"),
        ]
    drop = ActionInput(customer_id="c1", command=tag_command("c1/j/1/3/c", remove=("vip",)))
    for _ in range(2):
        await env.run(acts.tag_customer, drop)
    async with db.connection() as conn:
        assert [t.tag for t in await tags.tags_of(conn, "c1")] == ["pro"]
    logged = await rows(db, "SELECT idempotency_key, status FROM action_log ORDER BY 1")
    assert logged == [("c1/j/1/1/a", "done"), ("c1/j/1/3/c", "done")]


SEGMENTS = """
segments:
  - {name: vip_buyers, when: '"vip" in tags && orders > 0'}
  - {name: vip_lapsed, when: '"vip" in customer.tags'}
  - {name: rest, when: 'true'}
"""


async def test_segment_refresh_reads_customer_tags(db, tmp_path: Path) -> None:
    (tmp_path / "segments.yaml").write_text(SEGMENTS)
    defs = load_segments(tmp_path)
    async with db.connection() as conn:
        await order(conn, "ann", AS_OF - timedelta(days=3), 100)
        await order(conn, "bob", AS_OF - timedelta(days=3), 100)
        await order(conn, "cid", AS_OF - timedelta(days=400), 100)  # before the window
        for who in ("ann", "cid", "dan"):  # dan has no order: no metrics at all
            await tags.record(conn, who, tag_command(f"{who}/k", add=("vip",)), now=AS_OF)
        await segments.refresh(conn, defs, as_of=AS_OF)
        got = dict(
            await (
                await conn.execute("SELECT customer_id, segment FROM customer_metrics")
            ).fetchall()
        )
    assert got == {"ann": "vip_buyers", "bob": "rest", "cid": "vip_lapsed"}
    reference = {  # the Python reference agrees
        who: segment_of(defs, {"orders": n, "revenue": 0.0, "tags": t})
        for who, n, t in (("ann", 1, ["vip"]), ("bob", 1, []), ("cid", 0, ["vip"]))
    }
    assert reference == got


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, time_env) -> Any:
    monkeypatch.setenv("TEMPORAL_ADDRESS", time_env.client.service_client.config.target_host)
    monkeypatch.setenv("JOURNEYS_ENV", "development")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_one_journey_tags_and_another_branches_on_customer_tags(
    time_env, db, db_url, task_queue, tmp_path: Path, cli_env, capsys
) -> None:
    journeys = [*journeys_from(tmp_path, "a", TAGGER), *journeys_from(tmp_path, "b", ROUTER)]
    await publish(db_url, journeys)
    async with db.connection() as conn:
        _, admin = await keys.create(conn, "admin", "test admin")
    settings = Settings.model_validate(
        {
            "DATABASE_URL": db_url,
            "JOURNEYS_TASK_QUEUE": task_queue,
            "JOURNEYS_ENV": "development",
            "JOURNEYS_DISPATCHER": "false",
        }
    )
    app = create_app(settings, temporal=time_env.client)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with running_worker(time_env.client, db, task_queue, settings=settings):
            shop = Shop(time_env, db, db_url, task_queue)
            await shop.send("track", "pro-1", "Signed Up", properties={"plan": "pro"})
            await shop.send("track", "free-1", "Signed Up", properties={"plan": "free"})
            await until(lambda: rows(db, "SELECT 1 FROM customer_tags WHERE tag = 'vip'"))
            await shop.send("track", "pro-1", "Order Completed")
            await shop.send("track", "free-1", "Order Completed")

            async def routed(cid: str) -> str | None:
                run = (await customers.state(time_env.client, cid)).runs.get("b_router")
                return run.state if run and run.status == "completed" else None

            assert await until(lambda: routed("pro-1")) == "vip"
            assert await until(lambda: routed("free-1")) == "regular"
            if os.environ.get("RECORD_HISTORIES"):  # replayed by test_customer_workflow
                history = await (await customers.handle(time_env.client, "pro-1")).fetch_history()
                (ROOT / "tests/histories/tags_across_two_journeys_v6.json").write_text(
                    history.to_json()
                )
            stored = await rows(
                db, "SELECT customer_id, tag, journey FROM customer_tags ORDER BY 2"
            )
            assert stored == [("pro-1", "pro_plan", "a_tagger"), ("pro-1", "vip", "a_tagger")]
            started = asyncio.get_running_loop().time() + 30
            while not server.started:
                assert asyncio.get_running_loop().time() < started, "the API did not start"
                await asyncio.sleep(0.02)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                auth = {"Authorization": f"Bearer {admin}"}
                shown = (await http.get("/v1/customers/pro-1", headers=auth)).json()
                assert shown["tags"] == ["pro_plan", "vip"]
                assert (await http.get("/v1/customers/free-1", headers=auth)).json()["tags"] == []
            assert await asyncio.to_thread(cli.run, ["show", "pro-1"]) == 0  # its own loop
            assert "Tags: pro_plan, vip" in capsys.readouterr().out.splitlines()
            assert await asyncio.to_thread(cli.run, ["show", "pro-1", "--json"]) == 0
            assert '"tags": [\n      "pro_plan",\n      "vip"\n    ]' in capsys.readouterr().out
    finally:
        server.should_exit = True
        await serving

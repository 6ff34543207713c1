"""Tiering end to end on the real Temporal dev server: the worker creates the refresh
schedule; a refresh that changes 1,000 customers' segments tells each of them exactly once,
though the worker is SIGKILLed in the middle of the fan-out; journeys see the segment."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devstack.stack import Stack, free_port
from orchestration import customers
from orchestration.temporal import connect
from settings import Settings
from tests.conftest import ROOT, create_database, with_db
from workflows.segments import SCHEDULE_ID, RefreshRequest, SegmentRefreshWorkflow

pytestmark = pytest.mark.timeout(300)

COUNTING = """
journey: counting
enroll: {on: [segment_changed]}
context: {told: 0}
start: told
states:
  told:
    on:
      segment_changed:
        set: {told: 'ctx.told + 1'}
      never: done
  done: {final: true}
"""
N = 1000


def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "counting.yaml").write_text(COUNTING)
    (folder / "segments.yaml").write_text((ROOT / "rules" / "segments.yaml").read_text())
    return folder


async def sql(url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(query, args)
        return list(await cur.fetchall()) if cur.description else []


async def orders(url: str) -> None:
    """N customers, 1-5 orders each over the last months: every one gets a first segment."""
    await sql(
        url,
        "INSERT INTO events (source, message_id, type, customer_id, name, properties,"
        " event_time, received_at)"
        " SELECT 1, 'o-' || c || '-' || k, 'track', 'cust-' || c, 'order_completed',"
        "        jsonb_build_object('revenue', (c %% 97) * 10 + k), now() - (c %% 300 + k) * interval"
        "        '1 day', now()"
        "   FROM generate_series(1, %s) AS c, generate_series(1, 1 + c %% 5) AS k",
        N,
    )


def test_refresh_tells_1000_changed_customers_once_despite_a_crash(tmp_path: Path, pg_server: str):
    database = with_db(pg_server, create_database(pg_server, "journeys_segments"))
    stack = Stack(
        data_dir=tmp_path / "data",
        temporal_port=free_port(),
        ui_port=free_port(),
        api_port=free_port(),
        database_url=database,
        rules_dir=rules(tmp_path),
        log_dir=tmp_path / "logs",
        task_queue="tiering",
        extra_env={
            "JOURNEYS_STICKY_TIMEOUT_SECONDS": "2",
            "JOURNEYS_FAULT_KILL_AT": "segment_fanout_batch",
            "JOURNEYS_FAULT_MARKER": str(tmp_path / "killed-once"),
        },
    )
    with stack.running():
        stack.prepare_database()
        asyncio.run(orders(database))
        worker = stack.start_worker()
        stack.dev_keys()
        stack.start_api()  # its dispatcher delivers the outbox to the workflows

        async def start() -> Any:
            client = await connect(Settings.model_validate(stack.env()))
            deadline = time.monotonic() + 30
            while True:  # the worker creates the schedule when it starts
                try:
                    desc = await client.get_schedule_handle(SCHEDULE_ID).describe()
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.5)
            assert desc.schedule.spec.calendars or desc.schedule.spec.cron_expressions
            return await client.start_workflow(
                SegmentRefreshWorkflow.run,
                RefreshRequest(notify_batch=150, heartbeat_seconds=5),
                id="refresh-under-test",
                task_queue=stack.task_queue,
            )

        handle = asyncio.run(start())
        assert worker.wait(timeout=120) == -signal.SIGKILL  # died after a batch
        half = asyncio.run(
            sql(database, "SELECT count(*) FROM segment_changes WHERE notified_at IS NULL")
        )
        assert 0 < half[0][0] < N
        stack.start_worker()

        async def finish() -> Any:
            client = await connect(Settings.model_validate(stack.env()))
            return await client.get_workflow_handle(handle.id).result()

        outcome = asyncio.run(finish())
        assert (outcome["changed"] if isinstance(outcome, dict) else outcome.changed) == N
        told = asyncio.run(
            sql(
                database,
                "SELECT count(*), count(DISTINCT customer_id) FROM events"
                " WHERE name = 'segment_changed'",
            )
        )
        assert told == [(N, N)]

        async def every_workflow_told_once() -> list[int]:
            client = await connect(Settings.model_validate(stack.env()))
            deadline = time.monotonic() + 120
            while True:

                async def told(c: int) -> int:
                    try:
                        st = await customers.state(client, f"cust-{c}")
                    except Exception:
                        return -1
                    run = st.runs.get("counting")
                    return int(run.context["told"]) if run else -1

                counts = []
                for start in range(1, N + 1, 100):
                    counts += await asyncio.gather(*(told(c) for c in range(start, start + 100)))
                if all(n >= 0 for n in counts) or time.monotonic() > deadline:
                    return counts
                await asyncio.sleep(1)

        counts = asyncio.run(every_workflow_told_once())
    # the enrolling segment_changed also runs the state's rule: once each, never twice
    assert counts == [1] * N

"""``orchestration.replay.replay_all``: live histories fetched from a real dev server and replayed
with the current code; a run the code cannot replay is reported with its workflow id."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

from devstack.stack import Stack, free_port
from engine.model import Event
from orchestration import customers
from orchestration.codec import ENCODING_ZLIB
from orchestration.replay import replay_all
from orchestration.temporal import connect
from settings import Settings
from store import catalog as catalog_store
from tests.conftest import running_worker
from tests.helpers import publish_shipped
from workflows.io import CODE_VERSION
from workflows.segments import RefreshRequest, SegmentRefreshWorkflow

pytestmark = pytest.mark.timeout(60)


@workflow.defn(name="RetiredWorkflow", sandboxed=False)  # a test module: not importable there
class RetiredWorkflow:
    """A workflow type the current code no longer has: its histories cannot replay."""

    @workflow.run
    async def run(self) -> str:
        return "done"


@pytest.fixture
async def dev_client(tmp_path: Path) -> AsyncIterator[Client]:
    """A client of a real dev server of its own (the stack's, with its search attributes),
    killed at the end: a graceful stop takes longer than the test."""
    stack = Stack(data_dir=tmp_path, temporal_port=free_port(), ui_port=free_port())
    await asyncio.to_thread(stack.start_temporal)
    try:
        yield await connect(Settings.model_validate(stack.env()))
    finally:
        assert stack.temporal_proc is not None
        stack.temporal_proc.kill()
        stack.temporal_proc.wait()


async def listed(client: Client, query: str, n: int) -> None:
    deadline = time.monotonic() + 20
    while (await client.count_workflows(query)).count < n:
        assert time.monotonic() < deadline, f"{query}: fewer than {n} runs listed"
        await asyncio.sleep(0.2)


async def test_live_histories_replay_and_a_retired_type_is_reported(dev_client, db, db_url):
    """A finished segment refresh and customers of both code versions replay; runs of a
    type the code no longer has are named with their run and the SDK's sentence; ``limit``
    bounds the runs replayed."""
    client, queue = dev_client, f"tq-{uuid.uuid4().hex[:12]}"
    seq = await publish_shipped(db_url)
    async with running_worker(client, db, queue):
        done = await client.execute_workflow(
            SegmentRefreshWorkflow.run, RefreshRequest(), id="refresh-1", task_queue=queue
        )
        assert done.customers == 0
        async with db.connection() as conn:  # today's starts carry it, as the dispatcher's
            catalog = await catalog_store.Loader().load(conn, min_seq=seq)
        for version in (0, CODE_VERSION):
            cid = f"live-{version}"
            await customers.send_events(
                client,
                cid,
                [Event(name="Signed Up", id=f"{cid}-1", timestamp=datetime.now(UTC))],
                task_queue=queue,
                catalog_seq=seq,
                code_version=version,
                catalog=catalog if version else None,
            )
        for version in (0, CODE_VERSION):
            await _enrolled(client, f"live-{version}")
    async with Worker(client, task_queue=queue, workflows=[RetiredWorkflow]):
        for wid in ("retired-1", "retired-2"):
            await client.execute_workflow(RetiredWorkflow.run, id=wid, task_queue=queue)
    await listed(client, 'WorkflowType = "SegmentRefreshWorkflow"', 1)
    await listed(client, 'WorkflowType = "RetiredWorkflow"', 2)

    await listed(client, 'WorkflowType = "CustomerWorkflow"', 2)
    assert (
        await replay_all(client, 'WorkflowType = "SegmentRefreshWorkflow"', None)
    ).failures == []
    report = await replay_all(client, None, None)  # the whole namespace
    assert report.replayed == 5
    failures = report.failures
    assert sorted(f.workflow_id for f in failures) == ["retired-1", "retired-2"]
    assert all(f.run_id for f in failures)
    assert failures[0].reason == (
        "Workflow class RetiredWorkflow is not registered on this worker, available workflows: "
        "CustomerWorkflow, SegmentRefreshWorkflow"
    )
    assert len((await replay_all(client, 'WorkflowType = "RetiredWorkflow"', 1)).failures) == 1
    # the report's size of the runs, as stored: a customer's start (catalog) is compressed
    fetched = [
        await client.get_workflow_handle(e.id, run_id=e.run_id).fetch_history()
        async for e in client.list_workflows()
    ]
    assert report.events == sum(len(h.events) for h in fetched)
    assert report.stored_bytes == sum(e.ByteSize() for h in fetched for e in h.events)
    start = next(h for h in fetched if h.workflow_id.endswith(f"live-{CODE_VERSION}")).events[0]
    (sealed,) = start.workflow_execution_started_event_attributes.input.payloads
    assert sealed.metadata["encoding"] == ENCODING_ZLIB


async def _enrolled(client: Client, cid: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if "lifecycle" in (await customers.state(client, cid)).runs:
                return
        except Exception:
            pass
        assert time.monotonic() < deadline, f"{cid} never enrolled"
        await asyncio.sleep(0.2)

"""Replay however the load split the workflow tasks (issue #10, item 1).

The history in tests/histories/cdnow_first_task_split_under_backlog.json was recorded during
a 6,000-customer import: its first task waited 27 s in the queue and was completed with only
the catalog's local activity marker, so the code after it (a ``workflow.patched`` call) ran
in the second task. Plain replay of it fails; the worker replays it as recorded."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from activities.actions import ActionActivities
from activities.journeys import JourneyActivities
from activities.steps import StepActivities
from engine import Catalog
from engine.model import Event
from engine.policy import Policy
from orchestration import customers
from orchestration.codec import data_converter
from orchestration.replay import repair_runner, replay_history, split_points
from orchestration.temporal import sandbox_runner
from settings import DEV_PAYLOAD_KEYS, Settings
from tests.helpers import publish_shipped
from worker import build_worker
from workflows.customer import CustomerWorkflow
from workflows.io import CODE_VERSION, SIGNAL_EVENTS, CustomerInput, EventsSignal, LoadCatalogInput

HISTORIES = Path(__file__).parent / "histories"
CONVERTER = data_converter(DEV_PAYLOAD_KEYS)  # as the tests' clients encrypt
SPLIT = HISTORIES / "cdnow_first_task_split_under_backlog.json"


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


async def _plain(history: WorkflowHistory, runner: Any) -> str | None:
    replayer = Replayer(
        workflows=[CustomerWorkflow],
        data_converter=CONVERTER,
        workflow_runner=runner,
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    return None if result.replay_failure is None else str(result.replay_failure)


async def test_the_split_is_found_in_the_history_and_replayed_as_recorded():
    history = _history(SPLIT)
    # task 1 (started at event 5) ended with only the catalog's marker (local activity 1)
    assert split_points(history) == {(5, 1)}
    plain = await _plain(history, sandbox_runner())
    assert plain is not None and "TMPRL1100" in plain, (
        "plain replay of the split history passes: the SDK may have fixed the race, "
        "and orchestration.replay's repair may no longer be needed"
    )
    assert (
        await replay_history(
            history,
            workflows=[CustomerWorkflow],
            data_converter=CONVERTER,
        )
        is None
    )


async def test_histories_without_a_split_have_no_repair_to_apply():
    for path in sorted(HISTORIES.glob("lead_followup_*.json")):
        assert split_points(_history(path)) == frozenset(), path.name


async def test_a_worker_learns_the_repair_when_core_evicts_the_run_for_nondeterminism():
    """What a live worker does with a stuck customer: the first attempt of the task fails,
    core evicts the run for nondeterminism, the runner learns the split from the history
    (fetched from Temporal in the worker) and the next attempt replays."""
    history = _history(SPLIT)
    runner = repair_runner()
    evicted: list[tuple[str, str]] = []
    runner.on_nondeterminism(lambda wid, rid: evicted.append((wid, rid)))
    assert await _plain(history, runner) is not None
    assert evicted and evicted[0][1] == history.run_id
    runner.plan(history.run_id, split_points(history))
    assert await _plain(history, runner) is None


def _slow_catalog(journeys: JourneyActivities, seconds: float) -> Any:
    """load_catalog that outlives the workflow task's heartbeat (80% of its timeout) once
    per customer, so core completes the task while the local activity still runs."""
    slowed: set[str] = set()

    @activity.defn(name="load_catalog")
    async def load_catalog(data: LoadCatalogInput) -> Catalog:
        wid = activity.info().workflow_id or ""
        if wid not in slowed:
            slowed.add(wid)
            await asyncio.sleep(seconds)
        return await journeys.load_catalog(data)

    return load_catalog


async def _start(env: Any, cid: str, task_queue: str, seq: int, version: int) -> None:
    client: Client = env.client
    now = await env.get_current_time()
    await client.start_workflow(
        CustomerWorkflow.run,
        CustomerInput(customer_id=cid, catalog_seq=seq, code_version=version),
        id=f"customer-{cid}",
        task_queue=task_queue,
        start_signal=SIGNAL_EVENTS,
        start_signal_args=[
            EventsSignal(
                events=[Event(name="Signed Up", id=f"{cid}-1", timestamp=now)], catalog_seq=seq
            )
        ],
        task_timeout=timedelta(seconds=1),  # heartbeat after 0.8 s of local activity
    )


def _heartbeats(history: WorkflowHistory) -> int:
    """Workflow tasks completed with no command, immediately followed by another task:
    core's heartbeat while a local activity outlived the task."""
    events = list(history.events)
    return sum(
        1
        for i, e in enumerate(events[:-1])
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        and events[i + 1].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
    )


async def test_tasks_split_by_a_backlog_and_a_slow_local_activity_still_replay(
    time_env, db, db_url, task_queue
):
    """Customers whose first task waits in the queue past its timeout, then whose catalog
    takes longer than the task's heartbeat: new runs (no patch calls) and runs of the older
    code version (patched) both replay, and each history shows the split.
    RECORD_HISTORIES=1 keeps the new run's history in tests/histories/."""
    seq = await publish_shipped(db_url)
    client = time_env.client
    ids = {CODE_VERSION: f"split-new-{task_queue}", 0: f"split-old-{task_queue}"}
    for version, cid in ids.items():
        await _start(time_env, cid, task_queue, seq, version)
    # a backlog: the first tasks wait past their 1 s timeout before any worker polls
    await asyncio.sleep(1.5)
    settings = Settings()
    journeys = JourneyActivities(db)
    actions = ActionActivities(db, settings, policy=Policy())
    slow = _slow_catalog(journeys, 2.0)
    worker = build_worker(
        client,
        settings,
        [
            *actions.all(),
            slow,
            journeys.record_transitions,
            StepActivities(actions, journeys).act_then_record,
        ],
        task_queue=task_queue,
        sticky_timeout=timedelta(seconds=1),
    )
    async with worker:
        for cid in ids.values():
            await _wait_for_state(client, cid, "lifecycle", "new")
    for version, cid in ids.items():
        history = await (await customers.handle(client, cid)).fetch_history()
        assert _heartbeats(history) >= 1, f"no task heartbeat in {cid}'s history"
        failure = await _plain(history, sandbox_runner())
        assert failure is None, f"code version {version}: {failure}"
        if version == CODE_VERSION and os.environ.get("RECORD_HISTORIES"):
            (HISTORIES / "signup_split_by_slow_catalog_v6.json").write_text(history.to_json())
        markers = [
            e.marker_recorded_event_attributes.marker_name
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        ]
        if version == CODE_VERSION:
            assert "core_patch" not in markers  # new runs cost no patch marker
        else:
            assert "core_patch" in markers


async def _wait_for_state(client: Client, cid: str, journey: str, state: str) -> None:
    async def reached() -> bool:
        try:
            st = await customers.state(client, cid)
        except Exception:
            return False
        run = st.runs.get(journey)
        return run is not None and run.state == state

    deadline = asyncio.get_running_loop().time() + 60
    while not await reached():
        assert asyncio.get_running_loop().time() < deadline, f"{cid} never reached {state}"
        await asyncio.sleep(0.1)


async def test_payload_contexts_are_asked_of_the_instance_inside_the_sandbox(monkeypatch):
    """The installed SDK still has the shape the worker's shortcut relies on: a sandboxed
    run's serialization contexts come from the workflow instance inside the sandbox, not
    through the sandbox's per-question source compile (a silent fallback would cost ~20% of
    a task's CPU, see orchestration.split_repair._context_source), and replay still passes."""
    from orchestration import split_repair

    sources: list[str] = []
    real = split_repair._context_source

    def spy(inner: Any) -> Any:
        answer = real(inner)
        sources.append(type(answer).__name__)
        return answer

    monkeypatch.setattr(split_repair, "_context_source", spy)
    history = _history(HISTORIES / "catalog_with_the_start_v6.json")
    assert await _plain(history, repair_runner()) is None
    # the sandbox's check of the workflow class makes an instance too
    assert sources and set(sources) == {"_WorkflowInstanceImpl"}, sources

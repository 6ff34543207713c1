"""Replay customers' histories with the current code, including histories whose workflow
tasks a loaded worker split in a way that plain replay cannot follow.

The split: under a backlog, sdk-core may complete a workflow task with a local activity's
result marker while the workflow code is still handling that result (the task's heartbeat
raced the activation); the code's commands then land in the *next* task. Replay delivers the
result inside the earlier task, so code that calls ``workflow.patched`` right after it gets
False (the marker is only announced a task later) and fails with TMPRL1100 "Non-deprecated
patch marker encountered". A customer recorded so is stuck after a worker restart.

Runs started at ``workflows.io.CODE_VERSION`` 4 or later never call ``patched`` and do not
depend on where tasks split. For older runs, ``SplitRepair`` (mixed into the workflow runner)
replays such a history the way it was recorded: it holds the local activity's result back to
the first activation of the next task. The split is read from the history
(``split_points``), and the repair is used only after a plain replay failed with a
nondeterminism error: the worker fetches the history when core evicts a run for
nondeterminism, so the next attempt of that task replays repaired; ``replay_history`` does
the same with the history in hand.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter, DefaultFailureConverter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError
from temporalio.worker import Replayer, WorkflowRunner

from orchestration.split_repair import SplitRepair, repair_runner, split_points

__all__ = [
    "ReplayFailure",
    "ReplayReport",
    "SplitRepair",
    "readable",
    "repair_runner",
    "replay_all",
    "replay_history",
    "split_points",
]
FETCH_AHEAD = 16  # histories fetched concurrently while earlier ones replay


@dataclass(frozen=True)
class ReplayFailure:
    """A history the current code cannot replay: a customer who would be stuck."""

    workflow_id: str
    run_id: str
    reason: str


@dataclass(frozen=True)
class ReplayReport:
    """What ``replay_all`` found: how many histories it replayed, and which failed; and
    their size as stored (events, serialised bytes: what the benchmarks print per run)."""

    replayed: int
    failures: list[ReplayFailure]
    events: int = 0
    stored_bytes: int = 0


async def replay_history(
    history: WorkflowHistory,
    *,
    workflows: Sequence[type],
    data_converter: DataConverter,
    sandboxed: bool = True,
) -> str | None:
    """Replay one history with the current code; the failure's text, or None. A history
    whose tasks were split (``split_points``) is replayed again, repaired, as the worker
    would after its first failure."""
    failure = await _replay(history, workflows, repair_runner(sandboxed=sandboxed), data_converter)
    if failure is None:
        return None
    points = split_points(history)
    if not points:
        return failure
    repaired = repair_runner(sandboxed=sandboxed)
    repaired.plan(None, points)
    return await _replay(history, workflows, repaired, data_converter)


async def _replay(
    history: WorkflowHistory,
    workflows: Sequence[type],
    runner: WorkflowRunner,
    data_converter: DataConverter,
) -> str | None:
    replayer = Replayer(
        workflows=list(workflows), data_converter=readable(data_converter), workflow_runner=runner
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    return None if result.replay_failure is None else str(result.replay_failure)


async def replay_all(
    client: Client, query: str | None = None, limit: int | None = None
) -> ReplayReport:
    """Replay every workflow run ``query`` lists (a Temporal visibility query; None: all of
    the namespace), at most ``limit`` of them, with the current code, the worker's sandbox
    (with the repair of split histories, as the worker replays them) and the client's data
    converter; report how many were replayed and the runs that failed. A history that
    cannot be fetched counts as a failure too: an unchecked customer is not a passed one."""
    from workflows.customer import CustomerWorkflow
    from workflows.segments import SegmentRefreshWorkflow

    # the workflows worker.build_worker registers: every type a live history may hold
    workflows: list[type] = [CustomerWorkflow, SegmentRefreshWorkflow]
    replayer = Replayer(
        workflows=workflows,
        namespace=client.namespace,
        data_converter=readable(client.data_converter),
        workflow_runner=repair_runner(),
        runtime=_quiet_runtime(),
    )
    failures: list[ReplayFailure] = []
    replayed = events = stored = 0
    histories = _histories(client, query, limit, failures)
    async with replayer.workflow_replay_iterator(histories) as results:
        async for result in results:
            replayed += 1
            history = result.history
            events += len(history.events)
            stored += sum(event.ByteSize() for event in history.events)
            if result.replay_failure is None:
                continue
            reason: str | None = _reason(result.replay_failure)
            if split_points(history):  # the worker would replay it repaired
                reason = await replay_history(
                    history, workflows=workflows, data_converter=client.data_converter
                )
                reason = None if reason is None else _reason(RuntimeError(reason))
            if reason is not None:
                failures.append(ReplayFailure(history.workflow_id, _run_id(history), reason))
    return ReplayReport(replayed, failures, events=events, stored_bytes=stored)


async def _histories(
    client: Client,
    query: str | None,
    limit: int | None,
    failures: list[ReplayFailure],
) -> AsyncIterator[WorkflowHistory]:
    """The listed runs' histories, in listing order, fetched ``FETCH_AHEAD`` at a time."""

    async def fetch(wid: str, rid: str) -> WorkflowHistory | ReplayFailure:
        try:
            return await client.get_workflow_handle(wid, run_id=rid).fetch_history()
        except RPCError as exc:
            return ReplayFailure(wid, rid, f"could not fetch the history: {exc}")

    pending: list[asyncio.Task[WorkflowHistory | ReplayFailure]] = []

    async def drain(keep: int) -> AsyncIterator[WorkflowHistory]:
        while len(pending) > keep:
            got = await pending.pop(0)
            if isinstance(got, ReplayFailure):
                failures.append(got)
            else:
                yield got

    try:
        async for execution in client.list_workflows(query, limit=limit):
            # a customer that continued as new lists each run: each replays on its own
            pending.append(asyncio.create_task(fetch(execution.id, execution.run_id or "")))
            async for history in drain(FETCH_AHEAD):
                yield history
        async for history in drain(0):
            yield history
    finally:
        for task in pending:
            task.cancel()


def readable(converter: DataConverter) -> DataConverter:
    """``converter`` as replay needs it: payloads decoded as the worker does, but the
    workflow's own failures left in clear, so a failure's reason can be read (nothing of a
    replay is sent to Temporal)."""
    return dataclasses.replace(converter, failure_converter_class=DefaultFailureConverter)


@functools.cache
def _quiet_runtime() -> Runtime:
    """A runtime whose core logs only errors: it would warn "Failing workflow task" for
    each failure, which replay_all returns anyway."""
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        )
    )


def _run_id(history: WorkflowHistory) -> str:
    first = history.events[0] if history.events else None
    if first is None or not first.HasField("workflow_execution_started_event_attributes"):
        return ""
    return first.workflow_execution_started_event_attributes.original_execution_run_id


_CORE_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')
MAX_REASON = 500


def _reason(exc: BaseException) -> str:
    """The SDK's sentence: the core's activation failures come as a Rust debug dump with a
    stack trace, whose ``message`` is the part a person needs."""
    text = str(exc).strip() or type(exc).__name__
    core = _CORE_MESSAGE.search(text)
    if core:
        text = core.group(1).replace('\\"', '"')
    return text.splitlines()[0][:MAX_REASON]

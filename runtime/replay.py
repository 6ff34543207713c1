"""Replaying live workflow histories with the code at hand: the check to run before a new
worker is deployed (``journeys replay``) and after every benchmark's load.

A history replays when the current workflow code, run again from the first event, issues
the same commands the recorded run did. A failure (``[TMPRL1100] Nondeterminism error``,
a missing patch marker, a sandbox refusal) means customers in flight would be stuck on the
new code: their workflow task would fail forever."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from temporalio.client import Client, WorkflowHistory
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError
from temporalio.worker import Replayer

from workflows.customer import CustomerWorkflow
from workflows.segments import SegmentRefreshWorkflow

# the workflows worker.build_worker registers: every type a live history may hold
WORKFLOWS: list[type] = [CustomerWorkflow, SegmentRefreshWorkflow]
FETCH_AHEAD = 16  # histories fetched concurrently while earlier ones replay


@dataclass(frozen=True)
class ReplayFailure:
    """One workflow run that did not replay, and why (the SDK's error, first line)."""

    workflow_id: str
    run_id: str
    reason: str


async def replay_all(
    client: Client, query: str | None = None, limit: int | None = None
) -> list[ReplayFailure]:
    """Replay every workflow run ``query`` lists (a Temporal visibility query; None: all of
    the namespace), at most ``limit`` of them, with the current code, the worker's sandbox
    and the client's data converter; return the runs that failed. A history that cannot be
    fetched counts as a failure too: an unchecked customer is not a passed one."""
    from worker import sandbox_runner  # the worker's own sandbox: replay what it runs

    replayer = Replayer(
        workflows=WORKFLOWS,
        namespace=client.namespace,
        data_converter=client.data_converter,
        workflow_runner=sandbox_runner(),
        runtime=_quiet_runtime(),
    )
    failures: list[ReplayFailure] = []
    histories = _histories(client, query, limit, failures)
    async with replayer.workflow_replay_iterator(histories) as results:
        async for result in results:
            if result.replay_failure is not None:
                history = result.history
                failures.append(
                    ReplayFailure(
                        history.workflow_id, _run_id(history), _reason(result.replay_failure)
                    )
                )
    return failures


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

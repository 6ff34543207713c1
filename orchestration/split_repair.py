"""Replaying histories whose workflow tasks a loaded worker split after a local activity,
the way they were recorded (see ``orchestration.replay`` for why and when)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.bridge.proto.workflow_activation import RemoveFromCache, WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import (
    UnsandboxedWorkflowRunner,
    WorkflowInstance,
    WorkflowInstanceDetails,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from orchestration._retention import detached, install
from orchestration.temporal import sandbox_restrictions

log = logging.getLogger(__name__)

# (event id of the workflow task started event, local activity seq)
SplitPoint = tuple[int, int]
_LA_MARKER = "core_local_activity"
_MAX_PLANS = 10_000


def split_points(history: WorkflowHistory) -> frozenset[SplitPoint]:
    """Where a task was completed with only local activity markers and the next task was
    created at once with no event in between: nothing the workflow waited for arrived, so
    the server made that task only because core asked for it while the workflow was still
    handling those results."""
    events = list(history.events)
    points: set[SplitPoint] = set()
    for i, event in enumerate(events):
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            continue
        started = event.workflow_task_completed_event_attributes.started_event_id
        seqs: list[int] = []
        j = i + 1
        while j < len(events) and _is_la_marker(events[j]):
            seqs.append(_la_seq(events[j]))
            j += 1
        forced = (
            j + 1 < len(events)
            and events[j].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
            and events[j + 1].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
        )
        if seqs and forced:
            points.update((started, seq) for seq in seqs)
    return frozenset(points)


def _is_la_marker(event: Any) -> bool:
    return bool(
        event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == _LA_MARKER
    )


def _la_seq(event: Any) -> int:
    data = event.marker_recorded_event_attributes.details["data"].payloads[0].data
    return int(json.loads(data)["seq"])


class SplitRepair:
    """Mixed into a workflow runner (the sandbox, or none): replays split histories as they
    were recorded. Without a plan for a run it only passes activations through."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plans: OrderedDict[str, frozenset[SplitPoint]] = OrderedDict()
        self._everyone: frozenset[SplitPoint] = frozenset()
        self._learn: Callable[[str, str], None] | None = None
        self._asked: set[str] = set()

    def plan(self, run_id: str | None, points: frozenset[SplitPoint]) -> None:
        """Repair run ``run_id`` (every run this runner creates, for ``None``) at ``points``."""
        if run_id is None:
            self._everyone = points
            return
        self._plans[run_id] = points
        while len(self._plans) > _MAX_PLANS:
            self._plans.popitem(last=False)

    def on_nondeterminism(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(workflow_id, run_id)`` when core evicts a run for nondeterminism
        (from the worker's activation thread)."""
        self._learn = callback

    def learn_from(self, client: Client, loop: asyncio.AbstractEventLoop) -> None:
        """In a live worker: when core evicts a run for nondeterminism, fetch its history
        and, if it was split, replay the next attempt of its task repaired."""

        async def learn(workflow_id: str, run_id: str) -> None:
            try:
                handle = client.get_workflow_handle(workflow_id, run_id=run_id)
                points = split_points(await handle.fetch_history())
            except Exception as exc:
                log.warning("could not read the history of %s to repair it: %s", run_id, exc)
                self._asked.discard(run_id)
                return
            if points:
                log.warning(
                    "workflow run %s was recorded with split workflow tasks; "
                    "replaying it as recorded",
                    run_id,
                )
                self.plan(run_id, points)

        def on_nondeterminism(workflow_id: str, run_id: str) -> None:
            if run_id in self._asked or run_id in self._plans:
                return
            self._asked.add(run_id)
            if len(self._asked) > _MAX_PLANS:
                self._asked.clear()
            asyncio.run_coroutine_threadsafe(learn(workflow_id, run_id), loop)

        self.on_nondeterminism(on_nondeterminism)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        info = det.info
        points = self._plans.get(info.run_id, self._everyone)
        learn = self._learn

        def evicted_for_nondeterminism() -> None:
            if learn is not None:
                learn(info.workflow_id, info.run_id)

        inner: WorkflowInstance = super().create_instance(detached(det))  # type: ignore[misc]
        return _RepairingInstance(inner, points, evicted_for_nondeterminism)


class SandboxedRepairRunner(SplitRepair, SandboxedWorkflowRunner):
    """The workflow sandbox, replaying split histories as recorded."""


class UnsandboxedRepairRunner(SplitRepair, UnsandboxedWorkflowRunner):
    """No sandbox (``JOURNEYS_WORKFLOW_SANDBOX=false``), replaying split histories as recorded."""


RepairRunner = SandboxedRepairRunner | UnsandboxedRepairRunner


def repair_runner(*, sandboxed: bool = True) -> RepairRunner:
    """The runner a worker and ``replay`` use: the project's sandbox (``sandbox_runner``)
    or none, with the repair of split histories; a cached workflow keeps none of its
    first activation (``orchestration._retention``)."""
    install()
    if not sandboxed:
        return UnsandboxedRepairRunner()
    return SandboxedRepairRunner(restrictions=sandbox_restrictions())


class _RepairingInstance(WorkflowInstance):
    def __init__(
        self,
        inner: WorkflowInstance,
        points: frozenset[SplitPoint],
        on_nondeterminism: Callable[[], None],
    ) -> None:
        self._inner = inner
        self._points = points
        self._on_nondeterminism = on_nondeterminism
        self._held: list[Any] = []
        self._held_in = 0  # the task whose activation the held results came in
        self._contexts = _context_source(inner)

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        for job in act.jobs:
            if (
                job.HasField("remove_from_cache")
                and job.remove_from_cache.reason == RemoveFromCache.NONDETERMINISM
            ):
                self._on_nondeterminism()
        if self._points or self._held:
            self._reorder(act)
        return self._inner.activate(act)

    def _reorder(self, act: WorkflowActivation) -> None:
        jobs = list(act.jobs)
        release = bool(self._held) and act.history_length != self._held_in
        keep = list(self._held) + jobs if release else jobs
        if release:
            self._held = []
        if act.is_replaying:
            hold = [
                j
                for j in keep
                if j.HasField("resolve_activity")
                and (act.history_length, j.resolve_activity.seq) in self._points
            ]
            if hold:
                self._held += hold
                self._held_in = act.history_length
                keep = [j for j in keep if all(j is not h for h in hold)]
        if release or self._held:
            del act.jobs[:]
            act.jobs.extend(keep)

    def get_serialization_context(self, command_info: Any) -> Any:
        return self._contexts.get_serialization_context(command_info)

    def get_external_store_context(self, command_info: Any) -> Any:
        return self._contexts.get_external_store_context(command_info)

    def get_info(self) -> Any:
        return self._inner.get_info()

    def get_thread_id(self) -> int | None:
        return self._inner.get_thread_id()


def _context_source(inner: WorkflowInstance) -> Any:
    """What answers the SDK's questions for a payload's serialization and storage context:
    the workflow instance inside the sandbox, asked directly. The SDK asks once per payload
    it encodes or decodes, and the sandbox forwards each question by compiling and running
    a source string under its import hooks. Asked directly, a new customer's first task
    costs 10.4 ms of worker CPU instead of 13.2, a 19-event history with two journeys
    16.8 instead of 23.6 (medians of 8 alternating rounds of 200 replays, 2026-12-03;
    ``python -m bench.replay_bench`` gives the current figures). The answer only reads the
    run's info and its pending commands, so nothing the sandbox guards is reached. An
    unsandboxed instance, or a sandbox that no longer has that shape, is asked as before."""
    scope = getattr(inner, "globals_and_locals", None)
    in_sandbox = scope.get("__temporal_in_sandbox") if isinstance(scope, dict) else None
    instance = getattr(in_sandbox, "instance", None)
    asks = ("get_serialization_context", "get_external_store_context")
    if instance is not None and all(callable(getattr(instance, a, None)) for a in asks):
        return instance
    return inner

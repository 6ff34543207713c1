"""The worker's parts: the activities it registers and the Temporal ``Worker`` it polls
with. ``worker.py`` runs them against the real cluster; ``journeys test --temporal``
(``orchestration.temporal_tests``) and the tests' worker build the same ones, so what a
test runs cannot drift from what customers run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.worker import Worker

from activities.actions import ActionActivities
from activities.journeys import JourneyActivities
from activities.segments import SegmentActivities
from activities.steps import StepActivities
from engine.segments import Segments
from orchestration.split_repair import repair_runner
from settings import Settings
from workflows.customer import CustomerWorkflow
from workflows.segments import SegmentRefreshWorkflow

__all__ = ["all_activities", "build_worker"]


def build_worker(
    client: Client,
    settings: Settings,
    activities: list[Callable[..., Any]],
    *,
    task_queue: str | None = None,
    sticky_timeout: timedelta | None = None,
) -> Worker:
    """The worker for customer workflows. A long sticky timeout keeps throughput under a
    backlog (docs/operations.md); tests that restart workers pass a short one. Runs whose
    recorded workflow tasks were split under load replay as recorded
    (``orchestration.replay``)."""
    runner = repair_runner(sandboxed=settings.workflow_sandbox)
    runner.learn_from(client, asyncio.get_running_loop())
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[CustomerWorkflow, SegmentRefreshWorkflow],
        activities=activities,
        workflow_runner=runner,
        max_cached_workflows=settings.max_cached_workflows,
        max_concurrent_workflow_task_polls=20,
        sticky_queue_schedule_to_start_timeout=sticky_timeout
        or timedelta(seconds=settings.sticky_timeout_seconds),
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
    )


def all_activities(
    db: AsyncConnectionPool[Any], actions: ActionActivities, segments: Segments
) -> list[Callable[..., Any]]:
    """Every activity the workflows call, bound to ``db``: what the worker registers, and
    what the tests' worker registers too, so the two lists cannot drift apart."""
    journeys = JourneyActivities(db, policy=actions.messenger.policy)
    tiering = SegmentActivities(db, segments)
    return [
        *actions.all(),
        journeys.load_catalog,
        journeys.record_transitions,
        StepActivities(actions, journeys).act_then_record,
        tiering.refresh_segments,
        tiering.notify_segment_changes,
    ]

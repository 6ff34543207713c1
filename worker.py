"""The Journeys worker: runs customer workflows and their activities.

Start it with ``python worker.py`` (``make run`` does). It applies the database schema,
publishes the journeys in ``rules/`` (a changed journey becomes a new version; customers in
flight keep theirs), then polls Temporal. It never exits on a transient outage: when
Temporal is down or restarts, it reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.actions import ActionActivities
from activities.journeys import JourneyActivities
from activities.segments import SegmentActivities
from engine import JourneyValidationError, load_rules
from engine.policy import load_policy
from engine.segments import load_segments
from runtime.schedules import ensure_segment_schedule
from runtime.temporal import connect_with_retry
from settings import Settings, get_settings
from store import catalog as catalog_store
from store.db import migrate, pool
from workflows.customer import CustomerWorkflow
from workflows.segments import SegmentRefreshWorkflow

log = logging.getLogger("journeys.worker")
PASSTHROUGH = ("engine", "workflows", "pydantic", "pydantic_core", "cel", "annotated_types")


def sandbox_runner() -> SandboxedWorkflowRunner:
    """The workflow sandbox, with the pure engine, the workflow package and their libraries
    passed through: loaded once per worker instead of once per customer, which cut worker
    CPU per event by a fifth and memory per cached customer by a fifth (``make bench``).
    It is safe because none of them keeps mutable module state; the sandbox still guards
    what workflow code may call, and the replay tests guard determinism."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
    )


def build_worker(
    client: Client,
    settings: Settings,
    activities: list[Callable[..., Any]],
    *,
    task_queue: str | None = None,
    sticky_timeout: timedelta | None = None,
) -> Worker:
    """The worker for customer workflows. A long sticky timeout keeps throughput under a
    backlog (shared/TEMPORAL-PERF.md); tests that restart workers pass a short one."""
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[CustomerWorkflow, SegmentRefreshWorkflow],
        activities=activities,
        workflow_runner=sandbox_runner()
        if settings.workflow_sandbox
        else UnsandboxedWorkflowRunner(),
        max_cached_workflows=settings.max_cached_workflows,
        max_concurrent_workflow_task_polls=20,
        sticky_queue_schedule_to_start_timeout=sticky_timeout
        or timedelta(seconds=settings.sticky_timeout_seconds),
    )


async def prepare_database(settings: Settings) -> int:
    """Migrate the schema and publish ``rules/``; return the current catalog seq."""
    if not settings.database_url:
        raise SystemExit(
            "DATABASE_URL is not set: start the stack with 'make run', or set "
            "DATABASE_URL=postgresql://user:pass@host/db"
        )
    journeys = load_rules(settings.rules_dir, settings.templates_dir)
    load_policy(settings.rules_dir)
    load_segments(settings.rules_dir)
    await migrate(settings.database_url)
    import psycopg

    async with await psycopg.AsyncConnection.connect(
        settings.database_url, autocommit=True
    ) as conn:
        seq = await catalog_store.publish(conn, journeys, reason="worker start")
    log.info("published %d journey(s) as catalog %d", len(journeys), seq)
    return seq


async def run(settings: Settings, stop: asyncio.Event) -> None:
    await prepare_database(settings)
    assert settings.database_url
    db = pool(settings.database_url)
    await db.open()
    try:
        policy = load_policy(settings.rules_dir)  # checked before anything runs
        activities = ActionActivities(db, settings, policy=policy).all()
        journeys = JourneyActivities(db)
        activities += [journeys.load_catalog, journeys.record_transitions]
        tiering = SegmentActivities(db, load_segments(settings.rules_dir))
        activities += [tiering.refresh_segments, tiering.notify_segment_changes]
        delay = 1.0
        while not stop.is_set():
            client = await connect_with_retry(settings)
            await _schedule(client, settings)
            worker = build_worker(client, settings, activities)
            log.info(
                "worker polling task queue %s on %s", settings.task_queue, settings.temporal_address
            )
            try:
                async with worker:
                    await stop.wait()
            except Exception as exc:  # the SDK gives up on a long outage: start over
                log.warning("worker stopped (%s); reconnecting in %.0fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
    finally:
        await db.close()


async def _schedule(client: Client, settings: Settings) -> None:
    """The segment refresh schedule; a failure here must not keep the worker from work."""
    try:
        cron = load_segments(settings.rules_dir).schedule
        await ensure_segment_schedule(client, task_queue=settings.task_queue, cron=cron)
    except Exception as exc:
        log.warning("could not create or update the segment refresh schedule: %s", exc)


def main() -> None:
    from runtime.logs import configure

    configure()
    settings = get_settings()
    stop = asyncio.Event()

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    try:
        asyncio.run(runner())
    except JourneyValidationError as exc:
        print(f"journeys in {settings.rules_dir} have problems:\n{exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()

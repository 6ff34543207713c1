"""The Journeys worker: runs customer workflows and their activities.

Start it with ``python worker.py`` (``make run`` does). It applies the database schema,
publishes the journeys in ``rules/`` (a changed journey becomes a new version; customers in
flight keep theirs), then polls Temporal. It never exits on a transient outage: when
PostgreSQL or Temporal is down at start or restarts later, it retries with backoff.
SIGTERM (or Ctrl-C) stops it gracefully: it stops polling and lets in-flight activities
finish (``JOURNEYS_GRACEFUL_SHUTDOWN_SECONDS``), so no send is cut off half-recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

import channels  # noqa: F401  registers the channels rules are validated against
from activities.actions import ActionActivities
from activities.assignment import ManagerNotes
from activities.journeys import JourneyActivities
from activities.segments import SegmentActivities
from engine import JourneyValidationError, load_rules
from engine.policy import load_policy
from engine.segments import load_segments
from orchestration.schedules import ensure_segment_schedule
from orchestration.split_repair import repair_runner
from orchestration.temporal import connect_with_retry, sandbox_runner
from settings import Settings, check_settings, get_settings
from store import catalog as catalog_store
from store.db import migrate, pool
from workflows.customer import CustomerWorkflow
from workflows.segments import SegmentRefreshWorkflow

log = logging.getLogger("journeys.worker")
__all__ = ["build_worker", "main", "prepare_database", "run", "sandbox_runner"]


def build_worker(
    client: Client,
    settings: Settings,
    activities: list[Callable[..., Any]],
    *,
    task_queue: str | None = None,
    sticky_timeout: timedelta | None = None,
) -> Worker:
    """The worker for customer workflows. A long sticky timeout keeps throughput under a
    backlog (shared/TEMPORAL-PERF.md); tests that restart workers pass a short one. Runs
    whose recorded workflow tasks were split under load replay as recorded
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


async def prepare_with_retry(settings: Settings, stop: asyncio.Event) -> int | None:
    """:func:`prepare_database`, retried with backoff (1 s doubling to 30 s) while
    PostgreSQL is unreachable, as the Temporal connection is; None if stopped meanwhile.
    Bad rules or settings are not retried: they fail at once."""
    import psycopg

    delay = 1.0
    while not stop.is_set():
        try:
            return await prepare_database(settings)
        except (psycopg.OperationalError, OSError) as exc:
            log.warning(
                "PostgreSQL is not reachable (%s); retrying in %.0fs",
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                delay,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, 30.0)
    return None


async def run(settings: Settings, stop: asyncio.Event) -> None:
    if await prepare_with_retry(settings, stop) is None:
        return
    assert settings.database_url
    db = pool(settings.database_url)
    await db.open()
    notes: asyncio.Task[None] | None = None
    try:
        policy = load_policy(settings.rules_dir)  # checked before anything runs
        actions = ActionActivities(db, settings, policy=policy)
        activities = actions.all()
        # customers assigned from a pool's queue: their managers' notes (activities/assignment)
        notes = asyncio.create_task(ManagerNotes(db, actions.messenger).run(stop))
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
        if notes is not None:
            notes.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await notes
        await db.close()


async def _schedule(client: Client, settings: Settings) -> None:
    """The segment refresh schedule; a failure here must not keep the worker from work."""
    try:
        cron = load_segments(settings.rules_dir).schedule
        await ensure_segment_schedule(client, task_queue=settings.task_queue, cron=cron)
    except Exception as exc:
        log.warning("could not create or update the segment refresh schedule: %s", exc)


def main() -> None:
    from orchestration.logs import configure

    configure()
    settings = get_settings()
    check_settings(settings)  # before anything signs a link with a public secret
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

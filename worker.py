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

from temporalio.client import Client

import channels  # noqa: F401  registers the channels rules are validated against
from activities.actions import ActionActivities
from activities.assignment import ManagerNotes
from engine import Journey, JourneyValidationError
from engine.rule_files import load_rule_files
from orchestration.heap import report_full_collections, settle_heap
from orchestration.schedules import ensure_segment_schedule
from orchestration.temporal import connect_with_retry, sandbox_runner
from orchestration.workers import all_activities, build_worker
from settings import ConfigurationError, Settings, check_settings, get_settings
from store.db import pool, prepare_database

log = logging.getLogger("journeys.worker")
__all__ = ["all_activities", "build_worker", "main", "run", "sandbox_runner"]


async def prepare_with_retry(
    database_url: str, journeys: list[Journey], stop: asyncio.Event
) -> int | None:
    """:func:`store.db.prepare_database`, retried with backoff (1 s doubling to 30 s) while
    PostgreSQL is unreachable, as the Temporal connection is; None if stopped meanwhile.
    Bad rules or settings are not retried: they fail at once, before this is called."""
    import psycopg

    delay = 1.0
    while not stop.is_set():
        try:
            return await prepare_database(database_url, journeys)
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
    """Prepare the database, then poll Temporal until ``stop`` is set."""
    database_url = settings.require_database_url()
    # parsed once, here, and passed down: checked before anything runs
    rules = load_rule_files(settings.rules_dir, settings.templates_dir)
    if await prepare_with_retry(database_url, rules.journeys, stop) is None:
        return
    db = pool(database_url)
    await db.open()
    notes: asyncio.Task[None] | None = None
    pauses: asyncio.Task[None] | None = None
    try:
        actions = ActionActivities(db, settings, policy=rules.policy)
        activities = all_activities(db, actions, rules.segments)
        # customers assigned from a pool's queue: their managers' notes (activities/assignment)
        notes = asyncio.create_task(ManagerNotes(db, actions.messenger).run(stop))
        pauses = asyncio.create_task(report_full_collections(stop))
        settle_heap(settings.gc_young_threshold)  # once: a reconnect keeps the same heap
        delay = 1.0
        while not stop.is_set():
            client = await connect_with_retry(settings)
            await _schedule(client, settings, rules.segments.schedule)
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
        for task in (notes, pauses):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await db.close()


async def _schedule(client: Client, settings: Settings, cron: str) -> None:
    """The segment refresh schedule; a failure here must not keep the worker from work."""
    try:
        await ensure_segment_schedule(client, task_queue=settings.task_queue, cron=cron)
    except Exception as exc:
        log.warning("could not create or update the segment refresh schedule: %s", exc)


def main() -> None:
    from orchestration.logs import configure

    configure()
    settings = get_settings()
    try:
        check_settings(settings)  # before anything signs a link with a public secret
    except ConfigurationError as exc:
        raise SystemExit(str(exc)) from None
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
    except ConfigurationError as exc:
        raise SystemExit(str(exc)) from None


if __name__ == "__main__":
    main()

"""Writing down what an activity did, retried in place while PostgreSQL recovers.

Once a provider has accepted a message, failing the attempt because its record could not
be written would make Temporal's retry send it again (a PostgreSQL restart ~150 ms after
the relay's answer did exactly that). So the record is retried here, with backoff, for as
long as the attempt may still run; the delivery itself is never retried."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import psycopg
from psycopg_pool import PoolTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")
# a lost connection, a server restarting, a pool that cannot connect yet
RETRYABLE = (psycopg.OperationalError, PoolTimeout, OSError)
FIRST_DELAY, MAX_DELAY = 0.1, 2.0
OUTSIDE_ACTIVITY_SECONDS = 30.0  # tests of the messenger alone
MARGIN_SECONDS = 0.5  # left to report the result to Temporal


def attempt_deadline() -> float:
    """Event-loop time at which this activity attempt must have finished: its start plus
    its start-to-close timeout, less a margin to report the result."""
    from temporalio import activity

    loop = asyncio.get_running_loop()
    try:
        info = activity.info()
    except RuntimeError:
        return loop.time() + OUTSIDE_ACTIVITY_SECONDS
    timeout = info.start_to_close_timeout
    if timeout is None:
        return loop.time() + OUTSIDE_ACTIVITY_SECONDS
    elapsed = (datetime.now(UTC) - info.started_time).total_seconds()
    return loop.time() + timeout.total_seconds() - max(elapsed, 0.0) - MARGIN_SECONDS


async def with_retries(
    write: Callable[[], Awaitable[T]], *, what: str, deadline: float | None = None
) -> T:
    """``write()``, retried with backoff (0.1 s doubling to 2 s) on connection errors
    until ``deadline`` (event-loop time; default: this attempt's); then the error is
    raised. Other errors are raised at once."""
    loop = asyncio.get_running_loop()
    until = attempt_deadline() if deadline is None else deadline
    delay = FIRST_DELAY
    while True:
        try:
            return await write()
        except RETRYABLE as exc:
            if loop.time() + delay > until:
                raise
            log.warning("%s failed (%s); retrying in %.1fs", what, type(exc).__name__, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY)


async def finish_despite_cancel(work: Awaitable[T]) -> T:
    """Run ``work`` to its end even if this task is cancelled meanwhile (a worker stopping,
    Temporal cancelling the attempt): a message handed to its provider must be recorded,
    or a retry elsewhere sends it again. The cancellation is absorbed: the attempt reports
    what happened instead, which is what a retry would have found anyway."""
    task = asyncio.ensure_future(work)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            log.info("cancelled while a message was with its provider: finishing it first")
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()

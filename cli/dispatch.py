"""``journeys dispatch``: deliver the outbox to the customers' workflows in a process of
its own, beside (or instead of) the API processes' dispatchers (``JOURNEYS_DISPATCHER``).

Every dispatcher running against the database delivers a share of the outbox's 64
partitions, dealt by their member slots and rebalanced within about a second when one
starts or stops (``ingest._ownership``); a customer is delivered by one dispatcher at a
time, in event order. It runs until SIGTERM or Ctrl-C, then finishes its round and lets
its partitions go."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from typing import TYPE_CHECKING

from .commands import Command, UserError

if TYPE_CHECKING:
    from temporalio.client import Client

    from ingest.dispatcher import Delivery

log = logging.getLogger("ingest.dispatch")
REPORT_SECONDS = 10.0


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--concurrency", type=int, default=64, help="signals in flight at once (default 64)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=2000,
        help="customers taken per delivery round (default 2000)",
    )


def dispatch(args: argparse.Namespace) -> int:
    for name in ("concurrency", "batch_size"):
        value = getattr(args, name)
        if not 1 <= value <= 10_000:
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} {value} is out of range; give a number from 1 to 10000")
    return asyncio.run(_dispatch(args.concurrency, args.batch_size))


class _Report:
    """What was delivered, logged every ``REPORT_SECONDS`` when something was."""

    def __init__(self) -> None:
        self.events = self.signals = self.dead = 0
        self.at = time.monotonic()

    def add(self, done: Delivery, _took: float) -> None:
        self.events += done.events
        self.signals += done.signals
        self.dead += done.dead

    def flush(self, held: int, partitions: int, members: int) -> None:
        now = time.monotonic()
        if now - self.at < REPORT_SECONDS:
            return
        if self.events or self.dead:
            log.info(
                "delivered %d events in %d signals (%d dead letters) in %.0f s; "
                "%d of %d partitions held, %d dispatcher(s) running",
                self.events,
                self.signals,
                self.dead,
                now - self.at,
                held,
                partitions,
                members,
            )
        self.events = self.signals = self.dead = 0
        self.at = now


async def _dispatch(concurrency: int, batch_size: int) -> int:
    from ingest.dispatcher import Dispatcher, policy_zones
    from orchestration.customers import CustomerIds
    from orchestration.logs import configure
    from store.db import pool as make_pool
    from store.outbox import PARTITIONS

    from .live import _connect

    configure()
    settings, temporal, _ = await _connect()  # checks the settings and the schema first
    client: Client = temporal
    logging.getLogger("ingest").setLevel(settings.log_level.upper())
    url = settings.require_database_url()
    pool = make_pool(url, max_size=4)
    await pool.open()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    report = _Report()

    async def the_client() -> Client:
        return client

    dispatcher = Dispatcher(
        pool,
        url,
        the_client,
        task_queue=settings.task_queue,
        batch_size=batch_size,
        concurrency=concurrency,
        on_delivered=report.add,
        ids=CustomerIds(settings.id_secret),
        time_zones=policy_zones(settings.rules_dir),
    )
    print(
        f"dispatching the outbox to task queue {settings.task_queue!r} "
        f"(concurrency {concurrency}); SIGTERM or Ctrl-C stops",
        flush=True,
    )
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=1.0)
            own = dispatcher.ownership
            if own is not None:
                report.flush(len(own.held), PARTITIONS, len(own.members))
        await task
    finally:
        await pool.close()
    print("dispatcher stopped", flush=True)
    return 0


DISPATCH: dict[str, Command] = {
    "dispatch": (
        "deliver the outbox to customer workflows (a share of it, beside the others)",
        _args,
        dispatch,
    ),
}

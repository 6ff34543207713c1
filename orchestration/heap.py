"""The garbage collector's settings for the long-running processes (worker, API)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time

log = logging.getLogger("journeys.heap")
__all__ = ["FullCollections", "report_full_collections", "settle_heap"]


def settle_heap(young_threshold: int) -> None:
    """Tune the cyclic garbage collector for a long-lived heap: the worker calls this once
    its activities are built, before it polls; the API once its app is built. Every object alive at
    this point (modules, the rules, the SDK) is frozen: never scanned again. And a young
    collection waits for ``young_threshold`` new container objects instead of Python's
    700: with thousands of customers cached, each full collection scans them all, and at
    the default thresholds one ran every few seconds under load, pausing the event loop
    up to a second (a 2,000-customer load: 13 full collections, 6.2 s of collecting in
    all, the longest full one 1.05 s; with this, 5, 1.6 s and 0.44 s;
    ``docs/operations.md``). Objects freed by their reference count go at once, as
    before; only cycles wait longer. 0 keeps Python's defaults."""
    if young_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)


class FullCollections:
    """How long full collections paused the process, for the worker's log: what an admin
    sees when latency spikes with many customers cached (``JOURNEYS_MAX_CACHED_WORKFLOWS``,
    more workers). A ``gc.callbacks`` hook, so it runs wherever a collection starts, inside
    the workflow sandbox too: it only reads a clock and stores floats."""

    def __init__(self) -> None:
        self._started = 0.0
        self._count = 0
        self._total = 0.0
        self._longest = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        self._count += 1
        self._total += took
        if took > self._longest:
            self._longest = took

    def take(self) -> tuple[int, float, float]:
        """Full collections since the last call: how many, seconds in all, the longest."""
        out = (self._count, self._total, self._longest)
        self._count, self._total, self._longest = 0, 0.0, 0.0
        return out

    def install(self) -> FullCollections:
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        return self

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


async def report_full_collections(
    stop: asyncio.Event, *, every: float = 60.0, over: float = 0.5
) -> None:
    """Every ``every`` seconds until ``stop``, a warning if a full collection paused the
    process for ``over`` seconds or more meanwhile."""
    pauses = FullCollections().install()
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            count, total, longest = pauses.take()
            if count and longest >= over:
                log.warning(
                    "full garbage collections paused this process %d time(s) in the last"
                    " %.0f s, %.2f s in all, the longest %.2f s: each scans every cached"
                    " customer; fewer per worker (JOURNEYS_MAX_CACHED_WORKFLOWS, more"
                    " workers) make them shorter",
                    count,
                    every,
                    total,
                    longest,
                )
    finally:
        pauses.remove()

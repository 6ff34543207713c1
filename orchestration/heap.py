"""The garbage collector's settings for the long-running processes (worker, API)."""

from __future__ import annotations

import gc

__all__ = ["settle_heap"]


def settle_heap(young_threshold: int) -> None:
    """Tune the cyclic garbage collector for a long-lived heap: the worker calls this once
    it is built, before it polls; the API once its app is built. Every object alive at
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

"""Fault injection for the exactly-once tests: kill this worker with SIGKILL at a named
point, once.

``JOURNEYS_FAULT_KILL_AT=NAME`` and ``JOURNEYS_FAULT_MARKER=PATH`` (both set, by tests
only): the first time the worker reaches ``crash_point(NAME)`` it creates PATH and kills
itself, so the worker started after it (same environment) runs through. Unset, a crash
point costs one dictionary lookup.

It reads ``os.environ`` itself, not ``settings.Settings``, on purpose: these variables are
test fault injection, no setting of the product, and a crash point must stay a lookup."""

from __future__ import annotations

import os
import signal
from pathlib import Path


def crash_point(name: str) -> None:
    if os.environ.get("JOURNEYS_FAULT_KILL_AT") != name:
        return
    marker = os.environ.get("JOURNEYS_FAULT_MARKER")
    if not marker:
        return
    try:
        Path(marker).touch(exist_ok=False)
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)

"""Event and identifier names."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")


def normalize_event_name(name: str) -> str:
    """Segment-style names to snake_case: ``Order Completed``, ``order-completed``,
    ``OrderCompleted`` and ``order_completed`` are one event."""
    spaced = _CAMEL.sub("_", name.strip())
    return _NON_WORD.sub("_", spaced).strip("_").lower()


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close choice exists, else an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""

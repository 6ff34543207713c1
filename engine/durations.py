"""Durations as ops write them: ``45s 90m 12h 30d 2w``, combinations like ``1d12h``, or ISO-8601.

Every duration a journey, the policy or the segments file writes is at most
:data:`LONGEST_DAYS` days: a wait is added to a date, and ``before: 1000000d`` or
``after: {4000000d: ...}`` would leave the calendar (past the year 9999) when a customer
reaches it, long after the file was published. A journey test's times may reach twice as
far, so a test can look past the longest wait (``engine.test_files``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SHORT = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_ISO = re.compile(
    r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$",
)
LONGEST_DAYS = 3650  # ten years
LONGEST = LONGEST_DAYS * 86400
HELP = "write a duration like 45s, 90m, 12h, 30d, 2w, 1d12h or ISO-8601 P30D / PT12H"


class DurationTooLong(ValueError):
    """A well-written duration longer than the place it is written allows."""


def too_long(text: str, longest: int = LONGEST) -> str:
    """What is wrong with ``text``, a duration longer than ``longest`` seconds."""
    days = longest // 86400
    return (
        f"duration '{text}' is longer than {days} days; write at most {days}d ({days // 365} years)"
    )


def parse_duration(text: str | int, *, longest: int = LONGEST) -> int:
    """Return the duration in whole seconds; raise ValueError with a fix on bad input
    (:class:`DurationTooLong` when it is longer than ``longest`` seconds)."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ValueError(f"expected a duration, got {type(text).__name__}; {HELP}")
    if isinstance(text, int):
        raise ValueError(f"a bare number {text} has no unit; {HELP}")
    raw = text.strip()
    m = _SHORT.match(raw)
    if m and raw:
        groups = m.groups()
    else:
        m = _ISO.match(raw.upper())
        if not m or raw.upper() in ("P", "PT"):
            raise ValueError(f"'{text}' is not a duration; {HELP}")
        groups = m.groups()
    # a part with more digits than ``longest`` in seconds is longer whatever its unit: no
    # need to build a number of a thousand digits to say so
    if any(g is not None and len(g.lstrip("0")) > len(str(longest)) for g in groups):
        raise DurationTooLong(too_long(raw, longest))
    w, d, h, mi, s = (int(g or 0) for g in groups)
    seconds = w * _UNITS["w"] + d * _UNITS["d"] + h * 3600 + mi * 60 + s
    if seconds <= 0:
        raise ValueError(f"duration '{text}' must be longer than zero; {HELP}")
    if seconds > longest:
        raise DurationTooLong(too_long(raw, longest))
    return seconds


def format_duration(seconds: int) -> str:
    """Shortest readable form, the inverse of :func:`parse_duration` (``1209600`` -> ``2w``)."""
    parts = []
    rest = seconds
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if rest >= size:
            n, rest = divmod(rest, size)
            parts.append(f"{n}{unit}")
    return "".join(parts) or "0s"


def later_by(moment: datetime, seconds: int) -> datetime:
    """``moment`` plus ``seconds``, or the calendar's last moment when that is past the year
    9999: a definition stored before durations were bounded waits "for ever", not fails."""
    try:
        return moment + timedelta(seconds=seconds)
    except OverflowError:
        return datetime.max.replace(tzinfo=moment.tzinfo)

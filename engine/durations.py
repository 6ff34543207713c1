"""Durations as ops write them: ``45s 90m 12h 30d 2w``, combinations like ``1d12h``, or ISO-8601."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SHORT = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_ISO = re.compile(
    r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$",
)
HELP = "write a duration like 45s, 90m, 12h, 30d, 2w, 1d12h or ISO-8601 P30D / PT12H"


def parse_duration(text: str | int) -> int:
    """Return the duration in whole seconds; raise ValueError with a fix on bad input."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ValueError(f"expected a duration, got {type(text).__name__}; {HELP}")
    if isinstance(text, int):
        raise ValueError(f"a bare number {text} has no unit; {HELP}")
    raw = text.strip()
    m = _SHORT.match(raw)
    if m and raw:
        w, d, h, mi, s = (int(g or 0) for g in m.groups())
        seconds = w * _UNITS["w"] + d * _UNITS["d"] + h * 3600 + mi * 60 + s
    else:
        m = _ISO.match(raw.upper())
        if not m or raw.upper() in ("P", "PT"):
            raise ValueError(f"'{text}' is not a duration; {HELP}")
        w, d, h, mi, s = (int(g or 0) for g in m.groups())
        seconds = w * _UNITS["w"] + d * _UNITS["d"] + h * 3600 + mi * 60 + s
    if seconds <= 0:
        raise ValueError(f"duration '{text}' must be longer than zero; {HELP}")
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

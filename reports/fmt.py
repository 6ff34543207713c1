"""How figures read, the same in the text summary and on the page."""

from __future__ import annotations

from datetime import UTC, datetime

NONE = "n/a"  # a rate without a denominator


def percent(rate: float | None) -> str:
    """``0.4286`` -> ``42.9%``."""
    return NONE if rate is None else f"{rate * 100:.1f}%"


def score(value: float | None) -> str:
    """An NPS (-100..100) or an average, one decimal."""
    return NONE if value is None else f"{value:.1f}"


def money(value: float) -> str:
    """``12345.5`` -> ``12,345.50``."""
    return f"{value:,.2f}"


def duration(seconds: float) -> str:
    """The two largest units: ``3d 4h``, ``5h 10m``, ``12m 5s``, ``40s``."""
    total = round(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size or (unit == "s" and not parts):
            parts.append(f"{total // size}{unit}")
            total %= size
    return " ".join(parts[:2])


def when(moment: datetime | None) -> str:
    """A timestamp to the minute, UTC."""
    return "never" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def table(headers: list[str], rows: list[list[str]]) -> str:
    """An aligned plain-text table; the first column is left-aligned, the others right."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]

    def line(cells: list[str]) -> str:
        out = [
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])

"""Inline SVG charts, drawn here so the page needs nothing from outside (no CDN, no
script). Every chart scales to its container (viewBox, width 100%), names itself to
screen readers (role=img, <title>, <desc>) and escapes every text it shows; the page puts
a table with the same numbers next to each one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from itertools import count

# Okabe-Ito: told apart with the common colour-vision deficiencies, dark enough for text
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#555555")
BAR = PALETTE[0]
WIDTH = 420  # narrow, so text stays legible when a phone scales the chart down
_ids = count(1)


def _short(label: str, limit: int = 18) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _open(height: float, title: str, desc: str, kind: str, points: int) -> str:
    n = next(_ids)
    return (
        f'<svg class="chart {kind}" data-points="{points}" viewBox="0 0 {WIDTH} {height:.0f}"'
        f' width="100%" role="img" aria-labelledby="c{n}t c{n}d"'
        ' xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="14">'
        f'<title id="c{n}t">{escape(title)}</title><desc id="c{n}d">{escape(desc)}</desc>'
    )


def bar_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    value: Callable[[float], str] = lambda v: f"{v:g}",
    maximum: float | None = None,
) -> str:
    """Horizontal bars, one row per item, the value written after each bar."""
    row = 30
    label_w = min(max((len(_short(lbl)) for lbl, _ in items), default=4) * 8 + 12, 160)
    top = maximum or max((v for _, v in items), default=0) or 1
    room = WIDTH - label_w - 80
    desc = "; ".join(f"{lbl}: {value(v)}" for lbl, v in items)
    parts = [_open(row * len(items) + 8, title, desc, "bars", len(items))]
    for i, (lbl, v) in enumerate(items):
        y = i * row + 4
        w = max(room * max(v, 0) / top, 1 if v else 0)
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 18}" text-anchor="end" fill="#222">'
            f"{escape(_short(lbl))}</text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row - 10}" fill="{BAR}"'
            f' rx="2"><title>{escape(lbl)}: {escape(value(v))}</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 18}" fill="#222">{escape(value(v))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def stacked_bar(items: Sequence[tuple[str, float]], *, title: str) -> str:
    """One bar split by share (tiers, states), with a legend below that wraps."""
    total = sum(v for _, v in items) or 1
    parts: list[str] = []
    x = 0.0
    for i, (lbl, v) in enumerate(items):
        w = WIDTH * v / total
        share = f"{v / total * 100:.0f}%"
        parts.append(
            f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="36" fill="{PALETTE[i % 7]}">'
            f"<title>{escape(lbl)}: {v:g} ({share})</title></rect>"
        )
        if w > 48:
            parts.append(
                f'<text x="{x + w / 2:.1f}" y="23" text-anchor="middle" fill="#fff"'
                f' font-weight="600">{share}</text>'
            )
        x += w
    per_line = 2
    for i, (lbl, v) in enumerate(items):
        lx, ly = (i % per_line) * (WIDTH / per_line), 52 + (i // per_line) * 24
        parts.append(
            f'<rect x="{lx:.0f}" y="{ly}" width="14" height="14" fill="{PALETTE[i % 7]}"/>'
            f'<text x="{lx + 20:.0f}" y="{ly + 12}" fill="#222">'
            f"{escape(_short(lbl, 16))} ({v:g})</text>"
        )
    height = 52 + ((len(items) + per_line - 1) // per_line) * 24
    desc = "; ".join(f"{lbl}: {v:g}" for lbl, v in items)
    return _open(height, title, desc, "stacked", len(items)) + "".join(parts) + "</svg>"


def line_chart(
    points: Sequence[tuple[str, float | None]],
    *,
    title: str,
    low: float = -100,
    high: float = 100,
) -> str:
    """Values over time on a fixed scale (NPS: -100..100) with a zero line; weeks without
    a value are gaps."""
    left, right, top, bottom, height = 48, 16, 12, 36, 240
    plot_w, plot_h = WIDTH - left - right, height - top - bottom

    def y(v: float) -> float:
        return top + plot_h * (high - v) / (high - low)

    step = plot_w / max(len(points) - 1, 1)
    parts = []
    for tick in (low, (low + high) / 2, high):
        parts.append(
            f'<line x1="{left}" x2="{WIDTH - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"'
            f' stroke="{"#888" if tick == 0 else "#ddd"}"/>'
            f'<text x="{left - 6}" y="{y(tick) + 5:.1f}" text-anchor="end" fill="#444">'
            f"{tick:g}</text>"
        )
    runs: list[list[str]] = [[]]  # stretches of weeks with a value, drawn as one line each
    for i, (lbl, v) in enumerate(points):
        x = left + (i * step if len(points) > 1 else plot_w / 2)
        if v is None:
            runs.append([])
            continue
        runs[-1].append(f"{x:.1f},{y(v):.1f}")
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y(v):.1f}" r="4" fill="{BAR}">'
            f"<title>{escape(lbl)}: {v:.1f}</title></circle>"
        )
    for run in runs:
        if len(run) > 1:
            parts.append(
                f'<polyline points="{" ".join(run)}" fill="none" stroke="{BAR}" stroke-width="2"/>'
            )
    for i in sorted({0, len(points) - 1}) if points else []:
        x = left + (i * step if len(points) > 1 else plot_w / 2)
        anchor = "start" if i == 0 and len(points) > 1 else "end" if i else "middle"
        parts.append(
            f'<text x="{x:.1f}" y="{height - 12}" text-anchor="{anchor}" fill="#444">'
            f"{escape(points[i][0])}</text>"
        )
    desc = "; ".join(f"{lbl}: {'no answers' if v is None else f'{v:.1f}'}" for lbl, v in points)
    return _open(height, title, desc, "line", len(points)) + "".join(parts) + "</svg>"


def heat(value: int, top: int) -> str:
    """Inline style of a heat-map cell: darker blue for more; white text where dark."""
    if not value:
        return "background:#fff;color:#555"
    share = value / top if top else 0
    # from #e8f1fa (light) to #08519c (dark), both readable with the chosen text colour
    r, g, b = (round(a + (z - a) * share) for a, z in ((232, 8), (241, 81), (250, 156)))
    return f"background:rgb({r},{g},{b});color:{'#fff' if share > 0.45 else '#111'}"


def interval_chart(
    items: Sequence[tuple[str, float, float, float]],
    *,
    title: str,
    value: Callable[[float], str] = lambda v: f"{v:+.1f}",
) -> str:
    """Estimates with their intervals, ``(label, estimate, low, high)``, on one scale with
    a zero line (a forest plot): a dot per item, a bar for its interval, so an interval
    that crosses zero shows at a glance."""
    row, axis = 34, 28
    label_w = min(max((len(_short(lbl)) for lbl, *_ in items), default=4) * 8 + 12, 160)
    low = min([0.0, *(lo for _, _, lo, _ in items)])
    high = max([0.0, *(hi for _, _, _, hi in items)])
    pad = (high - low) * 0.08 or 1.0
    low, high = low - pad, high + pad
    left, right = label_w, WIDTH - 16

    def x(v: float) -> float:
        return left + (v - low) / (high - low) * (right - left)

    height = row * len(items) + axis
    parts = [
        f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="0" y2="{height - axis + 4}"'
        ' stroke="#888" stroke-dasharray="4 3"/>'
    ]
    for i, (lbl, est, lo, hi) in enumerate(items):
        y = i * row + row / 2
        said = f"{lbl}: {value(est)} ({value(lo)} to {value(hi)})"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 5:.1f}" text-anchor="end" fill="#222">'
            f"{escape(_short(lbl))}</text>"
            f'<line x1="{x(lo):.1f}" x2="{x(hi):.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{BAR}"'
            ' stroke-width="3"/>'
            f'<circle cx="{x(est):.1f}" cy="{y:.1f}" r="6" fill="{BAR}">'
            f"<title>{escape(said)}</title></circle>"
        )
    for tick, anchor in ((low + pad, "start"), (0.0, "middle"), (high - pad, "end")):
        if tick == 0 and anchor != "middle":
            continue
        parts.append(
            f'<text x="{x(tick):.1f}" y="{height - 8}" text-anchor="{anchor}" fill="#444">'
            f"{escape(value(tick) if tick else '0')}</text>"
        )
    desc = "; ".join(
        f"{lbl}: {value(est)} ({value(lo)} to {value(hi)})" for lbl, est, lo, hi in items
    )
    return _open(height, title, desc, "intervals", len(items)) + "".join(parts) + "</svg>"


def paired_bars(
    items: Sequence[tuple[str, float, float]],
    *,
    title: str,
    names: tuple[str, str],
    value: Callable[[float], str] = lambda v: f"{v:.2f}",
) -> str:
    """Two horizontal bars per row on one scale, ``(label, first, second)`` (predicted and
    actual per decile), told apart by colour and by a legend above them."""
    row, legend = 40, 26
    label_w = min(max((len(_short(lbl)) for lbl, *_ in items), default=4) * 8 + 12, 160)
    top = max((max(a, b) for _, a, b in items), default=0) or 1
    room = WIDTH - label_w - 64
    colours = (PALETTE[0], PALETTE[1])
    parts = [
        f'<rect x="{i * 160}" y="4" width="14" height="14" fill="{colours[i]}"/>'
        f'<text x="{i * 160 + 20}" y="16" fill="#222">{escape(name)}</text>'
        for i, name in enumerate(names)
    ]
    for i, (lbl, *pair) in enumerate(items):
        y = legend + i * row
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 24}" text-anchor="end" fill="#222">'
            f"{escape(_short(lbl))}</text>"
        )
        for k, v in enumerate(pair):
            w = max(room * max(v, 0) / top, 1 if v else 0)
            by = y + 4 + k * 16
            said = f"{lbl}, {names[k]}: {value(v)}"
            parts.append(
                f'<rect x="{label_w}" y="{by}" width="{w:.1f}" height="14" fill="{colours[k]}"'
                f' rx="2"><title>{escape(said)}</title></rect>'
                f'<text x="{label_w + w + 6:.1f}" y="{by + 12}" fill="#222" font-size="12">'
                f"{escape(value(v))}</text>"
            )
    desc = "; ".join(f"{lbl}: {names[0]} {value(a)}, {names[1]} {value(b)}" for lbl, a, b in items)
    height = legend + row * len(items) + 4
    return _open(height, title, desc, "pairs", len(items)) + "".join(parts) + "</svg>"

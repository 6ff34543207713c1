"""Reports people can look at: figures computed in PostgreSQL from what the engine records
(``queries``), as a text summary (``text``) and as a self-contained HTML page with inline
SVG charts (``html``). Definitions of every figure: docs/reports.md."""

from __future__ import annotations

from .html import render_html
from .model import Report
from .queries import build_report
from .text import render_text

__all__ = ["Report", "build_report", "render_html", "render_text"]

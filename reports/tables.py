"""The numbers of each figure as formatted rows: the tables of the text summary and the
table next to each chart on the page."""

from __future__ import annotations

from typing import Any

from .fmt import NONE, duration, money, percent, score
from .model import JourneyFigures, Report, Staff

Table = tuple[list[str], list[list[str]]]


def tables(report: Report) -> dict[str, Any]:
    """The numbers behind each chart, formatted, for the table next to it."""
    seg, offers, sv = report.segments, report.offers, report.surveys
    return {
        "segments": (["segment", "customers"], [[c.label, str(c.count)] for c in seg.segments]),
        "tiers": (["tier", "customers"], [[c.label, str(c.count)] for c in seg.tiers]),
        "offers": (
            ["offer", "issued", "redeemed", "rate", "revenue"],
            [
                [r.template, str(r.issued), str(r.redeemed), percent(r.rate), money(r.revenue)]
                for r in [*offers.by_template, offers.total]
            ],
        ),
        "nps": (
            ["week", "sent", "answered", "response rate", "NPS"],
            [
                [
                    str(w.week or "all"),
                    str(w.sent),
                    str(w.answered),
                    percent(w.response_rate),
                    score(w.nps),
                ]
                for w in [*sv.weeks, sv.total]
            ],
        ),
        "managers": (
            ["manager", "pool", "customers", "capacity", "load", "open tasks"],
            [
                [
                    m.name + ("" if m.active else " (inactive)"),
                    m.pool,
                    str(m.assigned),
                    str(m.capacity),
                    percent(m.load),
                    str(m.open_tasks),
                ]
                for m in report.managers.managers
            ],
        ),
        "journeys": {j.journey: journey_tables(j) for j in report.journeys},
        **staff_tables(report.staff),
        "messages": (
            ["status", "messages"],
            [[c.label, str(c.count)] for c in report.messages.by_status] if report.messages else [],
        ),
    }


def journey_tables(j: JourneyFigures) -> dict[str, Table]:
    return {
        "states": (["state", "customers"], [[c.label, str(c.count)] for c in j.states_now]),
        "edges": (
            ["from", "to", "customers", "of entrants", "share"],
            [
                [e.source, e.target, str(e.customers), str(e.entrants), percent(e.share)]
                for e in j.edges
            ],
        ),
        "times": (
            ["state", "finished visits", "median time"],
            [[t.state, str(t.visits), duration(t.median_seconds)] for t in j.time_in_state],
        ),
    }


def _time(seconds: float | None) -> str:
    return NONE if seconds is None else duration(seconds)


def staff_tables(staff: Staff | None) -> dict[str, Table]:
    """Response time per pool and manager; the detractors' call-backs."""
    rows = staff.rows if staff else []
    cb = staff.callbacks if staff else None
    return {
        "staff": (
            ["pool", "manager", "created", "completed", "median", "p90", "overdue now"],
            [
                [
                    r.pool,
                    r.manager or "(all)",
                    str(r.created),
                    str(r.completed),
                    _time(r.median_seconds),
                    _time(r.p90_seconds),
                    str(r.overdue),
                ]
                for r in rows
            ],
        ),
        "callbacks": (
            ["detractor answers", "called back", "waiting", "median", "p90"],
            [
                [
                    str(cb.answers),
                    str(cb.called_back),
                    str(cb.waiting),
                    _time(cb.median_seconds),
                    _time(cb.p90_seconds),
                ]
            ]
            if cb and cb.answers
            else [],
        ),
    }

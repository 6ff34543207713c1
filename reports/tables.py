"""The numbers of each figure as formatted rows: the tables of the text summary and the
table next to each chart on the page."""

from __future__ import annotations

from typing import Any

from .fmt import duration, money, percent, score
from .model import JourneyFigures, Report

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

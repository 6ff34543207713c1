"""The numbers of each figure as formatted rows: the tables of the text summary and the
table next to each chart on the page."""

from __future__ import annotations

from typing import Any

from .fmt import NONE, duration, money, percent, score
from .lift import p_text, points
from .model import ArmLift, ClvRow, ExperimentLift, ForecastFigures, JourneyFigures, Report, Staff

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
        **forecast_tables(report.forecast),
        "experiments": {e.experiment: experiment_table(e) for e in report.experiments},
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


def _mean(value: float | None) -> str:
    return NONE if value is None else f"{value:.2f}"


def _clv_table(rows: list[ClvRow], what: str) -> Table:
    return (
        [what, "customers", "mean CLV", "total CLV", "mean P(alive)"],
        [
            [
                r.label,
                str(r.customers),
                money(r.mean_clv),
                money(r.total_clv),
                percent(r.mean_p_alive),
            ]
            for r in rows
        ],
    )


def forecast_tables(f: ForecastFigures | None) -> dict[str, Table]:
    """Calibration per decile of predicted (with the totals), predicted CLV per tier and
    per segment."""
    cal = f.calibration if f else None
    deciles = cal.deciles if cal else []
    rows = [
        [str(d.decile), str(d.customers), _mean(d.mean_predicted), _mean(d.mean_actual),
         f"{d.predicted:.1f}", str(d.actual)]
        for d in deciles
    ]  # fmt: skip
    if cal and deciles:
        rows.append(
            ["all", str(cal.customers), _mean(cal.predicted / cal.customers),
             _mean(cal.actual / cal.customers), f"{cal.predicted:.1f}", str(cal.actual)]
        )  # fmt: skip
    return {
        "calibration": (
            ["decile", "customers", "predicted (mean)", "actual (mean)", "predicted", "actual"],
            rows,
        ),
        "clv_tiers": _clv_table(f.by_tier if f else [], "tier"),
        "clv_segments": _clv_table(f.by_segment if f else [], "segment"),
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


def _span(low: str, high: str) -> str:
    return f"{low} to {high}"


def _arm_row(a: ArmLift, adjusted: bool) -> list[str]:
    c, lift = a.counts, a.lift
    row = [
        a.arm,
        str(c.customers),
        str(c.converters),
        percent(a.rate),
        _span(percent(a.interval.low), percent(a.interval.high)),
    ]
    if lift is None:
        row += ["", "", "", "", *([""] if adjusted else [])]
    else:
        i = lift.interval
        relative = NONE if lift.relative is None else f"{lift.relative * 100:+.0f}%"
        row += [
            f"{lift.absolute * 100:+.1f}",
            _span(points(i.low), points(i.high)),
            relative,
            p_text(lift.p_value),
            *([p_text(lift.p_adjusted)] if adjusted else []),
        ]
    per_converter = NONE if a.revenue_per_converter is None else money(a.revenue_per_converter)
    return [*row, money(a.revenue_per_customer), per_converter]


def experiment_table(e: ExperimentLift) -> Table:
    """One experiment: per arm, the holdout first, its counts, rate and interval, the lift
    in points against the holdout with its interval, relative lift, p-value (and Holm's
    when several arms are compared) and revenue."""
    adjusted = e.compared > 1
    headers = [
        "arm",
        "customers",
        "converted",
        "rate",
        "95% interval",
        "lift (points)",
        "95% interval",
        "relative",
        "p",
        *(["p (Holm)"] if adjusted else []),
        "revenue/customer",
        "revenue/converter",
    ]
    return headers, [_arm_row(a, adjusted) for a in e.arms]

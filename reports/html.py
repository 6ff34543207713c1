"""The report as one self-contained HTML page: inline CSS and SVG, no script, nothing
fetched from elsewhere; fluid, so it reads on a phone. Jinja2 autoescapes every value;
the charts arrive as markup that ``charts`` built with every text escaped."""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template
from markupsafe import Markup

from . import charts
from .fmt import duration, money, percent, score, when
from .model import ExperimentLift, ForecastFigures, JourneyFigures, NpsWeek, Report
from .tables import tables
from .text import not_calibrated


@cache
def _template() -> Template:
    env = Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(percent=percent, score=score, money=money, duration=duration, when=when)
    env.globals["heat"] = charts.heat
    return env.get_template("report.html.j2")


def _journey_charts(j: JourneyFigures) -> dict[str, Markup | None]:
    states = [(c.label, float(c.count)) for c in j.states_now]
    edges = [(f"{e.source} → {e.target}", (e.share or 0) * 100) for e in j.edges]
    times = [(t.state, t.median_seconds / 3600) for t in j.time_in_state]
    return {
        "states": Markup(charts.stacked_bar(states, title=f"{j.journey}: customers per state"))
        if states
        else None,
        "edges": Markup(
            charts.bar_chart(
                edges,
                title=f"{j.journey}: share of a state's entrants who went next to another",
                value=lambda v: f"{v:.0f}%",
                maximum=100,
            )
        )
        if edges
        else None,
        "times": Markup(
            charts.bar_chart(
                times,
                title=f"{j.journey}: median time in state",
                value=lambda h: duration(h * 3600),
            )
        )
        if times
        else None,
    }


def _lift_chart(e: ExperimentLift) -> Markup | None:
    items = [
        (a.arm, a.lift.absolute * 100, a.lift.interval.low * 100, a.lift.interval.high * 100)
        for a in e.arms
        if a.lift is not None
    ]
    if not items:
        return None
    title = f"{e.experiment}: lift over the holdout in percentage points, with 95% intervals"
    return Markup(charts.interval_chart(items, title=title))


def _calibration_chart(f: ForecastFigures | None) -> Markup | None:
    cal = f.calibration if f else None
    if cal is None or not cal.deciles:
        return None
    items = [
        (f"decile {d.decile}", d.mean_predicted or 0.0, d.mean_actual or 0.0) for d in cal.deciles
    ]
    return Markup(
        charts.paired_bars(
            items,
            title="Expected purchases in 90 days against those made, per customer, by decile",
            names=("predicted", "actual"),
        )
    )


def _every_week(weeks: list[NpsWeek]) -> list[tuple[str, float | None]]:
    """NPS per week from the first to the last, weeks without surveys as gaps, so the
    line's x axis is time."""
    known = {w.week: w.nps for w in weeks if w.week is not None}
    if not known:
        return []
    first, last = min(known), max(known)
    days = range(0, (last - first).days + 1, 7)
    return [(str(d), known.get(d)) for d in (first + timedelta(days=n) for n in days)]


def _charts(report: Report) -> dict[str, Any]:
    seg, sv, mg, offers = report.segments, report.surveys, report.managers, report.offers
    rates = [
        (f"reactivation ({report.reactivation_days}d)", report.reactivation.rate),
        ("repurchase", report.repurchase.rate),
        ("churn (lost)", report.churn.rate),
    ]
    known = [(name, r * 100) for name, r in rates if r is not None]
    return {
        "segments": Markup(
            charts.bar_chart(
                [(c.label, float(c.count)) for c in seg.segments], title="Customers per segment"
            )
        ),
        "tiers": Markup(
            charts.stacked_bar([(c.label, float(c.count)) for c in seg.tiers], title="Tiers")
        ),
        "rates": Markup(
            charts.bar_chart(
                known, title="Customer rates", value=lambda v: f"{v:.1f}%", maximum=100
            )
        )
        if known
        else None,
        "offers": Markup(
            charts.bar_chart(
                [(r.template, (r.rate or 0) * 100) for r in offers.by_template],
                title="Redemption rate per offer",
                value=lambda v: f"{v:.1f}%",
                maximum=100,
            )
        ),
        "nps": Markup(
            charts.line_chart(_every_week(sv.weeks), title="NPS per week the survey was sent")
        ),
        "managers": Markup(
            charts.bar_chart(
                [(f"{m.name} ({m.pool})", m.load * 100) for m in mg.managers],
                title="Manager load: customers as a share of capacity",
                value=lambda v: f"{v:.0f}%",
                maximum=max([100.0, *(m.load * 100 for m in mg.managers)]),
            )
        ),
        "journeys": {j.journey: _journey_charts(j) for j in report.journeys},
        "experiments": {e.experiment: _lift_chart(e) for e in report.experiments},
        "calibration": _calibration_chart(report.forecast),
    }


def render_html(report: Report) -> str:
    """The whole report as one HTML document; every section says so when it has no data."""
    mig = report.migration
    rate_cards = [
        (
            f"reactivation within {report.reactivation_days}d",
            report.reactivation,
            "who went dormant",
        ),
        ("repurchase", report.repurchase, "who ordered"),
        ("churn (lost)", report.churn, "who ever ordered"),
    ]
    return _template().render(
        r=report,
        charts=_charts(report),
        tables=tables(report),
        rate_cards=rate_cards,
        heat_top=max(mig.cells.values(), default=0) if mig else 0,
        not_calibrated=not_calibrated(report.forecast).removeprefix("calibration: ")
        if report.forecast and report.forecast.calibration is None
        else "",
    )

"""The report as readable plain text (``journeys report``): one aligned table per figure,
the same numbers as the page's tables."""

from __future__ import annotations

from typing import Any

from .fmt import percent, table, when
from .model import ExperimentLift, ForecastFigures, Rate, Report
from .tables import Table, tables

EMPTY = "no data yet"


def _table(t: Table) -> str:
    return table(*t)


def _section(title: str, *parts: str | None) -> str:
    body = "\n\n".join(p for p in parts if p)
    return f"{title}\n{'=' * len(title)}\n{body or EMPTY}\n"


def _rate(name: str, rate: Rate, of: str) -> list[str]:
    return [name, percent(rate.rate), f"{rate.numerator} of {rate.denominator} {of}"]


def _dead_letters(n: int) -> str:
    return f"dead letters: {n}" + (" (see 'journeys dead-letters list')" if n else "")


def experiment_lines(e: ExperimentLift, t: dict[str, Any]) -> list[str]:
    """Who was assigned, the table, then each arm's verdict and any warning."""
    c = e.counts
    about = (
        f"{c.customers} customer(s) assigned from {when(c.first_assigned)} to"
        f" {when(c.last_assigned)} by {', '.join(c.journeys)}"
    )
    warned = "\n".join(f"warning: {w}" for w in e.warnings)
    return [about, _table(t["experiments"][e.experiment]), "\n".join(e.verdicts), warned]


def forecast_lines(f: ForecastFigures, t: dict[str, Any]) -> list[str]:
    """What the forecast is, its calibration (or why there is none yet), the CLV tables."""
    about = f"forecast of the refresh as of {when(f.as_of)}: {f.customers} customer(s)"
    cal = f.calibration
    if cal is not None:
        calibration = (
            f"calibration: the refresh as of {when(cal.as_of)}, expected purchases in the next"
            f" 90 days against those made by {when(cal.until)}, by decile of expected\n"
            + _table(t["calibration"])
        )
    else:
        calibration = not_calibrated(f)
    return [about, calibration, _table(t["clv_tiers"]), _table(t["clv_segments"])]


def not_calibrated(f: ForecastFigures) -> str:
    """The sentence shown instead of the calibration while no refresh is old enough."""
    if f.calibration_ready_at is None:
        return "calibration: no refresh's expected orders are kept yet."
    return (
        "calibration: no refresh is 90 days old yet; the first can be compared with the"
        f" orders that followed it from {when(f.calibration_ready_at)}."
    )


def render_text(report: Report) -> str:
    """The whole report as text, sections in the order of the page."""
    t = tables(report)
    period = f"since {report.since:%Y-%m-%d}" if report.since else "all time"
    out = [f"Journeys report, {period} (generated {when(report.generated_at)})\n"]
    seg = report.segments
    out.append(
        _section(
            "Customers per segment and tier",
            *(
                [_table(t["segments"]), _table(t["tiers"]), f"metrics of {when(seg.computed_at)}"]
                if seg.segments
                else []
            ),
        )
    )
    mig = report.migration
    matrix = None
    if mig is not None and mig.cells:
        after = mig.after
        rows = [[b, *(str(mig.cells.get((b, a), 0)) for a in after)] for b in mig.before]
        matrix = (
            table(["before \\ after", *after], rows)
            + f"\n{mig.moved} customer(s) changed segment in the refresh as of {when(mig.as_of)}"
        )
    out.append(_section("Segment migration (last refresh)", matrix))
    if report.forecast is not None:  # shown once a refresh has forecast
        out.append(
            _section("Forecast: calibration and predicted CLV", *forecast_lines(report.forecast, t))
        )
    for j in report.journeys:
        jt = t["journeys"][j.journey]
        out.append(
            _section(
                f"Journey {j.journey}",
                f"entries {j.entries}, exits {j.exits} in the period",
                _table(jt["states"]) if j.states_now else None,
                _table(jt["edges"]) if j.edges else None,
                _table(jt["times"]) if j.time_in_state else None,
            )
        )
    if not report.journeys:
        out.append(_section("Journeys"))
    for e in report.experiments:  # shown once a split has assigned a customer
        out.append(_section(f"Experiment {e.experiment}", *experiment_lines(e, t)))
    out.append(_section("Offers", _table(t["offers"]) if report.offers.by_template else None))
    rates = [
        _rate(
            f"reactivation ({report.reactivation_days}d)", report.reactivation, "who went dormant"
        ),
        _rate("repurchase", report.repurchase, "who ordered"),
        _rate("churn (lost)", report.churn, "who ever ordered"),
    ]
    out.append(_section("Customer rates", table(["rate", "value", "of"], rates)))
    sv = report.surveys
    csat = None
    if sv.csat_answers:
        csat = f"CSAT average {sv.csat_average:.2f} over {sv.csat_answers} answer(s)"
    out.append(_section("NPS per week sent", _table(t["nps"]) if sv.weeks else None, csat))
    mg = report.managers
    queues = None
    if mg.queues:
        queues = "open tasks in pool queues: " + ", ".join(
            f"{q.label} {q.count}" for q in mg.queues
        )
    out.append(_section("Manager load", _table(t["managers"]) if mg.managers else None, queues))
    st = report.staff
    if st and (st.rows or st.callbacks.answers):  # shown once there are tasks or detractors
        out.append(
            _section(
                "Staff: response time and call-backs",
                _table(t["staff"]) if st.rows else None,
                _table(t["callbacks"]) if st.callbacks.answers else None,
            )
        )
    out.append(_section("Deliveries", _dead_letters(report.dead_letters)))
    ms = report.messages
    if ms and ms.by_status:  # shown once there are messages
        unknown = UNKNOWN_NOTE.format(n=ms.unknown) if ms.unknown else None
        out.append(_section("Messages", _table(t["messages"]), unknown))
    return "\n".join(out)


UNKNOWN_NOTE = (
    "{n} message(s) with an unknown outcome: sent under delivery: at_most_once, the worker"
    " stopped before it could record the provider's answer; they were not sent again"
)

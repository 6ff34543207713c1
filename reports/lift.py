"""An experiment's statistics, from its counts (``store.reports.experiment_counts``): per
arm the conversion rate with its 95% interval and the revenue per customer; against the
holdout arm the absolute and relative lift, the lift's 95% interval, a two-sided p-value
(Holm-adjusted when several arms are compared with one holdout), a verdict in plain words
and a warning when the sample is too small to tell. Definitions and what the numbers do
not mean: docs/reports.md, "Experiments".

Pure: counts in, figures out. statsmodels computes every interval and test; it is imported
on first use, because loading it (numpy, scipy, pandas) takes seconds and a report
without experiments never needs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.experiments import HOLDOUT
from store.reports.figures import ArmCounts, ExperimentCounts, ratio

LEVEL = 0.95  # of every interval
ALPHA = 1 - LEVEL  # the p-value a "likely real" difference stays under
# Too small to tell: an arm (or its holdout) with fewer customers, or fewer customers who
# converted or who did not, than these. The normal approximations behind the z-test and
# the score intervals need about 5 of each outcome; below 100 customers an arm's interval
# is wider than most effects worth finding.
MIN_CUSTOMERS = 100
MIN_OUTCOMES = 5

RATE_METHOD = "wilson"  # proportion_confint: stays inside [0, 1], good at small counts
LIFT_METHOD = "newcomb"  # confint_proportions_2indep: Newcombe's hybrid score (Wilson based)
TEST_METHOD = "pooled z-test"  # proportions_ztest: Pearson's chi-square without correction
ADJUSTMENT = "holm"  # multipletests, over the arms compared with one holdout


@dataclass(frozen=True)
class Interval:
    """A 95% interval: ``low`` to ``high``."""

    low: float
    high: float

    @property
    def spans_zero(self) -> bool:
        return self.low <= 0 <= self.high


@dataclass(frozen=True)
class Lift:
    """An arm against the holdout: the difference of the conversion rates (``absolute``,
    a fraction: 0.041 is 4.1 points) with its interval, ``relative`` = rate / holdout
    rate - 1 (None when the holdout converted nobody), and the p-value of "no difference"
    (None when nobody, or everybody, converted in both arms), Holm-adjusted in
    ``p_adjusted`` when several arms are compared (else the same)."""

    absolute: float
    interval: Interval
    relative: float | None
    p_value: float | None
    p_adjusted: float | None

    @property
    def likely_real(self) -> bool:
        """The (adjusted) p-value is under ``ALPHA`` and the interval leaves out zero."""
        p = self.p_adjusted
        return p is not None and p < ALPHA and not self.interval.spans_zero


@dataclass(frozen=True)
class ArmLift:
    """One arm's figures: its counts, rate and revenue, its ``lift`` against the holdout
    (None for the holdout itself, or when the experiment has none), the verdict and the
    small-sample warning (None when the sample is large enough)."""

    counts: ArmCounts
    rate: float
    interval: Interval
    revenue_per_customer: float
    revenue_per_converter: float | None
    lift: Lift | None
    verdict: str
    warning: str | None

    @property
    def arm(self) -> str:
        return self.counts.arm


@dataclass(frozen=True)
class ExperimentLift:
    """An experiment's arms (the holdout first, then by name) and what was compared."""

    counts: ExperimentCounts
    arms: list[ArmLift]
    holdout: ArmLift | None
    compared: int  # arms compared with the holdout (the Holm adjustment's family)

    @property
    def experiment(self) -> str:
        return self.counts.experiment

    @property
    def verdicts(self) -> list[str]:
        """What the page and the text say: each compared arm's verdict (every arm's,
        when there is no holdout)."""
        return [a.verdict for a in self.arms if a.lift is not None or self.holdout is None]

    @property
    def warnings(self) -> list[str]:
        """The compared arms' warnings (they name a small holdout too); the holdout's own
        when nothing is compared with it."""
        return [
            a.warning for a in self.arms if a.warning and (a.lift is not None or not self.compared)
        ]


def _stats() -> Any:
    from statsmodels.stats import multitest, proportion

    return proportion, multitest


def _interval(pair: Any) -> Interval:
    low, high = pair
    return Interval(float(low), float(high))


def _p_value(arm: ArmCounts, base: ArmCounts) -> float | None:
    proportion, _ = _stats()
    converted = arm.converters + base.converters
    if converted in (0, arm.customers + base.customers):
        return None  # no variation at all: the test has nothing to measure
    _, p = proportion.proportions_ztest(
        [arm.converters, base.converters], [arm.customers, base.customers]
    )
    return float(p)


def _lift(arm: ArmCounts, base: ArmCounts) -> tuple[float, Interval, float | None, float | None]:
    proportion, _ = _stats()
    rate, base_rate = arm.converters / arm.customers, base.converters / base.customers
    interval = proportion.confint_proportions_2indep(
        arm.converters,
        arm.customers,
        base.converters,
        base.customers,
        method=LIFT_METHOD,
        compare="diff",
        alpha=ALPHA,
    )
    relative = rate / base_rate - 1 if base_rate else None
    return rate - base_rate, _interval(interval), relative, _p_value(arm, base)


def _holm(p_values: list[float | None]) -> list[float | None]:
    known = [p for p in p_values if p is not None]
    if len(known) < 2:
        return p_values
    _, multitest = _stats()
    adjusted = iter(float(p) for p in multitest.multipletests(known, method=ADJUSTMENT)[1])
    return [None if p is None else next(adjusted) for p in p_values]


def _shortfall(arm: ArmCounts) -> str | None:
    out = []
    if arm.customers < MIN_CUSTOMERS:
        out.append(f"{arm.customers} customer(s)")
    if arm.converters < MIN_OUTCOMES:
        out.append(f"{arm.converters} who converted")
    if arm.customers - arm.converters < MIN_OUTCOMES:
        out.append(f"{arm.customers - arm.converters} who did not convert")
    return f"{arm.arm} has {' and '.join(out)}" if out else None


def _warning(*arms: ArmCounts) -> str | None:
    short = [s for s in map(_shortfall, dict.fromkeys(arms)) if s]
    if not short:
        return None
    return (
        f"too small a sample to tell: {'; '.join(short)} (at least {MIN_CUSTOMERS} customers,"
        f" {MIN_OUTCOMES} who converted and {MIN_OUTCOMES} who did not, in each arm)"
    )


def points(fraction: float) -> str:
    """A difference of rates in percentage points: ``0.0412`` -> ``4.1``."""
    return f"{fraction * 100:.1f}"


def p_text(p: float | None) -> str:
    """A p-value to two significant digits (``0.0061``, ``0.38``); ``< 0.001`` under
    that; ``n/a`` for None."""
    if p is None:
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def _verdict(arm: str, lift: Lift, compared: int, warning: str | None) -> str:
    d = lift.absolute
    how = (
        "converts as well as the holdout"
        if abs(d) < 0.0005
        else f"converts {points(abs(d))} points {'better' if d > 0 else 'worse'} than the holdout"
    )
    p = "p n/a" if lift.p_value is None else f"p {_p_equals(lift.p_value)}"
    if compared > 1 and lift.p_adjusted is not None:
        p += f", {p_text(lift.p_adjusted)} adjusted for {compared} arms"
    i = lift.interval
    said = f"{arm} {how} ({LEVEL:.0%} interval {points(i.low)} to {points(i.high)} points, {p})"
    if warning:
        return f"{said}: too small a sample to tell yet"
    if lift.likely_real:
        return f"{said}: likely a real effect"
    if compared > 1 and lift.p_value is not None and lift.p_value < ALPHA:
        return f"{said}: no difference can be told apart yet, once {compared} arms are allowed for"
    return f"{said}: no difference can be told apart yet"


def _p_equals(p: float) -> str:
    text = p_text(p)
    return text if text.startswith("<") else f"= {text}"


def _arm(counts: ArmCounts, lift: Lift | None, verdict: str, warning: str | None) -> ArmLift:
    proportion, _ = _stats()
    interval = proportion.proportion_confint(
        counts.converters, counts.customers, alpha=ALPHA, method=RATE_METHOD
    )
    return ArmLift(
        counts,
        counts.converters / counts.customers,
        _interval(interval),
        counts.revenue / counts.customers,
        ratio(counts.revenue, counts.converters),
        lift,
        verdict,
        warning,
    )


def experiment_lift(counts: ExperimentCounts) -> ExperimentLift:
    """The figures of one experiment; every arm but the holdout is compared with it."""
    by_name = {a.arm: a for a in counts.arms}
    base = by_name.get(HOLDOUT)
    if base is None:
        arms = [
            _arm(a, None, f"{a.arm}: no {HOLDOUT} arm to compare with", None) for a in counts.arms
        ]
        return ExperimentLift(counts, arms, None, 0)
    others = [a for a in counts.arms if a.arm != HOLDOUT]
    raw = [_lift(a, base) for a in others]
    adjusted = _holm([p for *_, p in raw])
    out = []
    for a, (absolute, interval, relative, p), p_adj in zip(others, raw, adjusted, strict=True):
        lift = Lift(absolute, interval, relative, p, p_adj)
        warning = _warning(a, base)
        out.append(_arm(a, lift, _verdict(a.arm, lift, len(others), warning), warning))
    holdout = _arm(
        base, None, f"{HOLDOUT}: the baseline the other arms are compared with", _warning(base)
    )
    return ExperimentLift(counts, [holdout, *out], holdout, len(others))


def experiment_lifts(found: list[ExperimentCounts]) -> list[ExperimentLift]:
    """``experiment_lift`` of each; statsmodels is loaded only when there is one."""
    return [experiment_lift(c) for c in found]

"""The statistics of the lift report, pure: checked against published worked examples,
against a second implementation (scipy), and for what a 95% interval promises (it holds
the true lift in about 95 of 100 experiments); the verdicts and the small-sample rule."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from scipy.stats import chi2_contingency

from reports.lift import MIN_CUSTOMERS, experiment_lift
from store.reports.figures import ArmCounts, ExperimentCounts

T = datetime(2026, 10, 1, tzinfo=UTC)


def experiment(*arms: tuple[str, int, int]) -> ExperimentCounts:
    """(arm, customers, converted); each converter brought 10.00."""
    return ExperimentCounts(
        "x", ["j"], T, T, [ArmCounts(a, n, k, k, 10.0 * k) for a, n, k in sorted(arms)]
    )


def arm(e: ExperimentCounts, name: str):
    return next(a for a in experiment_lift(e).arms if a.arm == name)


@pytest.mark.parametrize(
    ("converted", "customers", "low", "high"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611)],
)
def test_rate_interval_is_wilsons_as_published(converted, customers, low, high):
    """Newcombe RG (1998), "Two-sided confidence intervals for the single proportion:
    comparison of seven methods", Statistics in Medicine 17:857-872, Table I, method 3
    (Wilson score, without continuity correction): 81/263 -> 0.2553 to 0.3662, 15/148 ->
    0.0624 to 0.1605, 0/20 -> 0.0000 to 0.1611."""
    a = arm(experiment(("holdout", customers, converted)), "holdout")
    assert a.rate == converted / customers
    assert (a.interval.low, a.interval.high) == (
        pytest.approx(low, abs=5e-5),
        pytest.approx(high, abs=5e-5),
    )


@pytest.mark.parametrize(
    ("arm_counts", "holdout_counts", "low", "high"),
    [((56, 70), (48, 80), 0.0524, 0.3339), ((9, 10), (3, 10), 0.1705, 0.8090)],
)
def test_lift_interval_is_newcombes_hybrid_score_as_published(
    arm_counts, holdout_counts, low, high
):
    """Newcombe RG (1998), "Interval estimation for the difference between independent
    proportions: comparison of eleven methods", Statistics in Medicine 17:873-890, Table
    II, method 10 (hybrid score, no continuity correction): 56/70 - 48/80 = 0.2000, 0.0524
    to 0.3339; 9/10 - 3/10 = 0.6000, 0.1705 to 0.8090 (the same examples appear in Altman
    et al., Statistics with Confidence, 2nd ed., chapter 6)."""
    e = experiment(("holdout", holdout_counts[1], holdout_counts[0]), ("offer", *arm_counts[::-1]))
    lift = arm(e, "offer").lift
    assert lift is not None
    k1, n1 = arm_counts
    k0, n0 = holdout_counts
    assert lift.absolute == pytest.approx(k1 / n1 - k0 / n0)
    assert (lift.interval.low, lift.interval.high) == (
        pytest.approx(low, abs=5e-5),
        pytest.approx(high, abs=5e-5),
    )


def test_p_value_is_the_pooled_z_test_of_the_statsmodels_docs_and_pearsons_chi_square():
    """statsmodels' documentation of ``proportions_ztest`` works 5 of 83 against 12 of 99:
    two-sided p 0.159. The pooled z-test is Pearson's chi-square test on the 2x2 table
    without continuity correction; scipy's ``chi2_contingency`` computes that on its own."""
    lift = arm(experiment(("holdout", 99, 12), ("offer", 83, 5)), "offer").lift
    assert lift is not None and lift.p_value is not None
    assert round(lift.p_value, 3) == 0.159
    _, p, _, _ = chi2_contingency([[5, 78], [12, 87]], correction=False)
    assert lift.p_value == pytest.approx(p, rel=1e-9)
    assert lift.p_adjusted == lift.p_value  # one arm compared: nothing to adjust


def test_holm_adjusts_the_p_values_of_several_arms():
    """Holm (1979): sort the m p-values, multiply the i-th smallest by m - i + 1, keep them
    increasing; worked by hand on the raw p-values of three arms."""
    e = experiment(("holdout", 1000, 100), ("a", 1000, 125), ("b", 1000, 130), ("c", 1000, 105))
    found = experiment_lift(e)
    raw = {a.arm: a.lift.p_value or 0.0 for a in found.arms if a.lift}
    assert all(raw.values())
    adjusted = {a.arm: a.lift.p_adjusted for a in found.arms if a.lift}
    order = sorted(raw, key=lambda k: raw[k])
    expect, top = {}, 0.0
    for i, name in enumerate(order):
        top = max(top, min(1.0, raw[name] * (3 - i)))
        expect[name] = top
    assert adjusted == pytest.approx(expect)
    assert found.compared == 3


def test_the_interval_holds_the_true_lift_about_95_times_in_100():
    """400 simulated experiments, holdout converting 10% and the offer 14% of 500
    customers each: the true lift (4 points) lies in the 95% interval in 93% to 97% of
    them (the binomial spread of 400 draws at 95% is about +-2.2 points)."""
    rng = random.Random(12)
    inside = 0
    for _ in range(400):
        holdout = sum(rng.random() < 0.10 for _ in range(500))
        offer = sum(rng.random() < 0.14 for _ in range(500))
        lift = arm(experiment(("holdout", 500, holdout), ("offer", 500, offer)), "offer").lift
        assert lift is not None
        inside += lift.interval.low <= 0.04 <= lift.interval.high
    assert 0.93 <= inside / 400 <= 0.97


def test_verdicts_in_plain_words():
    e = experiment(("holdout", 2000, 200), ("offer_25", 2000, 282), ("offer_15", 2000, 212))
    found = experiment_lift(e)
    assert [a.arm for a in found.arms] == ["holdout", "offer_15", "offer_25"]  # holdout first
    real, unclear = arm(e, "offer_25"), arm(e, "offer_15")
    # Wald would say 4.1 +- 1.96 * sqrt(.1 * .9 / 2000 + .141 * .859 / 2000) = 2.1 to 6.1
    assert real.verdict == (
        "offer_25 converts 4.1 points better than the holdout (95% interval 2.1 to 6.1 points,"
        " p < 0.001, < 0.001 adjusted for 2 arms): likely a real effect"
    )
    assert real.lift and real.lift.relative == pytest.approx(0.41)
    assert unclear.verdict.endswith(": no difference can be told apart yet")
    assert unclear.lift and unclear.lift.interval.spans_zero and not unclear.lift.likely_real
    assert (real.warning, unclear.warning) == (None, None)
    assert found.verdicts == [unclear.verdict, real.verdict]
    assert (real.revenue_per_customer, real.revenue_per_converter) == (10 * 282 / 2000, 10.0)


def test_worse_and_no_conversion_at_all():
    e = experiment(("holdout", 3000, 600), ("spam", 3000, 450), ("dud", 3000, 0))
    worse = arm(e, "spam")
    assert "spam converts 5.0 points worse than the holdout" in worse.verdict
    assert worse.verdict.endswith("likely a real effect")
    nothing = experiment(("holdout", 500, 0), ("offer", 500, 0))
    lift = arm(nothing, "offer").lift
    assert lift and (lift.p_value, lift.relative, lift.absolute) == (None, None, 0.0)
    assert "converts as well as the holdout" in arm(nothing, "offer").verdict


def test_small_samples_are_too_small_to_tell():
    e = experiment(("holdout", 60, 3), ("offer", 400, 120))
    offer = arm(e, "offer")
    assert offer.verdict.endswith(": too small a sample to tell yet")
    assert offer.warning == (
        f"too small a sample to tell: holdout has 60 customer(s) and 3 who converted"
        f" (at least {MIN_CUSTOMERS} customers, 5 who converted and 5 who did not, in each arm)"
    )
    assert experiment_lift(e).warnings == [offer.warning]  # not the holdout's twice
    everyone = arm(experiment(("holdout", 500, 50), ("offer", 200, 198)), "offer")
    assert everyone.warning and "offer has 2 who did not convert" in everyone.warning


def test_an_experiment_without_holdout_compares_nothing():
    found = experiment_lift(experiment(("a", 300, 30), ("b", 300, 60)))
    assert found.holdout is None and found.compared == 0
    assert [a.lift for a in found.arms] == [None, None]
    assert found.verdicts == [
        "a: no holdout arm to compare with",
        "b: no holdout arm to compare with",
    ]

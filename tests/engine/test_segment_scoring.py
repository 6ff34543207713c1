"""``scoring:`` of rules/segments.yaml: loading, errors at file:line:col, and the pure
score rules the SQL refresh is tested against."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import JourneyValidationError
from engine._segment_scoring import (
    FixedScores,
    ForecastSettings,
    Scoring,
    fixed_score,
    quantile_score,
)
from engine.segments import Segments, load_segments


def load(tmp_path: Path, text: str) -> Segments:
    (tmp_path / "segments.yaml").write_text(text)
    return load_segments(tmp_path, display_root=tmp_path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(JourneyValidationError) as err:
        load(tmp_path, text)
    return [str(p) for p in err.value.problems]


def test_cume_dist_with_its_defaults(tmp_path: Path) -> None:
    scoring = load(tmp_path, "scoring: {method: cume_dist}\n").scoring
    assert scoring.method == "cume_dist" and scoring.min_population_for_quantiles == 200
    assert scoring.fixed_scores == FixedScores(
        recency_days=[14, 30, 90, 180], orders=[2, 3, 5, 10], revenue=[100, 250, 500, 1000]
    )
    assert scoring.uses_fixed(199) and not scoring.uses_fixed(200)
    assert not Scoring(method="quintiles").uses_fixed(1)  # quintiles ranks every population


def test_cume_dist_is_the_default_and_quintiles_stays_available(tmp_path: Path) -> None:
    assert (
        load(tmp_path, "window: 90d\n").scoring
        == Scoring()
        == load(tmp_path, "scoring: {method: cume_dist}\n").scoring
    )
    assert Scoring().method == "cume_dist" and Scoring().uses_fixed(1)
    # without method: the fallback keys are cume_dist's, so they are accepted
    assert load(tmp_path, "scoring: {min_population_for_quantiles: 5}\n").scoring == Scoring(
        min_population_for_quantiles=5
    )
    quintiles = load(tmp_path, "scoring: {method: quintiles}\n")
    assert quintiles.scoring.method == "quintiles" and not quintiles.scoring.uses_fixed(1)


def test_settings_are_read_and_digested(tmp_path: Path) -> None:
    defs = load(
        tmp_path,
        "scoring:\n"
        "  method: cume_dist\n"
        "  min_population_for_quantiles: 50\n"
        "  fixed_scores: {recency_days: [7, 14, 60, 120], orders: [2, 4, 6, 8],"
        " revenue: [10, 20.5, 30, 40]}\n",
    )
    assert defs.scoring.min_population_for_quantiles == 50
    assert defs.scoring.fixed_scores.revenue == [10.0, 20.5, 30.0, 40.0]
    assert defs.digest() == Segments.model_validate(defs.model_dump()).digest()
    assert defs.digest() != load(tmp_path, "scoring: {method: cume_dist}\n").digest()
    # a file that names quintiles, as before cume_dist existed, keeps its digest
    assert Segments(scoring=Scoring(method="quintiles")).digest() == "caf4d560dd0caf51"


def test_mistakes_are_reported_at_their_place(tmp_path: Path) -> None:
    text = (
        "scoring:\n"
        "  method: cume_dist\n"
        "  min_population_for_quantiles: -1\n"
        "  fixed_scores:\n"
        "    recency_days: [30, 14, 90, 180]\n"
        "    orders: [2, 3, 5]\n"
        "    revnue: [1, 2, 3, 4]\n"
    )
    assert problems(tmp_path, text) == [
        "segments.yaml:3:33 scoring.min_population_for_quantiles: input should be greater "
        "than or equal to 0",
        "segments.yaml:5:5 scoring.fixed_scores.recency_days: write the four bounds in "
        "increasing order, each larger than the last",
        "segments.yaml:6:5 scoring.fixed_scores.orders: write four bounds (where scores 1|2, "
        "2|3, 3|4 and 4|5 meet), not 3",
        "segments.yaml:7:5 scoring.fixed_scores.revnue: unknown key 'revnue' (did you mean "
        "'revenue'?); allowed here: recency_days, orders, revenue",
    ]


def test_fallback_keys_need_cume_dist(tmp_path: Path) -> None:
    assert problems(tmp_path, "scoring: {method: quintiles, min_population_for_quantiles: 5}\n")[
        0
    ].startswith(
        "segments.yaml:1:1 scoring: min_population_for_quantiles only work with method: "
        "cume_dist; add it"
    )


def test_fixed_scores_by_the_bounds() -> None:
    bounds = [14, 30, 90, 180]
    assert [fixed_score(d, bounds, lower_is_better=True) for d in (0, 14, 15, 90, 180, 181)] == [
        5,
        5,
        4,
        3,
        2,
        1,
    ]
    assert [fixed_score(o, [2, 3, 5, 10], lower_is_better=False) for o in (1, 2, 4, 10, 99)] == [
        1,
        2,
        3,
        5,
        5,
    ]


@given(st.lists(st.integers(0, 20), min_size=1, max_size=60))
def test_quantile_scores_reward_the_best_and_share_ties(values: list[int]) -> None:
    n = len(values)
    score = {
        v: quantile_score(sum(o < v for o in values), sum(o <= v for o in values), n)
        for v in values
    }
    assert score[max(values)] == 5 and set(score.values()) <= {1, 2, 3, 4, 5}
    ordered = [score[v] for v in sorted(set(values))]
    assert ordered == sorted(ordered)  # a better value never scores lower
    if len(set(values)) > 1:
        assert score[min(values)] == 1


def test_the_worked_example_of_the_docs() -> None:
    orders = {"ann": 1, "bob": 1, "cy": 2, "dee": 4, "eve": 4}
    n = len(orders)
    f = {
        c: quantile_score(
            sum(o < v for o in orders.values()), sum(o <= v for o in orders.values()), n
        )
        for c, v in orders.items()
    }
    assert f == {"ann": 1, "bob": 1, "cy": 3, "dee": 5, "eve": 5}
    assert quantile_score(0, 1, 1) == 5
    fixed = FixedScores().orders
    assert [fixed_score(v, fixed, lower_is_better=False) for v in (1, 2, 4)] == [1, 2, 3]


def test_forecast_settings(tmp_path: Path) -> None:
    assert load(tmp_path, "window: 90d\n").forecast == ForecastSettings(
        enabled=True, min_repeat_customers=50
    )
    defs = load(tmp_path, "forecast: {min_repeat_customers: 500}\n")
    assert defs.forecast == ForecastSettings(enabled=True, min_repeat_customers=500)
    assert defs.digest() != Segments().digest()
    assert defs.digest() == Segments.model_validate(defs.model_dump()).digest()
    assert not load(tmp_path, "forecast: {enabled: false}\n").forecast.enabled
    # the default forecast is left out of the digest: files from before it keep theirs
    explicit = load(tmp_path, "forecast: {enabled: true, min_repeat_customers: 50}\n")
    assert explicit.digest() == Segments().digest()


def test_forecast_mistakes_are_reported_at_their_place(tmp_path: Path) -> None:
    text = "forecast:\n  min_repeat_customers: 0\n  enabled: maybe\n  min_repeat: 5\n"
    assert problems(tmp_path, text) == [
        "segments.yaml:2:25 forecast.min_repeat_customers: input should be greater than or "
        "equal to 1",
        "segments.yaml:3:12 forecast.enabled: input should be a valid boolean, unable to "
        "interpret input (got 'maybe')",
        "segments.yaml:4:3 forecast.min_repeat: unknown key 'min_repeat' (did you mean "
        "'min_repeat_customers'?); allowed here: enabled, min_repeat_customers",
    ]

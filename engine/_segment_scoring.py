"""How ``rules/segments.yaml`` turns recency, orders and revenue into r, f, m (1-5): the
``scoring:`` block, its validation, and the pure per-value rules the SQL refresh follows;
and the ``forecast:`` block (:class:`ForecastSettings`) of the same file.

    scoring:
      method: cume_dist                  # the default; or quintiles, the scoring before
      min_population_for_quantiles: 200  # fewer scored customers: fixed_scores instead
      fixed_scores:                      # four bounds each, from score 1|2 up to 4|5
        recency_days: [14, 30, 90, 180]  # at most 14 days: r = 5 ... over 180: r = 1
        orders: [2, 3, 5, 10]            # 10 or more orders: f = 5 ... one: f = 1
        revenue: [100.0, 250.0, 500.0, 1000.0]

``cume_dist`` (the default, also for a file without ``scoring:``) scores by the share of the
population at or below a value, so the best customer of any population gets 5, and a small
population gets the fixed scores. ``quintiles`` is ``1 + floor(5 * below / n)`` (``below``:
customers strictly worse), kept for files that name it, which score as they did; see
docs/segments.md for the exact definition. :func:`quantile_score` and :func:`fixed_score`
are the reference the SQL in ``store.segments`` is tested against.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .actions import Spec

_DEFAULT_MIN_POPULATION = 200
DEFAULT_MIN_REPEAT_CUSTOMERS = 50


def _four(bounds: object) -> object:
    if isinstance(bounds, list) and len(bounds) != 4:
        raise ValueError(
            f"write four bounds (where scores 1|2, 2|3, 3|4 and 4|5 meet), not {len(bounds)}"
        )
    return bounds


def _ascending(bounds: list[float]) -> list[float]:
    if any(b < 0 for b in bounds):
        raise ValueError("bounds cannot be negative")
    if any(lo >= hi for lo, hi in pairwise(bounds)):
        raise ValueError("write the four bounds in increasing order, each larger than the last")
    return bounds


class FixedScores(Spec):
    """Four increasing bounds per measure: where scores 1|2, 2|3, 3|4 and 4|5 meet."""

    recency_days: list[int] = Field(
        default_factory=lambda: [14, 30, 90, 180], min_length=4, max_length=4
    )
    orders: list[int] = Field(default_factory=lambda: [2, 3, 5, 10], min_length=4, max_length=4)
    revenue: list[float] = Field(
        default_factory=lambda: [100.0, 250.0, 500.0, 1000.0], min_length=4, max_length=4
    )

    _count = field_validator("recency_days", "orders", "revenue", mode="before")(_four)
    _up = field_validator("recency_days", "orders", "revenue")(_ascending)


class Scoring(Spec):
    """``scoring:`` of segments.yaml (see the module docstring)."""

    method: Literal["quintiles", "cume_dist"] = "cume_dist"
    min_population_for_quantiles: Annotated[int, Field(ge=0)] = _DEFAULT_MIN_POPULATION
    fixed_scores: FixedScores = Field(default_factory=FixedScores)

    @model_validator(mode="after")
    def _only_with_cume_dist(self, info: ValidationInfo) -> Scoring:
        if not (info.context and info.context.get("from_yaml")):
            return self  # a stored definition read back carries every field
        extra = {"min_population_for_quantiles", "fixed_scores"} & self.model_fields_set
        if self.method == "quintiles" and extra:
            raise ValueError(
                f"{' and '.join(sorted(extra))} only work with method: cume_dist; add it "
                "(method: quintiles ranks every population, however small)"
            )
        return self

    def uses_fixed(self, population: int) -> bool:
        """Whether a population of ``population`` scored customers gets the fixed scores."""
        return self.method == "cume_dist" and population < self.min_population_for_quantiles


class ForecastSettings(Spec):
    """``forecast:`` of segments.yaml: whether the refresh fits the forecast, and the
    customers with a repeat purchase it needs (fewer: the parameters are not identified, a
    fit would run but mean little, so the forecast columns stay NULL)."""

    enabled: bool = True
    min_repeat_customers: Annotated[int, Field(ge=1)] = DEFAULT_MIN_REPEAT_CUSTOMERS


def quantile_score(below: int, up_to: int, n: int) -> int:
    """``cume_dist`` score of a value that ``below`` of the ``n`` scored customers are
    strictly worse than and ``up_to`` are at most as good as (itself and its ties included):
    ``ceil(5 * up_to / n)``, except that the worst value scores 1 unless everyone ties."""
    if below == 0 and up_to < n:
        return 1
    return -(-5 * up_to // n)


def fixed_score(value: float, bounds: list[int] | list[float], *, lower_is_better: bool) -> int:
    """The fixed score of ``value``: 1 plus how many bounds it reaches (``>=``); for a
    measure where less is better (recency), 5 minus how many bounds it exceeds (``>``)."""
    if lower_is_better:
        return 5 - sum(value > b for b in bounds)
    return 1 + sum(value >= b for b in bounds)

"""Per-customer forecasts: P(alive) and expected orders (BG/NBD), expected order value
(Gamma-Gamma) and their product, the lifetime value over a year. Pure numpy/scipy, no I/O:
the segment refresh reads the summaries from ``store``, calls :func:`fit` and
:func:`score` (or :func:`forecast`, both at once) and writes the columns back.

The summary of a customer follows the papers' conventions (docs/segments.md):

* a purchase is a day with orders: a customer's orders on the same day are one purchase
  (its value is their sum), so a basket split into three orders is not three purchases;
* ``frequency`` is the number of *repeat* purchases (purchases after the first);
* ``recency`` is the time from the first purchase to the last one (0 if there is no
  repeat) and ``age`` (the papers' T) the time from the first purchase to the date of the
  refresh, both in days and continuous (fractional days, never rounded to weeks);
* ``monetary`` is the mean value of the repeat purchases (the first one is left out, as in
  the papers), 0 where there is none.

A customer without a repeat purchase has P(alive) = 1 in BG/NBD (a customer can only drop
out right after a purchase); their forecast comes from the population's rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import _bgnbd, _gamma_gamma
from ._bgnbd import BgNbd
from ._gamma_gamma import GammaGamma
from .errors import InputError

__all__ = [
    "BgNbd",
    "Forecast",
    "ForecastInputError",
    "GammaGamma",
    "Models",
    "Summary",
    "fit",
    "forecast",
    "score",
    "summarise",
]

Array = npt.NDArray[np.float64]

ORDERS_HORIZON_DAYS = 90.0
CLV_HORIZON_DAYS = 365.0


class ForecastInputError(InputError, ValueError):
    """The customer summaries handed to the forecast are not summaries (NaN, negative,
    a last purchase after the refresh date, ...): a bug of the caller, named exactly."""


@dataclass(frozen=True)
class Summary:
    """Per-customer purchase summaries, one array element per customer (see the module
    docstring for the conventions); built with :meth:`of`, which checks them."""

    frequency: Array
    recency: Array
    age: Array
    monetary: Array

    @classmethod
    def of(
        cls,
        frequency: npt.ArrayLike,
        recency: npt.ArrayLike,
        age: npt.ArrayLike,
        monetary: npt.ArrayLike | None = None,
    ) -> Summary:
        """Checked summaries: finite, frequency a count >= 0, 0 <= recency <= age, recency
        0 without repeats, monetary >= 0 (missing: all 0, so no order values are learnt)."""
        x = np.asarray(frequency, dtype=np.float64).ravel()
        t_x = np.asarray(recency, dtype=np.float64).ravel()
        big_t = np.asarray(age, dtype=np.float64).ravel()
        m = np.zeros_like(x) if monetary is None else np.asarray(monetary, np.float64).ravel()
        if not len(x) == len(t_x) == len(big_t) == len(m):
            raise ForecastInputError(
                f"summary arrays differ in length: frequency {len(x)}, recency {len(t_x)},"
                f" age {len(big_t)}, monetary {len(m)}"
            )
        checks = [
            ("frequency, recency, age and monetary are finite", np.isfinite(x + t_x + big_t + m)),
            ("frequency is a whole number >= 0", (x >= 0) & (x == np.floor(x))),
            ("0 <= recency <= age", (t_x >= 0) & (t_x <= big_t)),
            ("recency is 0 when frequency is 0", (x > 0) | (t_x == 0)),
            ("monetary >= 0", m >= 0),
        ]
        for rule, ok in checks:
            if not ok.all():
                bad = np.flatnonzero(~ok)
                raise ForecastInputError(
                    f"{len(bad)} customer summaries break '{rule}' (first at index {bad[0]})"
                )
        return cls(frequency=x, recency=t_x, age=big_t, monetary=m)

    def __len__(self) -> int:
        return len(self.frequency)


def summarise(
    customer: npt.ArrayLike,
    time: npt.ArrayLike,
    value: npt.ArrayLike,
    *,
    as_of: float,
) -> tuple[npt.NDArray[np.int64], Summary]:
    """The summaries of customers from their orders, by the conventions above: the
    reference for the SQL that the refresh runs, and what a test of it compares with.

    ``customer`` are integer ids, ``time`` the orders' times in days since a midnight (a
    day is ``floor(time)``; the purchase is at its first order), ``value`` their values
    (negative ones count as 0); orders after ``as_of`` are left out. Returns the customer
    ids, ascending, and their summaries in that order."""
    c = np.asarray(customer, dtype=np.int64).ravel()
    t = np.asarray(time, dtype=np.float64).ravel()
    v = np.clip(np.asarray(value, dtype=np.float64).ravel(), 0.0, None)
    if not len(c) == len(t) == len(v):
        raise ForecastInputError(
            f"order arrays differ in length: customer {len(c)}, time {len(t)}, value {len(v)}"
        )
    if not (np.isfinite(t).all() and np.isfinite(v).all()):
        raise ForecastInputError("order times and values must be finite")
    kept = t <= as_of
    c, t, v = c[kept], t[kept], v[kept]
    order = np.lexsort((t, c))
    c, t, v = c[order], t[order], v[order]
    day = np.floor(t)
    # the first order of each (customer, day) opens a purchase, the first purchase a customer
    opens = np.ones(len(c), dtype=bool)
    opens[1:] = (c[1:] != c[:-1]) | (day[1:] != day[:-1])
    starts = np.flatnonzero(opens)
    p_c, p_t = c[starts], t[starts]
    p_v = np.add.reduceat(v, starts) if len(starts) else v[:0]
    first = np.ones(len(p_c), dtype=bool)
    first[1:] = p_c[1:] != p_c[:-1]
    firsts = np.flatnonzero(first)
    purchases = np.diff(np.append(firsts, len(p_c)))
    frequency = (purchases - 1).astype(np.float64)
    repeat_value = (np.add.reduceat(p_v, firsts) if len(firsts) else p_v[:0]) - p_v[firsts]
    monetary = np.where(frequency > 0, repeat_value / np.maximum(frequency, 1.0), 0.0)
    first_time = p_t[firsts]
    summary = Summary.of(
        frequency, p_t[firsts + purchases - 1] - first_time, as_of - first_time, monetary
    )
    return p_c[firsts], summary


@dataclass(frozen=True)
class Models:
    """The fitted models of one refresh; ``gamma_gamma`` is None when fewer than two
    customers have repeat purchases with a value (nothing to learn order values from).
    ``customers`` and ``repeat_customers`` say what they were fitted on: on a few dozen
    customers the parameters are not identified, so the caller decides the minimum."""

    bgnbd: BgNbd
    gamma_gamma: GammaGamma | None
    customers: int
    repeat_customers: int


@dataclass(frozen=True)
class Forecast:
    """Per-customer forecast columns, aligned with the summary: all finite, p_alive and
    churn_risk in [0, 1], the others >= 0."""

    p_alive: Array
    churn_risk: Array
    expected_orders_90d: Array
    expected_value: Array
    predicted_clv_365d: Array


def fit(summary: Summary) -> Models:
    """Fit BG/NBD on every customer and Gamma-Gamma on those with repeat purchases."""
    if len(summary) == 0:
        raise ForecastInputError("no customers to fit the forecast on")
    bgnbd = _bgnbd.fit(summary.frequency, summary.recency, summary.age)
    repeat = (summary.frequency > 0) & (summary.monetary > 0)
    gamma_gamma = None
    if np.count_nonzero(repeat) >= 2:
        gamma_gamma = _gamma_gamma.fit(summary.frequency[repeat], summary.monetary[repeat])
    return Models(
        bgnbd=bgnbd,
        gamma_gamma=gamma_gamma,
        customers=len(summary),
        repeat_customers=int(np.count_nonzero(summary.frequency > 0)),
    )


def score(models: Models, summary: Summary) -> Forecast:
    """The forecast columns of each customer under fitted models.

    predicted_clv_365d = expected purchases in the next 365 days x expected order value,
    undiscounted (a year is short next to any discount rate that matters here)."""
    x, t_x, big_t = summary.frequency, summary.recency, summary.age
    alive = np.clip(_bgnbd.p_alive(models.bgnbd, x, t_x, big_t), 0.0, 1.0)
    orders_90 = _bgnbd.expected_purchases(models.bgnbd, ORDERS_HORIZON_DAYS, x, t_x, big_t)
    orders_365 = _bgnbd.expected_purchases(models.bgnbd, CLV_HORIZON_DAYS, x, t_x, big_t)
    if models.gamma_gamma is None:
        value = summary.monetary.copy()
    else:
        value = _gamma_gamma.expected_value(models.gamma_gamma, x, summary.monetary)
    value = np.clip(np.nan_to_num(value, nan=0.0, posinf=0.0), 0.0, None)
    return Forecast(
        p_alive=alive,
        churn_risk=1.0 - alive,
        expected_orders_90d=orders_90,
        expected_value=value,
        predicted_clv_365d=orders_365 * value,
    )


def forecast(summary: Summary) -> tuple[Models, Forecast]:
    """Fit on the population and score it: what one refresh does."""
    models = fit(summary)
    return models, score(models, summary)

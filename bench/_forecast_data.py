"""Customer summaries for the forecast benchmarks and tests: a population simulated from
known BG/NBD and Gamma-Gamma parameters, and the CDNOW sample (tests/data). Only numpy,
so that ``bench.forecast_alternatives`` runs in a scratch venv without the project."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

CDNOW = Path(__file__).resolve().parent.parent / "tests" / "data" / "cdnow_customers_summary.csv"

# CDNOW's published parameters with alpha in days (4.414 weeks), a population like a shop's
TRUE_BGNBD = {"r": 0.243, "alpha": 4.414 * 7, "a": 0.793, "b": 2.426}
TRUE_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}


@dataclass(frozen=True)
class Population:
    """Per-customer summaries in days: frequency, recency, age (T), monetary."""

    frequency: Array
    recency: Array
    age: Array
    monetary: Array


def simulate(
    n: int,
    *,
    seed: int,
    r: float = TRUE_BGNBD["r"],
    alpha: float = TRUE_BGNBD["alpha"],
    a: float = TRUE_BGNBD["a"],
    b: float = TRUE_BGNBD["b"],
    p: float = TRUE_GAMMA_GAMMA["p"],
    q: float = TRUE_GAMMA_GAMMA["q"],
    v: float = TRUE_GAMMA_GAMMA["v"],
    max_age: float = 730.0,
) -> Population:
    """n customers drawn from the models' own story, first purchases spread over max_age
    days: rate ~ Gamma(r, alpha), dropout ~ Beta(a, b) after each repeat purchase.

    Vectorised: the repeat purchases a customer would make before dropping out are J ~
    Geometric(dropout); N ~ Poisson(rate T) arrive by T; x = min(J, N), and the time of
    the x-th of N arrivals (uniform on [0, T]) is T * Beta(x, N - x + 1). Order values are
    Gamma(p, nu) with nu ~ Gamma(q, v), so the mean of x of them is Gamma(p x, nu x)."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(1.0, max_age, n)
    rate = rng.gamma(r, 1.0 / alpha, n)
    dropout = rng.beta(a, b, n)
    would_make = rng.geometric(np.clip(dropout, 1e-12, 1.0))
    arrivals = rng.poisson(rate * age)
    x = np.minimum(would_make, arrivals)
    repeat = x > 0
    recency = np.zeros(n)
    recency[repeat] = age[repeat] * rng.beta(x[repeat], arrivals[repeat] - x[repeat] + 1)
    nu = rng.gamma(q, 1.0 / v, n)
    monetary = np.zeros(n)
    monetary[repeat] = rng.gamma(p * x[repeat], 1.0 / (nu[repeat] * x[repeat]))
    return Population(x.astype(np.float64), recency, age, monetary)


def cdnow() -> Population:
    """The CDNOW sample (2,357 customers) with its weeks turned into days."""
    data = np.loadtxt(CDNOW, delimiter=",", skiprows=1)
    return Population(data[:, 1], data[:, 2] * 7.0, data[:, 3] * 7.0, data[:, 4])

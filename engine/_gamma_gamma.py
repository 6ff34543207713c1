"""The Gamma-Gamma model of monetary value (Fader & Hardie 2013, "The Gamma-Gamma Model of
Monetary Value"; Colombo & Jiang 1999): a customer's order values are Gamma(p, nu), their
nu ~ Gamma(q, v). Fitted on the customers with repeat purchases, on the mean value m of
those purchases; the log-likelihood and its gradient in log space, vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

Array = npt.NDArray[np.float64]

_LOG_BOUND = 20.0


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma parameters (v in the unit of the values it was fitted on)."""

    p: float
    q: float
    v: float
    log_likelihood: float

    @property
    def population_mean(self) -> float:
        """E[order value] of a customer about whom nothing is known: p v / (q - 1)."""
        return self.p * self.v / (self.q - 1.0) if self.q > 1.0 else float("nan")


def _neg_log_likelihood(theta: Array, x: Array, m: Array) -> tuple[float, Array]:
    """The negative mean log-likelihood of (x, m) and its gradient in log-parameters."""
    p, q, v = np.exp(theta)
    px = p * x
    ln_v_xm = np.log(v + x * m)
    ll = (
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * np.log(v)
        + (px - 1.0) * np.log(m)
        + px * np.log(x)
        - (px + q) * ln_v_xm
    )
    psi = special.digamma(px + q)
    d_p = x * (psi - special.digamma(px) + np.log(m) + np.log(x) - ln_v_xm)
    d_q = psi - special.digamma(q) + np.log(v) - ln_v_xm
    d_v = q / v - (px + q) / (v + x * m)
    n = len(x)
    grad = np.array([p * d_p.sum(), q * d_q.sum(), v * d_v.sum()])
    return -float(ll.sum()) / n, -grad / n


def fit(x: Array, m: Array) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma parameters from the customers with x > 0 repeat
    purchases of mean value m > 0 (the caller drops the others)."""
    scale = float(np.mean(m)) or 1.0
    ms = m / scale
    result = optimize.minimize(
        _neg_log_likelihood,
        np.zeros(3),
        args=(x, ms),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 3,
        options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9},
    )
    p, q, v = np.exp(result.x)
    # m is a density variable: in the caller's unit each customer's density gains 1/scale
    return GammaGamma(
        p=float(p),
        q=float(q),
        v=float(v * scale),
        log_likelihood=float(-result.fun * len(x) - len(x) * np.log(scale)),
    )


def expected_value(model: GammaGamma, x: Array, m: Array) -> Array:
    """E[order value | x, m] = p (v + x m) / (p x + q - 1): the customer's own mean shrunk
    towards the population's, the more so the fewer purchases they made. For x == 0 it
    is the population mean. If q <= 1 the model has no finite mean: the customer's own
    mean stands in (the mean of the others' for x == 0), so the result stays finite."""
    if model.q > 1.0:
        return np.asarray(model.p * (model.v + x * m) / (model.p * x + model.q - 1.0))
    repeat = x > 0
    fallback = float(np.mean(m[repeat])) if repeat.any() else 0.0
    return np.where(repeat, m, fallback)

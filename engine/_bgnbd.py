"""The BG/NBD model (Fader, Hardie & Lee 2005, "Counting your customers the easy way"):
its log-likelihood with the gradient, the fit, P(alive) and the expected repeat purchases.

Everything is in log space with ``scipy.special`` (gammaln, digamma, hyp2f1), vectorised
over customers. Times are in any one unit; the fit runs on times divided by their mean
(so the optimiser sees numbers near 1 whatever the unit) and scales alpha back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

Array = npt.NDArray[np.float64]

# log-parameters stay within e^-20..e^20 of the time scale: wide enough for any real
# population, narrow enough that exp() never overflows while the optimiser explores
_LOG_BOUND = 20.0


@dataclass(frozen=True)
class BgNbd:
    """Fitted BG/NBD parameters: purchase rates ~ Gamma(r, alpha) (alpha in the unit of
    the times it was fitted on), dropout probability after each purchase ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float


def _neg_log_likelihood(
    theta: Array, x: Array, t_x: Array, big_t: Array, weight: Array
) -> tuple[float, Array]:
    """The negative mean log-likelihood and its gradient in the log-parameters."""
    r, alpha, a, b = np.exp(theta)
    repeat = x > 0
    ln_a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    ln_a2 = (
        special.gammaln(a + b)
        + special.gammaln(b + x)
        - special.gammaln(b)
        - special.gammaln(a + b + x)
    )
    ln_t = np.log(alpha + big_t)
    ln_tx = np.log(alpha + t_x)
    ln_a3 = -(r + x) * ln_t
    # b + x - 1 >= b > 0 where x > 0; elsewhere the term is absent (weight 0 below)
    b_x1 = np.where(repeat, b + x - 1.0, 1.0)
    ln_a4 = np.where(repeat, np.log(a) - np.log(b_x1) - (r + x) * ln_tx, -np.inf)
    ln_a34 = np.logaddexp(ln_a3, ln_a4)
    w3 = np.exp(ln_a3 - ln_a34)
    w4 = np.exp(ln_a4 - ln_a34)
    ll = ln_a1 + ln_a2 + ln_a34

    psi_ab, psi_abx = special.digamma(a + b), special.digamma(a + b + x)
    d_r = special.digamma(r + x) - special.digamma(r) + np.log(alpha) - w3 * ln_t - w4 * ln_tx
    d_alpha = r / alpha - w3 * (r + x) / (alpha + big_t) - w4 * (r + x) / (alpha + t_x)
    d_a = psi_ab - psi_abx + w4 / a
    d_b = psi_ab + special.digamma(b + x) - special.digamma(b) - psi_abx - w4 / b_x1
    total = weight.sum()
    grad = np.array(
        [
            r * (weight @ d_r),
            alpha * (weight @ d_alpha),
            a * (weight @ d_a),
            b * (weight @ d_b),
        ]
    )
    return -float(weight @ ll) / total, -grad / total


def fit(x: Array, t_x: Array, big_t: Array) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters for repeat purchases ``x``, the time of the
    last one ``t_x`` and the time observed ``big_t`` (both since the first purchase).

    Customers with the same (x, t_x, T) are one row with a weight, which makes the
    likelihood of a large population of one-time buyers cheap."""
    rows, weight = np.unique(np.column_stack([x, t_x, big_t]), axis=0, return_counts=True)
    scale = float(rows[:, 2] @ weight / weight.sum()) or 1.0
    ux, utx, ut = rows[:, 0], rows[:, 1] / scale, rows[:, 2] / scale
    w = weight.astype(np.float64)
    result = optimize.minimize(
        _neg_log_likelihood,
        np.zeros(4),
        args=(ux, utx, ut, w),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 4,
        options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9},
    )
    r, alpha, a, b = np.exp(result.x)
    return BgNbd(
        r=float(r),
        alpha=float(alpha * scale),
        a=float(a),
        b=float(b),
        # the likelihood in the caller's unit: each customer's density gains 1/scale^x
        log_likelihood=float(-result.fun * w.sum() - (w @ ux) * np.log(scale)),
    )


def _ln_odds_dead(model: BgNbd, x: Array, t_x: Array, big_t: Array) -> Array:
    """log of P(dead)/P(alive) for x > 0 (eq. 11 of the paper); -inf where x == 0."""
    repeat = x > 0
    b_x1 = np.where(repeat, model.b + x - 1.0, 1.0)
    ln_odds = (
        np.log(model.a)
        - np.log(b_x1)
        + (model.r + x) * (np.log(model.alpha + big_t) - np.log(model.alpha + t_x))
    )
    return np.where(repeat, ln_odds, -np.inf)


def p_alive(model: BgNbd, x: Array, t_x: Array, big_t: Array) -> Array:
    """P(alive | x, t_x, T). A customer without repeat purchases has not had a chance to
    drop out in this model (dropout happens right after a purchase), so their P is 1."""
    return np.asarray(special.expit(-_ln_odds_dead(model, x, t_x, big_t)), dtype=np.float64)


def expected_purchases(model: BgNbd, t: float, x: Array, t_x: Array, big_t: Array) -> Array:
    """Expected repeat purchases in (T, T + t] given the history (eq. 10 of the paper).

    The paper's ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z) overflows for
    customers with many purchases; Euler's transformation turns it into
    (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), whose first two arguments do not grow."""
    r, alpha, b = model.r, model.alpha, model.b
    # the formula divides by a - 1; its limit at a = 1 is met closely enough this way
    a = model.a if abs(model.a - 1.0) > 1e-6 else 1.0 + 1e-6
    one_minus_z = (alpha + big_t) / (alpha + big_t + t)
    alive = p_alive(model, x, t_x, big_t)
    with np.errstate(all="ignore"):  # non-finite results are replaced below
        hyp = special.hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, 1.0 - one_minus_z)
        bracket = 1.0 - np.power(one_minus_z, a - 1.0) * hyp
        expected = (a + b + x - 1.0) / (a - 1.0) * bracket * alive
    lost = ~np.isfinite(expected)
    if lost.any():
        # very large a and b (a population of very regular buyers: the dropout probability
        # barely varies) overflow hyp2f1; there the model is, to many digits, its limit
        # of one dropout probability a / (a + b) for everyone
        expected = np.where(lost, _constant_dropout(model, t, x, big_t) * alive, expected)
    return np.asarray(np.clip(np.nan_to_num(expected, nan=0.0, posinf=0.0), 0.0, None))


def _constant_dropout(model: BgNbd, t: float, x: Array, big_t: Array) -> Array:
    """Expected purchases in (T, T + t] of a customer alive at T when every purchase is
    followed by dropout with the same probability p = a / (a + b): for a rate lambda,
    (1 - exp(-lambda p t)) / p, averaged over lambda ~ Gamma(r + x, alpha + T)."""
    p = model.a / (model.a + model.b)
    shrink = np.log1p(-p * t / (model.alpha + big_t + p * t))
    return np.asarray(-np.expm1((model.r + x) * shrink) / p, dtype=np.float64)

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


# rows per block of the likelihood's per-row work: a block's dozen temporaries stay in the
# processor's cache instead of streaming through memory, which at a million rows makes an
# evaluation about a third faster than working on whole columns
_BLOCK = 32768


@dataclass(frozen=True)
class _Block:
    """Consecutive rows of the fit's data: repeat purchases ``x``, the scaled times
    ``t_x`` and ``big_t``, the customers in each row (``weight``) and each row's index
    into the distinct x (``x_index``)."""

    x: Array
    t_x: Array
    big_t: Array
    weight: Array
    x_index: npt.NDArray[np.intp]


@dataclass(frozen=True)
class _Rows:
    """The fit's data as the likelihood reads it, prepared once before the optimiser runs:
    the rows in blocks, the distinct x (``x_values``), the customers with each
    (``x_weight``) and in all (``total``). Whatever depends on x and the parameters only
    (the gamma functions: most of the work per customer) is computed and summed once per
    distinct x, a few hundred at most, instead of once per row."""

    blocks: tuple[_Block, ...]
    x_values: Array
    x_weight: Array
    total: float

    @classmethod
    def of(cls, x: Array, t_x: Array, big_t: Array, weight: Array) -> _Rows:
        """The rows (x, t_x, T) with their weights, and what the likelihood needs of x."""
        x = np.ascontiguousarray(x)
        # the same as np.unique(x, return_inverse=True), without its argsort of all rows
        x_values = np.unique(x)
        x_index = np.searchsorted(x_values, x)
        x_weight = np.bincount(x_index, weights=weight, minlength=len(x_values))
        blocks = tuple(
            _Block(
                x=x[i : i + _BLOCK],
                t_x=t_x[i : i + _BLOCK],
                big_t=big_t[i : i + _BLOCK],
                weight=weight[i : i + _BLOCK],
                x_index=x_index[i : i + _BLOCK],
            )
            for i in range(0, len(x), _BLOCK)
        )
        return cls(
            blocks=blocks,
            x_values=x_values,
            x_weight=np.asarray(x_weight, dtype=np.float64),
            total=float(weight.sum()),
        )


def _neg_log_likelihood(theta: Array, rows: _Rows) -> tuple[float, Array]:
    """The negative mean log-likelihood and its gradient in the log-parameters.

    Per customer ln L = ln A1 + ln A2 + ln(A3 + A4) (eq. 6 of the paper, in logs). A1,
    A2 and their derivatives depend on x and the parameters only: they are computed once
    per distinct x and summed with that x's weight. Only A3 + A4 involves t_x and T, and
    is summed over the rows (see _row_sums)."""
    r, alpha, a, b = np.exp(theta)
    u = rows.x_values
    # b + x - 1 >= b > 0 where x > 0; without repeat purchases there is no A4 (z = -inf)
    b_x1 = np.where(u > 0, b + u - 1.0, 1.0)
    ln_a12 = (
        special.gammaln(r + u)
        - special.gammaln(r)
        + r * np.log(alpha)
        + special.gammaln(a + b)
        + special.gammaln(b + u)
        - special.gammaln(b)
        - special.gammaln(a + b + u)
    )
    z_of_x = np.where(u > 0, np.log(a) - np.log(b_x1), -np.inf)
    psi_ab, psi_abx = special.digamma(a + b), special.digamma(a + b + u)
    d_r = special.digamma(r + u) - special.digamma(r) + np.log(alpha)
    d_a = psi_ab - psi_abx
    d_b = psi_ab + special.digamma(b + u) - special.digamma(b) - psi_abx

    sums, w4_of_x = np.zeros(5), np.zeros(len(u))
    for block in rows.blocks:
        block_sums, block_w4 = _row_sums(block, r, alpha, z_of_x)
        sums += block_sums
        w4_of_x += block_w4
    ln_t, rx_ln_t, rx_by_alpha, softplus, w4_gap = sums

    total, x_weight = rows.total, rows.x_weight
    ll = x_weight @ ln_a12 + softplus - rx_ln_t
    grad = np.array(
        [
            r * (x_weight @ d_r - ln_t + w4_gap),
            alpha * (r / alpha * total - rx_by_alpha),
            a * (x_weight @ d_a + w4_of_x.sum() / a),
            b * (x_weight @ d_b - w4_of_x @ (1.0 / b_x1)),
        ]
    )
    return -float(ll) / total, -grad / total


def _row_sums(block: _Block, r: float, alpha: float, z_of_x: Array) -> tuple[Array, Array]:
    """What ln(A3 + A4) adds to the log-likelihood and its gradient, summed over a
    block's rows with their weights: of ln(alpha + T), (r + x) ln(alpha + T), (r + x)
    by_alpha, softplus(z) and w4 gap; and of w4 per distinct x.

    ln A3 = -(r + x) ln(alpha + T) and ln A4 = ln A3 + z, where z = ln(a / (b + x - 1))
    + (r + x) gap and gap = ln((alpha + T) / (alpha + t_x)); so ln(A3 + A4) = ln A3 +
    softplus(z), A4's share w4 of A3 + A4 is expit(z), and d ln(A3 + A4) / d alpha =
    -(r + x) by_alpha with by_alpha = (1 - w4) / (alpha + T) + w4 / (alpha + t_x)."""
    r_x = r + block.x
    alpha_t, alpha_tx = alpha + block.big_t, alpha + block.t_x
    ln_t = np.log(alpha_t)
    gap = ln_t - np.log(alpha_tx)
    z = z_of_x[block.x_index] + r_x * gap
    w4 = special.expit(z)  # A3's share is 1 - w4
    # softplus(z) = ln(1 + e^z) = max(z, 0) - ln(the larger share) = max(z, 0) -
    # ln(1 - the smaller one): exact to rounding, and a third of np.logaddexp(0, z)'s cost
    softplus = np.maximum(z, 0.0) - np.log1p(-np.minimum(w4, 1.0 - w4))
    weight_w4 = block.weight * w4
    weight_rx = block.weight * r_x
    inv_t = 1.0 / alpha_t
    by_alpha = inv_t + w4 * (1.0 / alpha_tx - inv_t)
    sums = np.array(
        [
            _dot(block.weight, ln_t),
            _dot(weight_rx, ln_t),
            _dot(weight_rx, by_alpha),
            _dot(block.weight, softplus),
            _dot(weight_w4, gap),
        ]
    )
    w4_of_x = np.bincount(block.x_index, weights=weight_w4, minlength=len(z_of_x))
    return sums, np.asarray(w4_of_x, dtype=np.float64)


def _dot(a: Array, b: Array) -> float:
    """a @ b in this thread. np.dot hands long vectors to OpenBLAS's threads, whose
    hand-off costs more than the sum itself on a machine whose cores are busy (the
    refresh shares its machine with PostgreSQL); einsum sums in its own loop."""
    return float(np.einsum("i,i->", a, b))


def _collapse(x: Array, t_x: Array, big_t: Array) -> tuple[Array, Array, Array, Array]:
    """The customers as rows of distinct (x, t_x, T) with the customers of each as its
    weight (exactly: the likelihood is the same sum, in fewer terms).

    Times in whole days or weeks repeat a lot (CDNOW: 2,357 customers in 1,000 or so
    rows), and there this makes every evaluation cheaper. Times with a time of day almost
    never repeat, and there finding that out would cost more than it saves: no grouping can
    leave fewer rows than there are distinct T, which is cheap to count, so when those
    are more than half the customers the rows are left as they are (weight 1 each)."""
    n = len(x)
    if np.unique(big_t).size > n // 2:
        return x, t_x, big_t, np.ones(n)
    _, first, count = np.unique(_row_code(x, big_t, t_x), return_index=True, return_counts=True)
    return x[first], t_x[first], big_t[first], count.astype(np.float64)


def _row_code(*columns: Array) -> npt.NDArray[np.int64]:
    """One integer per row, the same for two rows exactly when all their columns are: the
    columns' ranks among their distinct values as the digits of a number (renumbered
    densely before a digit more would overflow). Sorting these integers is much cheaper
    than ``np.unique(..., axis=0)`` on the rows."""
    code = np.zeros(len(columns[0]), dtype=np.int64)
    size = 1
    for column in columns:
        values, rank = np.unique(column, return_inverse=True)
        if size * len(values) >= 2**62:
            distinct, code = np.unique(code, return_inverse=True)
            size = len(distinct)
        code = code * len(values) + rank.ravel()
        size *= len(values)
    return code


def fit(x: Array, t_x: Array, big_t: Array) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters for repeat purchases ``x``, the time of the
    last one ``t_x`` and the time observed ``big_t`` (both since the first purchase).

    Customers with the same (x, t_x, T) are one row with a weight (see _collapse), which
    makes the likelihood of a large population of one-time buyers cheap."""
    ux, utx, ut, w = _collapse(x, t_x, big_t)
    scale = float(_dot(ut, w) / w.sum()) or 1.0
    rows = _Rows.of(ux, utx / scale, ut / scale, w)
    result = optimize.minimize(
        _neg_log_likelihood,
        np.zeros(4),
        args=(rows,),
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
        log_likelihood=float(-result.fun * rows.total - _dot(w, ux) * np.log(scale)),
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

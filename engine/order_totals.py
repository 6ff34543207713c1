"""Every customer's order totals and purchase summaries from their orders, in one vectorised
pass: what the segment refresh needs of the order events (the RFM aggregates and the
forecast's summaries), computed from flat arrays that :mod:`store._orders` reads from
PostgreSQL by binary COPY. Pure numpy, no I/O.

Orders are ``(customer, time, units)``: a customer number, the time in integer
microseconds since a UTC midnight (PostgreSQL's binary timestamps are microseconds since
2000-01-01 00:00 UTC, so days are UTC days) and the amount in integer units of
10^-6 (exact: a revenue with up to six decimals). Sums stay integers, so the RFM revenue
is exact; a customer whose sum could leave int64 is reported as ``overflow`` for the caller
to sum another way. The summaries follow :func:`engine.forecast.summarise`, the
reference: a purchase is a customer's day with orders, at its first order, worth the sum
of its orders with negative amounts as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .forecast import Summary

I64 = npt.NDArray[np.int64]
MICROS_PER_DAY = 86_400_000_000
UNITS_PER_CURRENCY = 1_000_000
# a per-customer sum of |units| below this leaves room in int64 (2^63) for any rounding
_SAFE_SUM = float(2**62)


@dataclass(frozen=True)
class OrderTotals:
    """Per customer with an order, ascending by ``customer``: window and all-time counts and
    sums (``revenue`` and ``ltv`` in units), first and last order times (microseconds),
    their purchase summaries, and whether a sum may have overflowed int64 (``overflow``:
    its sums are not to be trusted)."""

    customer: I64
    orders: I64  # orders after ``since``
    revenue: I64
    ltv_orders: I64
    ltv: I64
    first_at: I64
    last_at: I64
    summary: Summary
    overflow: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.customer)


def order_totals(customer: I64, time: I64, units: I64, *, since: int, as_of: int) -> OrderTotals:
    """The totals of the orders ``(customer, time, units)`` up to ``as_of`` (microseconds,
    like ``time``; later ones are left out), the window being the orders after ``since``;
    see the module docstring. Customers are any int64 numbers."""
    kept = time <= as_of
    if not kept.all():
        customer, time, units = customer[kept], time[kept], units[kept]
    day = np.floor_divide(time, MICROS_PER_DAY)
    if len(customer):
        order = _by_customer_and_day(customer, day)
        customer, time, units, day = customer[order], time[order], units[order], day[order]
    n = len(customer)
    # rows of one customer, then rows of one (customer, day) inside them
    new_customer = np.ones(n, dtype=bool)
    new_customer[1:] = customer[1:] != customer[:-1]
    new_day = new_customer.copy()
    new_day[1:] |= day[1:] != day[:-1]
    rows = np.flatnonzero(new_customer)
    days = np.flatnonzero(new_day)

    def per_customer(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return np.add.reduceat(values, rows) if n else values[:0]

    window = time > since
    orders = per_customer(window.astype(np.int64))
    revenue = per_customer(np.where(window, units, 0))
    ltv = per_customer(units)
    ltv_orders = np.diff(np.append(rows, n)).astype(np.int64)
    first_at = np.minimum.reduceat(time, rows) if n else time[:0]
    last_at = np.maximum.reduceat(time, rows) if n else time[:0]
    overflow = per_customer(np.abs(units).astype(np.float64)) >= _SAFE_SUM

    # purchases: one per (customer, day), at its first order, worth its non-negative sum
    p_at = np.minimum.reduceat(time, days) if n else time[:0]
    p_value = np.add.reduceat(np.maximum(units, 0), days) if n else units[:0]
    p_customer = customer[days]
    opens = np.ones(len(days), dtype=bool)
    opens[1:] = p_customer[1:] != p_customer[:-1]
    firsts = np.flatnonzero(opens)
    purchases = np.diff(np.append(firsts, len(days)))
    frequency = (purchases - 1).astype(np.float64)
    total = np.add.reduceat(p_value, firsts) if len(firsts) else p_value[:0]
    repeat_value = (total - p_value[firsts]).astype(np.float64) / UNITS_PER_CURRENCY
    monetary = np.where(frequency > 0, repeat_value / np.maximum(frequency, 1.0), 0.0)
    first = p_at[firsts]
    last = p_at[firsts + purchases - 1]
    summary = Summary.of(
        frequency,
        (last - first).astype(np.float64) / MICROS_PER_DAY,
        (as_of - first).astype(np.float64) / MICROS_PER_DAY,
        monetary,
    )
    return OrderTotals(
        customer=customer[rows],
        orders=orders.astype(np.int64),
        revenue=revenue.astype(np.int64),
        ltv_orders=ltv_orders,
        ltv=ltv.astype(np.int64),
        first_at=first_at,
        last_at=last_at,
        summary=summary,
        overflow=overflow,
    )


def _by_customer_and_day(customer: I64, day: I64) -> I64:
    """The permutation that sorts the orders by customer, then day. When customer and day
    fit into one int64 key together with the row number (always, in practice), the keys
    with their row numbers in the low bits are sorted as values (twice as fast as an
    argsort); else a two-key lexsort."""
    c0, c1 = int(customer.min()), int(customer.max())
    d0, d1 = int(day.min()), int(day.max())
    span = d1 - d0 + 1
    keys = (c1 - c0 + 1) * span
    bits = max(1, (len(customer) - 1).bit_length())
    if keys << bits < 2**63:
        packed = (((customer - c0) * span + (day - d0)) << bits) | np.arange(
            len(customer), dtype=np.int64
        )
        packed.sort()
        return np.asarray(packed & ((1 << bits) - 1), dtype=np.int64)
    if keys < 2**63:
        return np.argsort((customer - c0) * span + (day - d0)).astype(np.int64)
    return np.lexsort((day, customer)).astype(np.int64)

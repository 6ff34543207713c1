"""engine.order_totals: the refresh's vectorised pass over the orders gives, per customer,
the sums and counts a plain loop gives (exact integers) and the summaries of
engine.forecast.summarise, the reference; orders after the refresh date are left out, and
a sum that could leave int64 is flagged, not wrapped."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.forecast import summarise
from engine.order_totals import MICROS_PER_DAY, UNITS_PER_CURRENCY, order_totals

DAY = MICROS_PER_DAY
AS_OF = 400 * DAY
SINCE = 100 * DAY

orders = st.lists(
    st.tuples(
        st.integers(-3, 12),  # customer numbers, negative ones included
        # times: whole days (same-day baskets), odd microseconds, around the boundaries
        st.one_of(
            st.integers(-5, 405).map(lambda d: d * DAY),
            st.integers(-5 * DAY, 405 * DAY),
            st.sampled_from([SINCE, SINCE + 1, AS_OF, AS_OF + 1, DAY - 1]),
        ),
        st.integers(-(10**9), 10**12),  # units: refunds (negative) included
    ),
    max_size=80,
)


def _arrays(rows: list[tuple[int, int, int]]) -> tuple[np.ndarray, ...]:
    return tuple(np.array([r[i] for r in rows], dtype=np.int64) for i in range(3))


@settings(max_examples=300, deadline=None)
@given(orders)
def test_totals_are_the_plain_loops_and_the_summaries_the_reference(rows) -> None:
    customer, time, units = _arrays(rows)
    got = order_totals(customer, time, units, since=SINCE, as_of=AS_OF)

    want: dict[int, dict[str, int]] = defaultdict(
        lambda: {"orders": 0, "revenue": 0, "ltv_orders": 0, "ltv": 0}
    )
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for c, t, u in rows:
        if t > AS_OF:
            continue
        w = want[c]
        w["ltv_orders"] += 1
        w["ltv"] += u
        if t > SINCE:
            w["orders"] += 1
            w["revenue"] += u
        first[c] = min(first.get(c, t), t)
        last[c] = max(last.get(c, t), t)
    assert list(got.customer) == sorted(want)
    for i, c in enumerate(got.customer):
        assert (got.orders[i], got.revenue[i], got.ltv_orders[i], got.ltv[i]) == (
            want[c]["orders"],
            want[c]["revenue"],
            want[c]["ltv_orders"],
            want[c]["ltv"],
        )
        assert (got.first_at[i], got.last_at[i]) == (first[c], last[c])
    assert not got.overflow.any()

    ids, ref = summarise(
        customer,
        time / DAY,
        units / UNITS_PER_CURRENCY,
        as_of=AS_OF / DAY,
    )
    assert list(ids) == list(got.customer)
    np.testing.assert_array_equal(got.summary.frequency, ref.frequency)
    np.testing.assert_allclose(got.summary.recency, ref.recency, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(got.summary.age, ref.age, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(got.summary.monetary, ref.monetary, rtol=1e-12, atol=1e-9)


def test_a_basket_of_one_day_is_one_purchase_at_its_first_order() -> None:
    # customer 4: three orders on day 10 (the first at 10.2), one on day 30; customer 9:
    # one order in the window and one after the refresh date, left out
    customer = np.array([4, 4, 9, 4, 4, 9], dtype=np.int64)
    time = np.array(
        [
            10 * DAY + DAY // 2,
            10 * DAY + DAY // 5,
            150 * DAY,
            30 * DAY,
            10 * DAY + DAY - 1,
            AS_OF + 1,
        ],
        dtype=np.int64,
    )
    units = np.array([5, 10, 7, -3, 20, 99], dtype=np.int64) * UNITS_PER_CURRENCY
    got = order_totals(customer, time, units, since=SINCE, as_of=AS_OF)
    assert list(got.customer) == [4, 9]
    assert list(got.summary.frequency) == [1.0, 0.0]
    assert got.summary.recency[0] == pytest.approx(30 - 10.2)
    assert got.summary.age[0] == pytest.approx(400 - 10.2)
    assert list(got.summary.monetary) == [0.0, 0.0]  # the repeat purchase was a refund
    assert list(got.ltv) == [32 * UNITS_PER_CURRENCY, 7 * UNITS_PER_CURRENCY]
    assert list(got.orders) == [0, 1] and list(got.ltv_orders) == [4, 1]


def test_customer_numbers_too_far_apart_for_one_key_sort_by_two() -> None:
    customer = np.array([2**62, -(2**62), 2**62, 0], dtype=np.int64)
    time = np.array([5 * DAY, 3 * DAY, 1 * DAY, 2 * DAY], dtype=np.int64)
    units = np.array([1, 2, 3, 4], dtype=np.int64)
    got = order_totals(customer, time, units, since=0, as_of=AS_OF)
    assert list(got.customer) == [-(2**62), 0, 2**62]
    assert list(got.ltv) == [2, 4, 4] and list(got.summary.frequency) == [0.0, 0.0, 1.0]


def test_customer_numbers_too_far_apart_to_pack_row_numbers_sort_by_one_key() -> None:
    customer = np.array([2**61, 0, 2**61, 0], dtype=np.int64)  # one key, no room for rows
    time = np.array([DAY, DAY, DAY + 5, 2 * DAY], dtype=np.int64)
    units = np.array([1, 2, 3, 4], dtype=np.int64)
    got = order_totals(customer, time, units, since=0, as_of=AS_OF)
    assert list(got.customer) == [0, 2**61]
    assert list(got.summary.frequency) == [1.0, 0.0] and list(got.ltv) == [6, 4]


def test_sums_that_could_leave_int64_are_flagged() -> None:
    big = 2**61
    customer = np.array([1, 1, 1, 2], dtype=np.int64)
    time = np.array([DAY, 2 * DAY, 3 * DAY, DAY], dtype=np.int64)
    units = np.array([big, big, big, 5], dtype=np.int64)
    got = order_totals(customer, time, units, since=0, as_of=AS_OF)
    assert list(got.overflow) == [True, False]


def test_no_orders_are_no_customers() -> None:
    empty = np.zeros(0, dtype=np.int64)
    got = order_totals(empty, empty, empty, since=SINCE, as_of=AS_OF)
    assert len(got) == 0 and len(got.summary) == 0

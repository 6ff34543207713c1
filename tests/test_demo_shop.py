"""The demo's made-up shop (``cli.demo_shop``): deterministic, pure, and realistic within
bounds: seasons, weekends, lapsing customers, NPS answers, the experiment's come-back
rates; and what the demo reads from the published journeys and cuts into batches."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from cli._demo_api import BATCH_BYTES, BATCH_MESSAGES, batches
from cli.demo_experiment import (
    COMEBACK,
    comeback_orders,
    comeback_revenue,
    find_experiment,
    returning,
)
from cli.demo_shop import customer_id, generate
from engine.experiments import assign

END = datetime(2026, 12, 1, 18, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def big():
    # two winters: the December peak is measured on a whole December
    return generate(customers=2000, months=24, seed=3, end=END)


def test_same_seed_same_shop_other_seed_other_shop():
    one = generate(customers=40, months=6, seed=5, end=END).messages()
    assert one == generate(customers=40, months=6, seed=5, end=END).messages()
    other = generate(customers=40, months=6, seed=6, end=END).messages()
    assert {m["messageId"] for m in one}.isdisjoint(m["messageId"] for m in other)


def test_a_smaller_shop_is_the_first_customers_of_a_bigger_one():
    small = generate(customers=10, months=6, seed=5, end=END)
    large = generate(customers=50, months=6, seed=5, end=END)
    assert small.customers == large.customers[:10]
    assert [c.id for c in small.customers][:2] == [customer_id(5, 1), customer_id(5, 2)]


def test_messages_are_in_event_time_unique_and_within_the_period(big):
    messages = big.messages()
    ids = [m["messageId"] for m in messages]
    assert len(ids) == len(set(ids))
    stamps = [datetime.fromisoformat(m["timestamp"]) for m in messages]
    assert stamps == sorted(stamps)
    assert big.start <= stamps[0] and stamps[-1] <= END
    for c in big.customers[:200]:
        for o in c.orders:
            assert c.signed_up_at <= o.at
            assert o.delivered_at is None or o.at < o.delivered_at <= END
    kinds = Counter(m.get("event", m["type"]) for m in messages)
    assert kinds["Signed Up"] == kinds["identify"] == 2000
    assert kinds["Order Completed"] > kinds["Order Delivered"] > 0.9 * kinds["Order Completed"]


def test_only_example_com_addresses_and_non_contact_traits(big):
    for m in big.messages():
        if m["type"] == "identify":
            assert m["traits"]["email"].endswith("@example.com")
            assert set(m["traits"]) == {"email", "first_name", "country", "plan"}


def test_december_peak_and_busier_weekends(big):
    orders = [o for c in big.customers for o in c.orders]
    per_month = Counter((o.at.year, o.at.month) for o in orders)
    # the shop grows, so December is compared with the months around it
    assert per_month[(2025, 12)] > 1.4 * per_month[(2026, 1)]
    assert per_month[(2025, 12)] > 1.3 * per_month[(2025, 10)]
    weekday = Counter(o.at.weekday() for o in orders)
    assert min(weekday[5], weekday[6]) > max(weekday[d] for d in range(4))


def test_revenue_is_skewed_like_a_log_normal(big):
    values = [o.revenue for c in big.customers for o in c.orders]
    assert min(values) > 0
    assert statistics.mean(values) > 1.15 * statistics.median(values)
    top = sorted((c.revenue for c in big.customers), reverse=True)
    assert sum(top[:200]) > 0.35 * sum(top)  # the best tenth bring a large share
    assert 0 < sum(r >= 5000 for r in top) < 0.05 * len(top)  # a few VIPs


def test_a_share_of_buyers_lapse_and_stop_ordering(big):
    buyers = [c for c in big.customers if c.orders]
    assert 0.7 < len(buyers) / len(big.customers) < 0.9
    lapsed = [c for c in buyers if c.lapsed_at is not None]
    assert 0.1 < len(lapsed) / len(buyers) < 0.3
    for c in lapsed:
        assert c.lapsed_at is not None
        assert all(o.at < c.lapsed_at for o in c.orders)
        assert END - c.lapsed_at >= timedelta(days=45)


def test_nps_answers_are_a_plausible_distribution(big):
    surveyed = [c for c in big.customers if c.surveyed]
    answered = [c for c in surveyed if c.nps is not None]
    assert all(any(o.delivered_at for o in c.orders) for c in surveyed)
    assert 0.6 < len(answered) / len(surveyed) < 0.8
    scores = [c.nps for c in answered if c.nps is not None]
    assert all(0 <= s <= 10 for s in scores)
    promoters = sum(s >= 9 for s in scores) / len(scores)
    detractors = sum(s <= 6 for s in scores) / len(scores)
    assert 10 < 100 * (promoters - detractors) < 50  # an ordinary shop's NPS
    happy = [c.nps for c in answered if c.lapsed_at is None and c.nps is not None]
    lapsed = [c.nps for c in answered if c.lapsed_at is not None and c.nps is not None]
    assert statistics.mean(lapsed) < statistics.mean(happy) - 1


def test_come_back_quotas_by_arm():
    ids = [f"c{i}" for i in range(1000)]
    for arm, chance in COMEBACK.items():
        back = returning(1, arm, ids)
        assert len(back) == round(chance * 1000) and set(back) <= set(ids)
        assert back == returning(1, arm, list(reversed(ids)))  # not the order given
    assert returning(1, "unknown_arm", ids) == returning(1, "holdout", ids)
    assert len(returning(1, "holdout", ids[:5])) == 1  # 0.4 rounds to 0: one at least
    assert returning(1, "holdout", ids[:4]) == []  # too few to say anything
    assert all(30 <= comeback_revenue(1, c) <= 150 for c in ids)


def test_the_experiment_is_read_from_the_published_definitions():
    # a published journey's stored JSON: actions keep their kind as the key, as in YAML
    split = {"split": {"experiment": "winback_2026q4", "arms": {"offer_15": 45, "holdout": 10}}}
    offer = {"offer": {"template": "reactivation_offer", "percent_off": 15}}
    winback = {"journey": "winback_test", "states": {"lapsing": {"enter": [split, offer]}}}
    lifecycle = {"journey": "lifecycle", "states": {"new": {"enter": [offer]}}}
    definitions = {"lifecycle": lifecycle, "winback_test": winback}
    found = find_experiment(definitions, "winback_2026q4")
    assert found == ("winback_test", {"offer_15": 45, "holdout": 10})
    assert find_experiment(definitions, "other") is None
    assert find_experiment({"lifecycle": lifecycle}, "winback_2026q4") is None
    broken = {"x": {"states": {"a": {"enter": [{"split": {"experiment": "winback_2026q4"}}]}}}}
    assert find_experiment(broken, "winback_2026q4") is None  # no arms: not an experiment


def test_batches_stay_under_the_api_limits(big):
    messages = big.messages()
    cut = list(batches(messages))
    assert [m for b in cut for m in b] == messages
    for b in cut:
        assert len(b) <= BATCH_MESSAGES
        assert len(json.dumps({"batch": b}).encode()) < BATCH_BYTES + 1024
    fat = [{"messageId": str(i), "properties": {"note": "x" * 20_000}} for i in range(50)]
    assert all(len(json.dumps({"batch": b}).encode()) < BATCH_BYTES + 1024 for b in batches(fat))


def test_come_back_orders_follow_the_recorded_arm_after_the_split():
    arms = {"offer_15": 45, "offer_25": 45, "holdout": 10}
    split = END - timedelta(minutes=5)
    ids = [f"demo1-{i:05d}" for i in range(6000)]
    enrolled = {c: (assign("winback_2026q4", arms, c), split) for c in ids}
    enrolled["demo1-00001"] = ("holdout", END + timedelta(hours=1))  # split in the future
    coupons = {c: f"JRN-{i}" for i, c in enumerate(ids)}
    plan = comeback_orders(1, "winback_2026q4", arms, enrolled, coupons, END)
    assert plan == comeback_orders(1, "winback_2026q4", arms, enrolled, coupons, END)
    assert sum(plan.by_arm.values()) == len(ids)
    back = Counter(enrolled[o["userId"]][0] for o in plan.orders)
    for arm, chance in COMEBACK.items():
        assert back[arm] == round(chance * plan.by_arm[arm])
    expected_differing = (
        [] if assign("winback_2026q4", arms, "demo1-00001") == "holdout" else ["demo1-00001"]
    )
    assert plan.differing == expected_differing
    for o in plan.orders:
        customer = o["userId"]
        assert datetime.fromisoformat(o["timestamp"]) > enrolled[customer][1]
        assert o["properties"]["coupon"] == coupons[customer]
        assert o["properties"]["revenue"] > 0 and o["messageId"] == f"{customer}:came_back"

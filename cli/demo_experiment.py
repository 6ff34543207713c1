"""The win-back experiment in ``journeys demo``: which published journey splits customers
into it (read from the stored definitions, whatever else their shape), and the orders of
the enrolled customers who come back, more of them in the arms with a better offer, so
the report's lift has something to show. Pure."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from engine.experiments import assign

# share of each arm's customers who come back within the goal's window: what the lift shows
COMEBACK = {"holdout": 0.08, "offer_15": 0.14, "offer_25": 0.19}


def find_experiment(
    definitions: dict[str, Any], experiment: str
) -> tuple[str, dict[str, int]] | None:
    """The journey whose published definition (journey -> its stored JSON) splits
    customers into ``experiment``, and the experiment's arms (name -> weight); None when
    no journey has it."""
    for name, definition in sorted(definitions.items()):
        found = _split(definition, experiment)
        if found is not None:
            return name, found
    return None


def _split(node: Any, experiment: str) -> dict[str, int] | None:
    if isinstance(node, dict):
        spec = node.get("split")
        if isinstance(spec, dict) and spec.get("experiment") == experiment:
            arms = spec.get("arms")
            if isinstance(arms, dict) and arms:
                return {str(k): int(v) for k, v in arms.items()}
        children: list[Any] = list(node.values())
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _split(child, experiment)
        if found is not None:
            return found
    return None


def _unit(*parts: object) -> float:
    """A uniform number in [0, 1) from ``parts``: the same parts, the same number."""
    digest = hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()
    return int(digest[:15], 16) / 16**15


def returning(seed: int, arm: str, customers: list[str]) -> list[str]:
    """Of the customers in one ``arm``, those who come back: the arm's share
    (:data:`COMEBACK`; an arm the demo does not know, the holdout's) rounded, and at least
    one of five or more, chosen by a seeded draw. A quota rather than a coin per customer:
    a small shop's arms hold a few dozen customers, where chance alone would often leave
    the holdout with no conversion and the lift with nothing to compare against."""
    chance = COMEBACK.get(arm, COMEBACK["holdout"])
    quota = math.floor(chance * len(customers) + 0.5)
    if quota == 0 and len(customers) >= 5:
        quota = 1
    return sorted(customers, key=lambda c: (_unit("comeback", seed, c), c))[:quota]


def comeback_revenue(seed: int, customer: str) -> float:
    """What a customer who comes back orders: 30-150 EUR."""
    return round(30 + 120 * _unit("comeback-revenue", seed, customer), 2)


def comeback_message(
    customer: str, revenue: float, at: datetime, coupon: str | None
) -> dict[str, Any]:
    """The order of a customer who came back; it carries the coupon of their offer, if any
    (Segment's e-commerce spec), which redeems it."""
    props: dict[str, Any] = {"order_id": f"{customer}-back", "revenue": revenue, "currency": "EUR"}
    if coupon:
        props["coupon"] = coupon
    return {
        "type": "track",
        "userId": customer,
        "event": "Order Completed",
        "messageId": f"{customer}:came_back",
        "timestamp": at.isoformat(timespec="milliseconds"),
        "properties": props,
    }


@dataclass(frozen=True)
class Comebacks:
    """The come-back orders of an experiment's enrolled customers, their arms as the
    workflows recorded them, and the customers whose recorded arm is not the one
    :func:`engine.experiments.assign` gives (none, unless the weights changed)."""

    orders: list[dict[str, Any]]
    by_arm: dict[str, int]
    differing: list[str]


def comeback_orders(
    seed: int,
    experiment: str,
    arms: dict[str, int],
    enrolled: dict[str, tuple[str, datetime]],
    coupons: dict[str, str],
    now: datetime,
) -> Comebacks:
    """Which of the ``enrolled`` customers (id -> recorded arm and time of the split) come
    back, each with an order after their split (so it counts towards the goal) that uses
    their coupon. The recorded arm decides: it is the one the lift is measured by; it is
    the arm :func:`engine.experiments.assign` gives, unless the weights changed after
    the customer's split (sticky), and such customers are listed."""
    differing = [
        c for c, (arm, _) in sorted(enrolled.items()) if assign(experiment, arms, c) != arm
    ]
    members: dict[str, list[str]] = {name: [] for name in sorted(arms)}
    for customer, (arm, _) in sorted(enrolled.items()):
        members.setdefault(arm, []).append(customer)
    orders = []
    for arm, customers in members.items():
        for customer in sorted(returning(seed, arm, customers)):
            at = max(now, enrolled[customer][1] + timedelta(seconds=1))
            revenue = comeback_revenue(seed, customer)
            orders.append(comeback_message(customer, revenue, at, coupons.get(customer)))
    by_arm = {arm: len(customers) for arm, customers in members.items()}
    return Comebacks(orders, by_arm, differing)

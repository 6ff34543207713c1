"""The made-up shop of ``journeys demo``: customers and their history as Segment messages.

Pure and seeded: the same ``seed``, size and end time give the same shop, message ids
included, so sending it twice stores nothing the second time. Each customer has a random
generator of their own (seeded by the shop's seed and their number), so a smaller shop is
the first customers of a bigger one.

What it models, over ``months`` ending at ``end``:

* sign-ups spread over the period, more of them lately (a growing shop), each with an
  ``identify`` of non-contact traits (country, plan) and a fake address on example.com;
* orders as a thinned Poisson process per customer: a rate of their own (log-normal),
  a yearly season (a December peak, a quiet January) and a weekly one (weekends);
* order values log-normal around a median that depends on the plan;
* a delivery 1-5 days after each order that is delivered by ``end``;
* a share of buyers who lapse: they stop ordering between 5 and 1.5 months before ``end``,
  which is what the segment refresh as of today sees as slipping away;
* an NPS answer for some of the customers with a delivery (lapsed ones are less happy).

Who of them comes back in the win-back experiment is ``cli.demo_experiment``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

DAY = timedelta(days=1)
MONTH_DAYS = 30.44
# a yearly season: orders per month relative to an ordinary one (index 0: January)
SEASON = (0.75, 0.8, 0.95, 1.0, 1.0, 0.95, 0.9, 0.9, 1.0, 1.1, 1.45, 1.95)
WEEKDAY = (0.9, 0.9, 0.95, 1.0, 1.1, 1.3, 1.2)  # Monday .. Sunday
_PEAK = max(SEASON) * max(WEEKDAY)
COUNTRIES = (("DE", 35), ("FR", 15), ("GB", 15), ("US", 15), ("NL", 10), ("ES", 10))
PLANS = (("free", 60), ("plus", 30), ("business", 10))
MEDIAN_ORDER = {"free": 45.0, "plus": 70.0, "business": 260.0}  # revenue, log-normal median
FIRST_NAMES = ("Ada", "Ben", "Chloé", "Dario", "Emma", "Finn", "Grace", "Hugo", "Ines", "Jon")
BUYERS = 0.82  # customers who order at least once
LAPSING = 0.25  # buyers who stop ordering
SURVEYED = 0.45  # customers with a delivery who are asked for an NPS score
ANSWERING = 0.7  # of those, who answer


@dataclass(frozen=True)
class Order:
    number: int
    at: datetime
    revenue: float
    delivered_at: datetime | None


@dataclass
class Customer:
    id: str
    signed_up_at: datetime
    country: str
    plan: str
    first_name: str
    lapsed_at: datetime | None = None  # when they stopped ordering; None: they did not
    orders: list[Order] = field(default_factory=list)
    surveyed: bool = False  # asked for an NPS score after their last delivery
    nps: int | None = None  # their answer, when they answer

    @property
    def email(self) -> str:
        return f"{self.id}@example.com"  # example.com never receives mail (RFC 2606)

    @property
    def revenue(self) -> float:
        return round(sum(o.revenue for o in self.orders), 2)


@dataclass(frozen=True)
class Shop:
    seed: int
    start: datetime
    end: datetime
    customers: list[Customer]

    def messages(self) -> list[dict[str, Any]]:
        """Every customer's history as Segment messages, in event-time order (so each
        customer's events reach their journeys in the order they happened)."""
        out: list[tuple[datetime, str, dict[str, Any]]] = []
        for c in self.customers:
            for m in customer_messages(c):
                out.append((_parse(m["timestamp"]), m["messageId"], m))
        out.sort(key=lambda t: (t[0], t[1]))
        return [m for _, _, m in out]


def customer_id(seed: int, number: int) -> str:
    """The id of the shop's customer ``number`` (from 1)."""
    return f"demo{seed}-{number:04d}"


def generate(*, customers: int, months: int, seed: int, end: datetime) -> Shop:
    """The shop: ``customers`` customers with ``months`` of history up to ``end`` (aware)."""
    if customers < 1 or months < 1:
        raise ValueError("a shop needs at least one customer and one month")
    start = end - timedelta(days=months * MONTH_DAYS)
    people = [_customer(seed, n, start, end) for n in range(1, customers + 1)]
    return Shop(seed, start, end, people)


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def season(at: datetime) -> float:
    """How busy the shop is at ``at`` relative to an ordinary weekday of an ordinary month."""
    return SEASON[at.month - 1] * WEEKDAY[at.weekday()]


def _customer(seed: int, number: int, start: datetime, end: datetime) -> Customer:
    rng = random.Random(f"journeys-demo:{seed}:{number}")
    span = (end - start).total_seconds()
    # u**0.85 puts more sign-ups late in the period: the shop grows
    signed_up = start + timedelta(seconds=span * rng.random() ** 0.85 * 0.99)
    c = Customer(
        id=customer_id(seed, number),
        signed_up_at=signed_up,
        country=_weighted(rng, COUNTRIES),
        plan=_weighted(rng, PLANS),
        first_name=rng.choice(FIRST_NAMES),
    )
    if rng.random() >= BUYERS:
        return c
    per_month = rng.lognormvariate(math.log(0.55), 0.6) * (1.6 if c.plan == "business" else 1.0)
    median = MEDIAN_ORDER[c.plan] * rng.lognormvariate(0, 0.35)
    first = signed_up + timedelta(days=rng.expovariate(1 / 3))
    stop = end
    if rng.random() < LAPSING:
        lapse = end - timedelta(days=rng.uniform(45, 150))
        if lapse > first + 30 * DAY:
            stop, c.lapsed_at = lapse, lapse
    at = first
    while at < stop:
        if at == first or rng.random() < season(at) / _PEAK:
            revenue = round(median * rng.lognormvariate(0, 0.45), 2)
            delivered = at + timedelta(days=rng.uniform(1, 5))
            number = len(c.orders) + 1
            c.orders.append(Order(number, at, revenue, delivered if delivered < end else None))
        # candidates at the peak rate, thinned by the season: a non-homogeneous Poisson process
        at += timedelta(days=rng.expovariate(per_month * _PEAK / MONTH_DAYS))
    if any(o.delivered_at for o in c.orders) and rng.random() < SURVEYED:
        c.surveyed = True
        if rng.random() < ANSWERING:
            c.nps = _score(rng, unhappy=c.lapsed_at is not None)
    return c


def _score(rng: random.Random, *, unhappy: bool) -> int:
    """An NPS answer: promoters (9-10), passives (7-8), detractors (0-6)."""
    kind = rng.choices(
        ("promoter", "passive", "detractor"), (20, 30, 50) if unhappy else (55, 30, 15)
    )
    if kind[0] == "promoter":
        return rng.choice((9, 10, 10))
    if kind[0] == "passive":
        return rng.choice((7, 8, 8))
    return rng.choice((0, 2, 3, 4, 5, 5, 6, 6))


def _stamp(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def customer_messages(c: Customer) -> list[dict[str, Any]]:
    """One customer's Segment messages: sign-up, identify, orders and deliveries."""
    key = c.id
    out: list[dict[str, Any]] = [
        {
            "type": "track",
            "userId": c.id,
            "event": "Signed Up",
            "messageId": f"{key}:signed_up",
            "timestamp": _stamp(c.signed_up_at),
            "properties": {"plan": c.plan, "country": c.country},
        },
        {
            "type": "identify",
            "userId": c.id,
            "messageId": f"{key}:identify",
            "timestamp": _stamp(c.signed_up_at + timedelta(seconds=1)),
            "traits": {
                "email": c.email,
                "first_name": c.first_name,
                "country": c.country,
                "plan": c.plan,
            },
        },
    ]
    for o in c.orders:
        order_id = f"{key}-{o.number:03d}"
        out.append(
            {
                "type": "track",
                "userId": c.id,
                "event": "Order Completed",
                "messageId": f"{key}:order:{o.number}",
                "timestamp": _stamp(o.at),
                "properties": {"order_id": order_id, "revenue": o.revenue, "currency": "EUR"},
            }
        )
        if o.delivered_at is not None:
            out.append(
                {
                    "type": "track",
                    "userId": c.id,
                    "event": "Order Delivered",
                    "messageId": f"{key}:delivered:{o.number}",
                    "timestamp": _stamp(o.delivered_at),
                    "properties": {"order_id": order_id},
                }
            )
    return out

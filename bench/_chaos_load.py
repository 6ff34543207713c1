"""The chaos run's load: every customer's messages, each sent twice in shuffled order by
concurrent senders over HTTP, retried as an SDK retries (5xx, 429, connection errors)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

REVENUE = 10.0  # per order: far from the VIP threshold, so no manager pool is needed
EMAIL_DOMAIN = "chaos-bench.example"
GIVE_UP_SECONDS = 300.0  # a batch no retry got through for this long is reported unsent


@dataclass(frozen=True)
class Customer:
    id: str
    email: str
    orders: list[str]  # the messageIds of their Order Completed events


@dataclass
class Load:
    """What was sent: the customers, every distinct message, and the batches to post."""

    customers: list[Customer]
    messages: dict[str, dict[str, Any]]  # messageId -> message
    batches: list[list[dict[str, Any]]]


def build_load(*, customers: int, events: int, batch: int, seed: int, run: str) -> Load:
    """``customers`` each get an identify with an email, a ``Signed Up`` and their share of
    ``events`` orders (timestamps in that order); every message twice, all shuffled."""
    rng = random.Random(seed)
    zone = daytime_zone(datetime.now(UTC))
    start = datetime.now(UTC) - timedelta(minutes=5)
    people: list[Customer] = []
    messages: dict[str, dict[str, Any]] = {}
    for i in range(customers):
        cid = f"chaos-{run}-{i}"
        email = f"{cid}@{EMAIL_DOMAIN}"
        n = events // customers + (1 if i < events % customers else 0)
        at = start + timedelta(milliseconds=i)

        def stamp(k: int, at: datetime = at) -> str:
            return (at + timedelta(seconds=k)).isoformat()

        messages[f"{cid}-identify"] = {
            "type": "identify",
            "userId": cid,
            "messageId": f"{cid}-identify",
            # a time zone where it is day now, so quiet hours do not defer the welcome
            "traits": {"email": email, "first_name": f"Customer {i}", "timezone": zone},
            "timestamp": stamp(0),
        }
        messages[f"{cid}-signup"] = {
            "type": "track",
            "userId": cid,
            "event": "Signed Up",
            "messageId": f"{cid}-signup",
            "timestamp": stamp(1),
        }
        orders = [f"{cid}-order-{k}" for k in range(n)]
        for k, mid in enumerate(orders):
            messages[mid] = {
                "type": "track",
                "userId": cid,
                "event": "Order Completed",
                "messageId": mid,
                "properties": {"revenue": REVENUE, "order_id": mid},
                "timestamp": stamp(2 + k),
            }
        people.append(Customer(cid, email, orders))
    sends = [*messages.values(), *messages.values()]
    rng.shuffle(sends)
    batches = [sends[i : i + batch] for i in range(0, len(sends), batch)]
    return Load(people, messages, batches)


def daytime_zone(now: datetime) -> str:
    """An IANA zone where it is about 13:00 now (``Etc/GMT-3`` is UTC+3)."""
    offset = (13 - now.hour + 12) % 24 - 12  # -12..+11 hours from UTC
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


@dataclass
class SendStats:
    """What the senders saw: requests, retries by cause, refusals, time."""

    requests: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)  # 4xx other than 429: a bug here
    unsent: int = 0  # messages in batches given up after GIVE_UP_SECONDS
    seconds: float = 0.0


async def send_all(
    url: str, key: str, load: Load, *, senders: int, spread: float, seed: int
) -> SendStats:
    """Post ``load.batches`` from ``senders`` concurrent clients, paced evenly over
    ``spread`` seconds (so the faults land while events flow), each batch retried until
    the API accepts it."""
    stats = SendStats()
    queue: asyncio.Queue[tuple[int, list[dict[str, Any]]]] = asyncio.Queue()
    for n, b in enumerate(load.batches):
        queue.put_nowait((n, b))
    started = time.monotonic()
    gap = spread / max(1, len(load.batches))

    async def sender(rng: random.Random) -> None:
        async with httpx.AsyncClient(base_url=url, auth=(key, ""), timeout=30) as http:
            while not queue.empty():
                n, batch = queue.get_nowait()
                await asyncio.sleep(max(0.0, started + n * gap - time.monotonic()))
                await _post(http, batch, stats, rng)

    rngs = [random.Random(seed * 1000 + i) for i in range(senders)]
    await asyncio.gather(*(sender(r) for r in rngs))
    stats.seconds = time.monotonic() - started
    return stats


async def _post(
    http: httpx.AsyncClient, batch: list[dict[str, Any]], stats: SendStats, rng: random.Random
) -> None:
    delay, deadline = 0.25, time.monotonic() + GIVE_UP_SECONDS
    while True:
        stats.requests += 1
        try:
            r = await http.post("/v1/batch", json={"batch": batch})
        except httpx.TransportError as exc:
            cause, wait = f"connection ({type(exc).__name__})", delay
        else:
            if r.status_code == 200:
                return
            if r.status_code != 429 and r.status_code < 500:
                stats.refused.append(f"{r.status_code} {r.text[:200]}")
                return
            cause = f"HTTP {r.status_code} {_error_code(r)}".strip()
            wait = max(delay, _retry_after(r))
        stats.retries[cause] += 1
        if time.monotonic() + wait > deadline:
            stats.unsent += len(batch)
            return
        await asyncio.sleep(wait * (0.5 + rng.random()))  # jitter, as SDKs do
        delay = min(delay * 2, 5.0)


def _error_code(r: httpx.Response) -> str:
    try:
        return str(r.json().get("error", ""))
    except ValueError:
        return ""


def _retry_after(r: httpx.Response) -> float:
    try:
        return min(10.0, float(r.headers.get("Retry-After", "0")))
    except ValueError:
        return 0.0

"""Delivering the outbox to customer workflows.

One dispatcher at a time (a PostgreSQL advisory lock elects it among API replicas) takes the
customers whose oldest waiting event is oldest, and sends each of them one
signal-with-start with all of their waiting events (up to ``per_customer``) in order, with
the customer's current traits (contact details removed). A backlog therefore coalesces:
the slower Temporal is, the more events each signal carries, so the cost per event falls
exactly when it matters, and no customer waits behind another's flood.

Rows are deleted only after Temporal accepted the signal; if it did and
we crashed before deleting, the event is delivered again and the workflow, which
remembers event ids, ignores it. While Temporal is down rows wait, and ingestion goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from engine.identity import redact_properties, redact_traits
from engine.model import Event
from runtime import customers
from store import catalog as catalog_store
from workflows.io import CustomerPatch

log = logging.getLogger(__name__)
_LEADER_LOCK = 0x4A6F7579


@dataclass
class Delivery:
    customers: int = 0
    events: int = 0
    failed: int = 0
    capped: bool = False  # some customer had more waiting than one signal takes


class Dispatcher:
    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        conninfo: str,
        client: Callable[[], Awaitable[Client]],
        *,
        task_queue: str,
        batch_size: int = 2000,
        per_customer: int = 100,
        concurrency: int = 64,
        on_delivered: Callable[[Delivery, float], None] | None = None,
        ids: customers.CustomerIds | None = None,
    ) -> None:
        self.pool = pool
        self.conninfo = conninfo
        self.client = client
        self.task_queue = task_queue
        self.batch_size = batch_size  # customers per round
        self.per_customer = per_customer
        self.concurrency = concurrency
        self.on_delivered = on_delivered
        self.ids = ids or customers.default_ids()
        self.is_leader = False
        self._seq = (0, 0.0)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; waits its turn while another process leads."""
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True
                ) as leader:
                    await self._lead(leader, stop)
            except (psycopg.Error, OSError) as exc:
                self.is_leader = False
                log.warning("dispatcher lost the database (%s); retrying", exc)
                await _sleep(stop, 2.0)

    async def _lead(self, leader: psycopg.AsyncConnection[Any], stop: asyncio.Event) -> None:
        while not stop.is_set():
            cur = await leader.execute("SELECT pg_try_advisory_lock(%s)", (_LEADER_LOCK,))
            row = await cur.fetchone()
            if row and row[0]:
                break
            await _sleep(stop, 2.0)
        if stop.is_set():
            return
        self.is_leader = True
        await leader.execute("LISTEN journeys_outbox")
        backoff = 0.5
        notifies = leader.notifies(timeout=1.0)
        try:
            while not stop.is_set():
                try:
                    done = await self.deliver_once()
                except Exception as exc:
                    log.warning("delivery failed (%s); retrying in %.1fs", exc, backoff)
                    await _sleep(stop, backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                if done.failed:
                    await _sleep(stop, backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                backoff = 0.5
                if done.customers < self.batch_size and not done.capped:
                    try:
                        async for _ in notifies:
                            break
                    except StopAsyncIteration:
                        pass
                    notifies = leader.notifies(timeout=1.0)
        finally:
            self.is_leader = False

    async def _catalog_seq(self) -> int:
        seq, at = self._seq
        if time.monotonic() - at > 2.0:
            async with self.pool.connection() as conn:
                seq = (await catalog_store.head(conn))[0]
            self._seq = (seq, time.monotonic())
        return seq

    async def deliver_once(self) -> Delivery:
        """One round: up to ``batch_size`` customers, oldest waiting first, one signal each
        with their waiting events in order."""
        started = time.monotonic()
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "WITH next AS ("
                "   SELECT customer_id FROM outbox GROUP BY customer_id"
                "   ORDER BY min(event_id) LIMIT %s),"
                " waiting AS ("
                "   SELECT o.event_id, o.customer_id, row_number() OVER ("
                "     PARTITION BY o.customer_id ORDER BY o.event_id) AS n"
                "   FROM outbox o JOIN next USING (customer_id))"
                " SELECT w.event_id, w.customer_id, e.name, e.event_time, e.properties, w.n"
                " FROM waiting w JOIN events e ON e.id = w.event_id"
                " WHERE w.n <= %s ORDER BY w.event_id",
                (self.batch_size, self.per_customer + 1),
            )
            rows = await cur.fetchall()
            if not rows:
                return Delivery()
            capped = any(r[5] > self.per_customer for r in rows)
            rows = [r[:5] for r in rows if r[5] <= self.per_customer]
            ids = sorted({r[1] for r in rows})
            # what the journeys may know of each customer now: traits (without contact
            # details) and the latest tier, segment and RFM scores
            cur = await conn.execute(
                "SELECT i.id, c.traits, m.segment, m.tier, m.r, m.f, m.m, m.ltv"
                " FROM unnest(%s::text[]) AS i(id)"
                " LEFT JOIN customers c ON c.customer_id = i.id"
                " LEFT JOIN customer_metrics m ON m.customer_id = i.id",
                (ids,),
            )
            patches = {r[0]: _patch(*r[1:]) for r in await cur.fetchall()}
        grouped: OrderedDict[str, list[tuple[int, Event]]] = OrderedDict()
        for event_id, customer_id, name, at, props in rows:
            # contact details and free text stay in PostgreSQL (engine.identity)
            props = redact_properties(name, props or {})
            event = Event(name=name, id=f"event-{event_id}", timestamp=at, properties=props)
            grouped.setdefault(customer_id, []).append((event_id, event))
        seq = await self._catalog_seq()
        client = await self.client()
        gate = asyncio.Semaphore(self.concurrency)

        rpc: list[float] = []

        async def send(customer_id: str, items: list[tuple[int, Event]]) -> str | None:
            patch = patches.get(customer_id)
            async with gate:
                t0 = time.monotonic()
                try:
                    await customers.send_events(
                        client,
                        customer_id,
                        [e for _, e in items],
                        task_queue=self.task_queue,
                        catalog_seq=seq,
                        customer=patch,
                        ids=self.ids,
                    )
                except Exception as exc:
                    return f"{type(exc).__name__}: {exc}"[:500]
                rpc.append(time.monotonic() - t0)
            return None

        results = await asyncio.gather(*(send(c, items) for c, items in grouped.items()))
        delivered = [
            eid
            for (c, items), err in zip(grouped.items(), results, strict=True)
            if err is None
            for eid, _ in items
        ]
        failed = [
            (eid, err)
            for (c, items), err in zip(grouped.items(), results, strict=True)
            if err is not None
            for eid, _ in items
        ]
        async with self.pool.connection() as conn:
            if delivered:
                await conn.execute("DELETE FROM outbox WHERE event_id = ANY(%s)", (delivered,))
            if failed:
                await conn.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = %s"
                    " WHERE event_id = ANY(%s)",
                    (failed[0][1], [f[0] for f in failed]),
                )
                log.warning("%d event(s) not delivered yet: %s", len(failed), failed[0][1])
        result = Delivery(
            customers=len(grouped), events=len(delivered), failed=len(failed), capped=capped
        )
        took = time.monotonic() - started
        log.debug(
            "round: %d events to %d customers in %.2fs, signal p50 %.0f ms",
            result.events,
            result.customers,
            took,
            1000 * sorted(rpc)[len(rpc) // 2] if rpc else 0.0,
        )
        if self.on_delivered:
            self.on_delivered(result, took)
        return result


def _patch(
    traits: dict[str, Any] | None,
    segment: str | None,
    tier: str | None,
    r: int | None,
    f: int | None,
    m: int | None,
    ltv: Any,
) -> CustomerPatch | None:
    if traits is None and segment is None:
        return None
    patch = CustomerPatch(traits=redact_traits(traits) if traits is not None else None)
    if segment is not None:
        patch.segment, patch.tier = segment, tier
        patch.rfm = {"r": r or 0, "f": f or 0, "m": m or 0}
        patch.ltv = float(ltv or 0)
    return patch


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)

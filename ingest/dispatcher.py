"""Delivering the outbox to customer workflows.

Any number of dispatchers run (in API processes and in ``journeys dispatch`` processes):
each delivers the outbox partitions it holds (``ingest._ownership``: the 64 partitions,
by a hash of the customer id, dealt among the dispatchers alive, rebalanced when one starts
or dies), so a customer is delivered by one dispatcher at a time, in order. Each round a
dispatcher takes the customers of its partitions whose oldest waiting event is oldest,
and sends each of them signal-with-starts
with their waiting events (up to ``per_customer`` a round) in order, with the customer's
current traits (contact details removed). A backlog therefore coalesces: the slower
Temporal is, the more events each signal carries, so the cost per event falls exactly when
it matters, and no customer waits behind another's flood.

Each signal stays under a byte budget (``ingest._signals``, 512 KB; Temporal refuses 2 MB),
so a customer's backlog may take several signals, sent one after the other in event order;
each is encoded and decoded with the workflow's data converter before it is sent. An event
that can never be delivered (it does not survive that round trip, is over the budget even
alone, or Temporal refuses it as invalid) moves to the dead letters
(``store.dead_letters``) with the reason, and the customer's later events go on. Any other
failure (Temporal unreachable, a timeout) backs off that customer alone, doubling from 1 s
to 30 s: the others are delivered meanwhile.

Rows are deleted only after Temporal accepted their signal; if it did and
we crashed before deleting, the event is delivered again and the workflow, which
remembers event ids, ignores it. While Temporal is down rows wait, and ingestion goes on.

After each round's events come the merges of customers waiting for their workflows
(``ingest._merges``), delivered by the holder of partition 0: ``store.identity.merge``
notifies the dispatchers as an event does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from engine.catalog import Catalog
from engine.identity import redact_properties
from engine.model import Event
from orchestration import customers
from store import catalog as catalog_store
from store import customers as customer_store
from store import dead_letters, outbox
from workflows.io import CustomerPatch, EventsSignal

from . import _merges, _signals
from ._ownership import Ownership
from ._signals import Item, policy_zones

__all__ = ["Delivery", "Dispatcher", "policy_zones"]

log = logging.getLogger(__name__)


@dataclass
class Delivery:
    customers: int = 0
    events: int = 0
    failed: int = 0
    capped: bool = False  # some customer had more waiting than one round takes
    dead: int = 0  # events moved to dead letters
    signals: int = 0
    merges: int = 0  # merges delivered to both customers' workflows
    merges_failed: int = 0


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
        signal_budget: int = _signals.SIGNAL_BUDGET,
        min_backoff: float = 1.0,
        max_backoff: float = 30.0,
        ids: customers.CustomerIds | None = None,
        time_zones: dict[str, str] | None = None,
    ) -> None:
        self.pool = pool
        # given (the policy's, Policy.time_zones): a customer without a workflow yet gets
        # the catalog with the start, and their first task no load_catalog local activity
        self.time_zones = time_zones
        self._catalogs = catalog_store.Loader()
        self.conninfo = conninfo
        self.client = client
        self.task_queue = task_queue
        self.batch_size = batch_size  # customers per round
        self.per_customer = per_customer
        self.concurrency = concurrency
        self.on_delivered = on_delivered
        self.signal_budget = signal_budget
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self._backoff: dict[str, tuple[float, float]] = {}  # customer -> (until, delay)
        self.ids = ids or customers.default_ids()
        self._seq = (0, 0.0)
        self.ownership: Ownership | None = None  # while it runs: its partitions

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver this dispatcher's share until ``stop`` is set; join again (after 2 s)
        whenever its session connection, and with it its partitions, is lost."""
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True
                ) as session:
                    await self._lead(session, stop)
            except (psycopg.Error, OSError) as exc:
                log.warning("dispatcher lost the database (%s); retrying", exc)
                await _sleep(stop, 2.0)

    async def _lead(self, session: psycopg.AsyncConnection[Any], stop: asyncio.Event) -> None:
        own = None
        while not stop.is_set():
            own = await Ownership.join(session)
            if own is not None:
                break
            log.info("a dispatcher of an older version delivers the outbox; waiting")
            await _sleep(stop, 2.0)
        if own is None:
            return
        self.ownership = own
        await outbox.listen(session)
        backoff = 0.5
        while not stop.is_set():
            try:
                held = await own.rebalance()
                done = await self.deliver_once(sorted(held), merges=own.delivers_merges)
            except Exception as exc:
                if session.closed or session.broken:
                    raise  # the session went and its locks with it: join again
                log.warning("delivery failed (%s); retrying in %.1fs", exc, backoff)
                await _sleep(stop, backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 0.5
            more_merges = done.merges >= _merges.PER_ROUND
            if done.customers < self.batch_size and not done.capped and not more_merges:
                await outbox.notified(session, 1.0)

    async def _catalog_seq(self) -> int:
        seq, at = self._seq
        if time.monotonic() - at > 2.0:
            async with self.pool.connection() as conn:
                seq = (await catalog_store.head(conn)).seq
            self._seq = (seq, time.monotonic())
        return seq

    async def deliver_once(
        self, partitions: list[int] | None = None, *, merges: bool = True
    ) -> Delivery:
        """One round: up to ``batch_size`` customers (of ``partitions`` if given), oldest
        waiting first (but not those backing off), their waiting events in order, in as
        many signals as the byte budget needs; then, if ``merges``, the merges waiting for
        the customers' workflows, in order."""
        if partitions is not None and not partitions:
            return Delivery()  # this dispatcher's share is still held by others
        result = await self._deliver_events(partitions)
        if not merges:
            return result
        merged = await _merges.deliver_merges(
            self.pool,
            self.client,
            task_queue=self.task_queue,
            catalog_seq=self._catalog_seq,
            ids=self.ids,
        )
        result.merges, result.merges_failed = merged.delivered, merged.failed
        return result

    async def _deliver_events(self, partitions: list[int] | None) -> Delivery:
        started = time.monotonic()
        resting = self._resting()
        async with self.pool.connection() as conn:
            # one more than a round takes: whether some customer has more waiting
            rows = await outbox.waiting(
                conn,
                resting=resting,
                customers=self.batch_size,
                per_customer=self.per_customer + 1,
                partitions=partitions,
            )
            if not rows:
                return Delivery()
            capped = any(r.n > self.per_customer for r in rows)
            rows = [r for r in rows if r.n <= self.per_customer]
            ids = sorted({r.customer_id for r in rows})
            # what the journeys may know of each customer now: traits (without contact
            # details) and the latest tier, segment and RFM scores
            standings = await customer_store.standings(conn, ids)
            patches = {s.customer_id: _signals.patch_of(s) for s in standings}
            seq = await self._catalog_seq()
            catalog = None
            if self.time_zones is not None and not all(s.seen for s in standings):
                catalog = await self._catalogs.load(conn, min_seq=seq, zones=self.time_zones)
                seq = max(seq, catalog.seq)
        new = {s.customer_id for s in standings if not s.seen}  # no workflow has written yet
        grouped: OrderedDict[str, list[Item]] = OrderedDict()
        for r in rows:
            # contact details and free text stay in PostgreSQL (engine.identity)
            props = redact_properties(r.name, r.properties or {})
            event = Event(
                name=r.name, id=f"event-{r.event_id}", timestamp=r.event_time, properties=props
            )
            grouped.setdefault(r.customer_id, []).append((r.event_id, event))
        client = await self.client()
        gate = asyncio.Semaphore(self.concurrency)
        rpc: list[float] = []
        outcomes: dict[str, _Outcome] = {}

        async def send(customer_id: str, items: list[Item]) -> None:
            async with gate:
                given = catalog if customer_id in new else None
                outcomes[customer_id] = await self._deliver(
                    client, customer_id, items, patches.get(customer_id), seq, rpc, given
                )

        await asyncio.gather(*(send(c, items) for c, items in grouped.items()))
        delivered = [e for o in outcomes.values() for e in o.delivered]
        failed = {e: o.error for o in outcomes.values() for e in o.failed}
        dead = {e: why for o in outcomes.values() for e, why in o.dead.items()}
        async with self.pool.connection() as conn:
            await outbox.delivered(conn, delivered)
            buried = await dead_letters.bury(conn, dead)
            await outbox.failed(conn, failed)
        for customer_id, o in outcomes.items():
            self._rest(customer_id, failed=bool(o.failed))
        if failed:
            log.warning(
                "%d event(s) of %d customer(s) not delivered yet: %s",
                len(failed),
                sum(1 for o in outcomes.values() if o.failed),
                next(iter(failed.values())),
            )
        if dead:
            log.error("%d event(s) moved to dead letters: %s", buried, next(iter(dead.values())))
        result = Delivery(
            customers=len(grouped),
            events=len(delivered),
            failed=len(failed),
            capped=capped,
            dead=buried,
            signals=len(rpc),
        )
        took = time.monotonic() - started
        log.debug(
            "round: %d events in %d signals to %d customers in %.2fs, signal p50 %.0f ms",
            result.events,
            result.signals,
            result.customers,
            took,
            1000 * sorted(rpc)[len(rpc) // 2] if rpc else 0.0,
        )
        if self.on_delivered:
            self.on_delivered(result, took)
        return result

    async def _deliver(
        self,
        client: Client,
        customer_id: str,
        items: list[Item],
        patch: CustomerPatch | None,
        seq: int,
        rpc: list[float],
        catalog: Catalog | None = None,
    ) -> _Outcome:
        """Send one customer's signals in order (``catalog``: with the first, for a
        workflow it may start). A signal refused for good is halved until the event at
        fault is alone, and that event is a dead letter; any other failure stops this
        customer here (its later events wait, keeping their order)."""
        out = _Outcome()
        converter = client.data_converter
        try:
            plan = await _signals.plan(
                converter, items, patch, catalog_seq=seq, budget=self.signal_budget
            )
        except _signals.Unsendable as exc:  # not even an empty signal: nothing can go
            out.dead = {eid: str(exc) for eid, _ in items}
            return out
        out.dead = dict(plan.dead)
        queue = deque(plan.chunks)
        while queue:
            chunk = queue.popleft()
            events = [e for _, e in chunk]
            try:
                signal = EventsSignal(events=events, catalog_seq=seq, customer=plan.patch)
                size = await _signals.check(converter, signal)
                if size > self.signal_budget:
                    raise _signals.Unsendable(
                        f"the signal is {size // 1024} KB, over the budget of "
                        f"{self.signal_budget // 1024} KB"
                    )
                t0 = time.monotonic()
                await customers.send_events(
                    client,
                    customer_id,
                    events,
                    task_queue=self.task_queue,
                    catalog_seq=seq,
                    customer=plan.patch,
                    ids=self.ids,
                    catalog=None if out.delivered else catalog,
                )
                rpc.append(time.monotonic() - t0)
            except Exception as exc:
                if not _for_good(exc) or (
                    len(chunk) == 1
                    and isinstance(exc, RPCError)
                    and not await self._takes_empty(client, customer_id, seq)
                ):
                    out.error = f"{type(exc).__name__}: {exc}"[:500]
                    out.failed = [eid for c in (chunk, *queue) for eid, _ in c]
                    return out
                if len(chunk) > 1:
                    half = len(chunk) // 2
                    queue.extendleft([chunk[half:], chunk[:half]])
                else:
                    out.dead[chunk[0][0]] = _signals.reason(exc)
                continue
            out.delivered += [eid for eid, _ in chunk]
        return out

    async def _takes_empty(self, client: Client, customer_id: str, seq: int) -> bool:
        """Whether Temporal takes a signal without events for this customer: if it refuses
        that too (a search attribute not registered, a namespace setting), the event is not
        at fault and must not become a dead letter; the customer backs off instead."""
        try:
            await customers.send_events(
                client,
                customer_id,
                [],
                task_queue=self.task_queue,
                catalog_seq=seq,
                ids=self.ids,
            )
        except Exception:
            return False
        return True

    def _resting(self) -> list[str]:
        """Customers whose last delivery failed, until their backoff is over."""
        now = time.monotonic()
        return [c for c, (until, _) in self._backoff.items() if until > now]

    def _rest(self, customer_id: str, *, failed: bool) -> None:
        """Back off one customer (doubling, up to ``max_backoff``) or forget their backoff:
        a failing customer neither delays the others nor comes first again every round."""
        if not failed:
            self._backoff.pop(customer_id, None)
            return
        _, delay = self._backoff.get(customer_id, (0.0, self.min_backoff / 2))
        delay = min(delay * 2, self.max_backoff)
        self._backoff[customer_id] = (time.monotonic() + delay, delay)


@dataclass
class _Outcome:
    delivered: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)  # to retry: Temporal unreachable, ...
    error: str = ""
    dead: dict[int, str] = field(default_factory=dict)


def _for_good(exc: BaseException) -> bool:
    """Whether sending again can never work: the signal fails our round trip, or Temporal
    refused it as invalid (``Blob data size exceeds limit``, ...)."""
    if isinstance(exc, _signals.Unsendable):
        return True
    return isinstance(exc, RPCError) and exc.status == RPCStatusCode.INVALID_ARGUMENT


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)

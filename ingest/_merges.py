"""Delivering merges to customer workflows (the dispatcher's second half of a round).

A merge (``store.identity.merge``) is committed in PostgreSQL first; its journeys follow
here, in merge id order: the absorbed customer's workflow is told (it ends its runs and
completes with a handover, ``engine.merging``; what it stored meanwhile under its id is
moved, ``store.identity.settle``), then the survivor's current canonical
customer (it may have been merged on meanwhile: a -> b, then b -> c, hands a's runs to c)
takes the handover over, then the merge is marked delivered. Every step is idempotent, so
a crash between them only means the merge is delivered again: the absorbed workflow
answers with the result it completed with, and the survivor takes over nothing twice.

A merge that fails (Temporal unreachable, a timeout) is retried next round, and later
merges that share a customer with it wait for it, in order; others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from orchestration import customers
from store import identity
from workflows.io import AbsorbedSignal, Handover, MergeSignal

log = logging.getLogger(__name__)
PER_ROUND = 100  # merges a round delivers at most


@dataclass
class MergeDelivery:
    delivered: int = 0
    failed: int = 0


async def deliver_merges(
    pool: AsyncConnectionPool[Any],
    connect: Callable[[], Awaitable[Client]],
    *,
    task_queue: str,
    catalog_seq: Callable[[], Awaitable[int]],
    ids: customers.CustomerIds,
    limit: int = PER_ROUND,
) -> MergeDelivery:
    """Deliver up to ``limit`` pending merges, oldest first. Temporal is reached (and the
    catalog's head read) only when some merge waits: while Temporal is down, rounds
    without merges go on delivering nothing but events."""
    async with pool.connection() as conn:
        pending = await identity.pending_merges(conn, limit)
    out = MergeDelivery()
    if not pending:
        return out
    held: set[str] = set()  # customers of a merge that failed this round
    for merge in pending:
        if {merge.absorbed, merge.survivor} & held:
            continue  # after the earlier merge of the same customer, in order
        try:
            client, seq = await connect(), await catalog_seq()
            await _deliver(pool, client, merge, task_queue=task_queue, seq=seq, ids=ids)
        except Exception as exc:
            held |= {merge.absorbed, merge.survivor}
            out.failed += 1
            error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("merge %d (%s) not delivered yet: %s", merge.id, merge.via, error)
            async with pool.connection() as conn:
                await identity.merge_failed(conn, merge.id, error)
            continue
        out.delivered += 1
    return out


async def _deliver(
    pool: AsyncConnectionPool[Any],
    client: Client,
    merge: identity.Merge,
    *,
    task_queue: str,
    seq: int,
    ids: customers.CustomerIds,
) -> None:
    signal = MergeSignal(merge_id=merge.id, into=merge.survivor)
    handover = await customers.send_merge(client, merge.absorbed, signal, ids=ids)
    async with pool.connection() as conn, conn.transaction():
        # what the absorbed workflow stored under its id while it ended (a dropped
        # message) is the survivor's too
        await identity.settle(conn, merge)
    if _brings_anything(handover):
        async with pool.connection() as conn:
            survivor = await identity.canonical(conn, merge.survivor)
        await customers.send_absorbed(
            client,
            survivor,
            AbsorbedSignal(handover=handover),
            task_queue=task_queue,
            catalog_seq=seq,
            ids=ids,
        )
    async with pool.connection() as conn:
        await identity.merge_delivered(conn, merge.id)


def _brings_anything(handover: Handover) -> bool:
    """An absorbed customer without a workflow hands over nothing: the survivor need not
    be woken (or started) for it."""
    return bool(
        handover.runs or handover.experiments or handover.tags or handover.seen or handover.pending
    )

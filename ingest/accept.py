"""Storing accepted messages: the events history, customer profiles and the outbox, in one
transaction, so a 200 means the event is durable and will reach the journeys. The
statements are ``store.events`` (the one writer of events and the outbox) and
``store.customers``; here is what to store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from store import consent, customers, events, offers
from store.events import NewEvent, Queued

from ._bounds import MAX_TRAIT_KEYS, MAX_TRAITS_BYTES
from .segment import IngestError, Message


@dataclass
class Accepted:
    stored: int  # new events
    duplicates: int  # messageIds seen before for this source
    queued: int  # new events some journey needs, now in the outbox


class Interest:
    """Which events journeys need delivered: their names, or every event."""

    def __init__(self, names: set[str], everything: bool) -> None:
        self.names = names
        self.everything = everything

    def wants(self, message: Message) -> bool:
        return message.type == "track" and (self.everything or message.name in self.names)


async def accept(
    conn: AsyncConnection[Any],
    source: int,
    batch: list[Message],
    received_at: datetime,
    interest: Interest,
) -> Accepted:
    """Store ``batch`` atomically. A message whose (source, messageId) is already stored is
    a duplicate and changes nothing; the others are appended to ``events``, identify traits
    are merged into ``customers``, and events a journey needs go to the ``outbox``."""
    # one message id twice in one request: keep the first
    seen: set[str] = set()
    unique = [m for m in batch if not (m.message_id in seen or seen.add(m.message_id))]  # type: ignore[func-returns-value]
    async with conn.transaction():
        received = [
            NewEvent(
                m.message_id,
                m.type,
                m.customer_id,
                m.name,
                m.stored_properties(),
                m.event_time,
                m.context,
            )
            for m in unique
        ]
        inserted = await events.append(conn, source, received, received_at=received_at)
        fresh = [m for m in unique if m.message_id in inserted]
        wanted = [Queued(inserted[m.message_id], m.customer_id) for m in fresh if interest.wants(m)]
        await events.queue(conn, wanted)
        orders = [
            m
            for m in fresh
            if m.type == "track" and m.name == "order_completed" and "coupon" in m.properties
        ]
        # Segment's e-commerce spec: the order carries the coupon it used. Expiry is judged
        # by when we received the order (a client's clock could backdate it); coupons in
        # code order, so two batches never lock the same two coupons in opposite order.
        for m in sorted(orders, key=lambda m: str(m.properties.get("coupon"))):
            await offers.redeem_from_order(
                conn, m.customer_id, inserted[m.message_id], m.properties, now=received_at
            )
        profiles: dict[str, tuple[dict[str, Any], str | None]] = {}
        for m in fresh:
            if m.type == "identify" or m.traits:
                traits, anon = profiles.get(m.customer_id, ({}, None))
                profiles[m.customer_id] = ({**traits, **m.traits}, m.anonymous_id or anon)
        if profiles:
            ids = sorted(profiles)  # a fixed order: concurrent upserts never deadlock
            merged = [customers.TraitsUpdate(i, *profiles[i]) for i in ids]
            _check_profiles(batch, await customers.merge_traits(conn, merged))
            for i in ids:  # opt-outs carried by traits (unsubscribed, email_opt_out, ...)
                await consent.sync_from_traits(conn, i, profiles[i][0])
    return Accepted(stored=len(fresh), duplicates=len(batch) - len(fresh), queued=len(wanted))


def _check_profiles(batch: list[Message], sizes: list[customers.ProfileSize]) -> None:
    """Refuse the request (its transaction rolls back) when it grows a stored profile past
    the caps: the profile travels with every signal to the customer's workflow and lives in
    its state, so it must stay far below Temporal's payload limits."""
    for grown in sizes:
        if grown.bytes <= MAX_TRAITS_BYTES and grown.keys <= MAX_TRAIT_KEYS:
            continue
        i = next(n for n, m in enumerate(batch) if m.customer_id == grown.customer_id)
        where = "message" if len(batch) == 1 else f"batch[{i}]"
        raise IngestError(
            413,
            "traits_too_large",
            f"{where}: the customer's stored traits would grow past "
            f"{MAX_TRAITS_BYTES // 1024} KB or {MAX_TRAIT_KEYS} keys; "
            "send fewer or smaller traits (nothing was stored)",
        )

"""Storing accepted messages: the events history, customer profiles and the outbox, in one
transaction, so a 200 means the event is durable and will reach the journeys. The
statements are ``store.events`` (the one writer of events and the outbox),
``store.customers`` and ``store.identity`` (whose customer each id is, and the merges
identify and alias ask for: ``ingest._identities``); here is what to store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from engine import channel_kinds
from engine.identity_rules import IdentityRules
from store import consent, customers, events, identity, messages, offers
from store.events import NewEvent, Queued
from workflows.io import CONTACT_ADDED

from . import _identities
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
    *,
    rules: IdentityRules | None = None,
    actor: str = "write key",
) -> Accepted:
    """Store ``batch`` atomically. A message whose (source, messageId) is already stored is
    a duplicate and changes nothing; the others are appended to ``events``, identify traits
    are merged into ``customers``, and events a journey needs go to the ``outbox``.

    Every id is resolved to its customer's canonical id first (``ingest._identities``), and
    the merges the batch asks for (identify with both ids, alias, the active ``rules`` of
    ``rules/identity.yaml``) are applied in its order, recorded as done by ``actor``;
    identify and alias never join two customers that both have a userId, unless
    ``rules.merge_known_customers``. So everything is stored under the customer the person
    is once the batch is applied, and an event keeps the id it was sent under
    (``sent_as``)."""
    # one message id twice in one request: keep the first
    seen: set[str] = set()
    unique = [m for m in batch if not (m.message_id in seen or seen.add(m.message_id))]  # type: ignore[func-returns-value]
    async with conn.transaction():
        identity_rules = rules or IdentityRules()
        active = identity_rules.active()
        involved = await _identities.plan(conn, unique, active)
        if involved:
            # the merge lock before any row lock, then the rows of every customer this
            # batch merges (as they are now: no other merge runs while we hold the lock)
            # before resolve inserts new ids: so nothing we hold is what a batch waiting
            # for those rows holds up (docs/identity.md, Safety)
            await identity.lock_merges(conn)
            now = await identity.canonicals(conn, involved)
            await identity.lock_customers(conn, list(now.values()))
        resolved = await identity.resolve(
            conn, _identities.ids_of(unique), user_ids=[m.user_id for m in unique if m.user_id]
        )
        ids = _identities.Identities(
            conn,
            resolved,
            merging=bool(involved),
            rules=active,
            refuse_known=not identity_rules.merge_known_customers,
            actor=actor,
        )
        # stored under the customers as they are now; this batch's merges move them on
        received = [
            NewEvent(
                m.message_id,
                m.type,
                ids.of(m.customer_id),
                m.name,
                m.stored_properties(),
                m.event_time,
                m.context,
                sent_as=m.customer_id if ids.of(m.customer_id) != m.customer_id else None,
            )
            for m in unique
        ]
        inserted = await events.append(conn, source, received, received_at=received_at)
        fresh = [m for m in unique if m.message_id in inserted]
        profiles = _Profiles(batch)
        for m in fresh:  # in order: a merge applies to what comes after it
            if m.type == "identify" or m.traits:
                profiles.add(ids.of(m.customer_id), m)
            if ids.may_merge(m):
                await profiles.store(conn)
                await ids.apply(m)
        await profiles.store(conn)
        await _wake_waiting(conn, source, profiles.contacts)
        wanted = [
            Queued(inserted[m.message_id], ids.of(m.customer_id))
            for m in fresh
            if interest.wants(m)
        ]
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
                conn, ids.of(m.customer_id), inserted[m.message_id], m.properties, now=received_at
            )
    return Accepted(stored=len(fresh), duplicates=len(batch) - len(fresh), queued=len(wanted))


class _Profiles:
    """Traits to merge into profiles, by canonical id, stored before each merge and at the
    end (so traits sent before a merge are the absorbed profile's, and those after it the
    survivor's)."""

    def __init__(self, batch: list[Message]) -> None:
        self.batch = batch
        self.pending: dict[str, tuple[dict[str, Any], str | None]] = {}
        self.first: dict[str, int] = {}  # canonical id -> index of its first message
        self.index = {id(m): i for i, m in enumerate(batch)}
        # canonical id -> (contact traits this batch gives a value, the first message's id)
        self.contacts: dict[str, tuple[set[str], str]] = {}
        self.contact_keys = channel_kinds.contact_traits()

    def add(self, customer: str, m: Message) -> None:
        traits, anon = self.pending.get(customer, ({}, None))
        self.pending[customer] = ({**traits, **m.traits}, m.anonymous_id or anon)
        self.first.setdefault(customer, self.index[id(m)])
        given = {k for k in self.contact_keys if m.traits.get(k)}
        if given:
            keys, _ = self.contacts.setdefault(customer, (set(), m.message_id))
            keys |= given

    async def store(self, conn: AsyncConnection[Any]) -> None:
        if not self.pending:
            return
        ids = sorted(self.pending)  # a fixed order: concurrent upserts never deadlock
        merged = [customers.TraitsUpdate(i, *self.pending[i]) for i in ids]
        _check_profiles(self.batch, self.first, await customers.merge_traits(conn, merged))
        for i in ids:  # opt-outs carried by traits (unsubscribed, email_opt_out, ...)
            await consent.sync_from_traits(conn, i, self.pending[i][0])
        self.pending.clear()
        self.first.clear()


async def _wake_waiting(
    conn: AsyncConnection[Any], source: int, contacts: dict[str, tuple[set[str], str]]
) -> None:
    """A customer with a message waiting for the address this batch brought gets a
    ``contact_added`` event: their workflow sends the message now, not at a timer
    (``activities.delivery``, ``await_contact``). Under the lock the waiting message takes
    too, so neither misses the other."""
    if not contacts:
        return
    await messages.lock_contact(conn, list(contacts))
    for customer, waits in sorted((await messages.awaiting(conn, list(contacts))).items()):
        keys, message_id = contacts[customer]
        if waits & keys:
            await events.record(
                conn,
                customer,
                CONTACT_ADDED,
                {"traits": sorted(waits & keys)},
                message_id=f"{CONTACT_ADDED}:{source}:{message_id}",  # once per identify
            )


def _check_profiles(
    batch: list[Message], first: dict[str, int], sizes: list[customers.ProfileSize]
) -> None:
    """Refuse the request (its transaction rolls back) when it grows a stored profile past
    the caps: the profile travels with every signal to the customer's workflow and lives in
    its state, so it must stay far below Temporal's payload limits."""
    for grown in sizes:
        if grown.bytes <= MAX_TRAITS_BYTES and grown.keys <= MAX_TRAIT_KEYS:
            continue
        i = first[grown.customer_id]
        where = "message" if len(batch) == 1 else f"batch[{i}]"
        raise IngestError(
            413,
            "traits_too_large",
            f"{where}: the customer's stored traits would grow past "
            f"{MAX_TRAITS_BYTES // 1024} KB or {MAX_TRAIT_KEYS} keys; "
            "send fewer or smaller traits (nothing was stored)",
        )

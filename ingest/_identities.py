"""Whose is each message of a batch, and the merges the batch asks for (``ingest.accept``).

A batch's ids are resolved to their customers' canonical ids (``store.identity.resolve``)
before anything is stored, and the merges it asks for are applied in the batch's order:
an ``identify`` with both ids merges the anonymousId's customer into the userId's, an
``alias`` merges previousId's into userId's (two customers that both have a userId stay
two unless ops allow it: ``store.identity.merge``, ``refuse_known``), and, when ops turned a
rule on
(``rules/identity.yaml``), an identify carrying a verified email or phone that another
customer's profile carries verified too merges the two (the one first seen survives).

Locks. Most identify calls link ids that are one customer already and merge nothing, so a
batch first looks, without locks, at whether it would merge at all (:func:`plan`). Only a
batch that will takes the merge lock, before any row lock, and locks every id row of the
customers it will merge in one statement (``store.identity.lock_customers``); the others
take no merge lock and never wait for one. A merge that only became needed after the look
(a concurrent batch stored a matching verified email meanwhile) is left for the next
identify, rather than taken while holding row locks a merge could be waiting for.

Bounds: at most :data:`MAX_MERGES` merges per request (a 413 says so, nothing stored), and
a rule merges at most :data:`MAX_HOLDERS` other customers per identify.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from psycopg import AsyncConnection

from engine.identity_rules import MergeRule, verified_value
from store import identity, identity_rules

from .segment import IngestError, Message

MAX_MERGES = 100  # per request: each moves a customer's rows, so a batch's cost is bounded
MAX_HOLDERS = 5  # other customers one verified value merges at once (the oldest first)


def ids_of(batch: Iterable[Message]) -> list[str]:
    """Every id the batch names (userId or anonymousId, anonymousId, previousId), sorted."""
    found: set[str] = set()
    for m in batch:
        found.add(m.customer_id)
        found.update(i for i in (m.anonymous_id, m.previous_id) if i)
    return sorted(found)


def _too_many(count: int) -> IngestError:
    return IngestError(
        413,
        "too_many_merges",
        f"the request would merge {count} pairs of customers; at most {MAX_MERGES} per "
        "request: send the identify and alias calls in smaller batches (nothing was stored)",
    )


async def plan(
    conn: AsyncConnection[Any], batch: Sequence[Message], rules: Sequence[MergeRule]
) -> list[str]:
    """The ids whose customers this batch would merge, looked up without locks (empty: it
    merges nothing, and takes no merge lock). Raises a 413 past :data:`MAX_MERGES`."""
    links = [link for m in batch if (link := m.link()) is not None]
    verified = [m for m in batch if m.type == "identify" and _verified(m, rules)]
    if not links and not verified:
        return []
    before = await identity.canonicals(conn, ids_of(batch))
    pairs: set[frozenset[str]] = set()
    involved: set[str] = set()
    for absorbed, survivor, _ in links:
        gone, kept = before[absorbed], before[survivor]
        if gone != kept:
            pairs.add(frozenset((gone, kept)))
            involved.update((absorbed, survivor))
    if len(pairs) > MAX_MERGES:
        raise _too_many(len(pairs))
    for m in verified:
        for rule, value in _verified(m, rules):
            me = before[m.customer_id]
            holders = await _holders(conn, rule, value, me)
            if holders:
                involved.update([m.customer_id, *(h.customer_id for h in holders)])
    return sorted(involved)


def _verified(m: Message, rules: Sequence[MergeRule]) -> list[tuple[MergeRule, str]]:
    found = []
    for rule in rules:
        value = verified_value(rule, m.traits)
        if value is not None:
            found.append((rule, value))
    return found


async def _holders(
    conn: AsyncConnection[Any], rule: MergeRule, value: str, besides: str
) -> list[identity_rules.Holder]:
    return await identity_rules.holders(
        conn,
        kind=rule.compares_as,
        trait=rule.trait,
        verified_by=rule.verified_by,
        value=value,
        besides=besides,
        limit=MAX_HOLDERS,
    )


class Identities:
    """The batch's ids -> their canonical ids as the batch goes on, and its merges."""

    def __init__(
        self,
        conn: AsyncConnection[Any],
        resolved: dict[str, str],
        *,
        merging: bool,
        rules: Sequence[MergeRule],
        refuse_known: bool,
        actor: str,
    ) -> None:
        self.conn = conn
        self.canonical = dict(resolved)
        self.merging = merging  # the batch holds the merge lock: it may merge
        self.rules = list(rules) if merging else []
        self.refuse_known = refuse_known  # a write key's identify and alias (store.identity)
        self.actor = actor
        self.merges = 0
        self.refused: set[tuple[str, str]] = set()  # asked again in one batch: asked once

    def of(self, sent: str) -> str:
        """The canonical id of ``sent`` now."""
        return self.canonical.get(sent, sent)

    def may_merge(self, m: Message) -> bool:
        """Whether applying ``m`` could merge (its profile changes are stored first)."""
        if not self.merging:
            return False
        return m.link() is not None or (m.type == "identify" and bool(_verified(m, self.rules)))

    async def apply(self, m: Message) -> None:
        """The merges ``m`` asks for, in the caller's transaction."""
        link = m.link()
        if link is not None:
            absorbed, survivor, via = link
            await self._merge(
                absorbed,
                survivor,
                via=via,
                reason=f"{via} {m.message_id}",
                refuse_known=self.refuse_known,
            )
        if m.type == "identify":
            for rule, value in _verified(m, self.rules):
                await self._match(m, rule, value)

    async def _match(self, m: Message, rule: MergeRule, value: str) -> None:
        me = self.of(m.customer_id)
        holders = await _holders(self.conn, rule, value, me)
        if not holders:
            return
        mine = await identity_rules.first_seen(self.conn, me)
        people = sorted((h.first_seen, h.customer_id) for h in holders)
        if mine is not None:
            people = sorted([*people, (mine, me)])
        survivor = people[0][1]
        others = [c for _, c in people[1:]] + ([me] if mine is None else [])
        reason = f"identify {m.message_id}: the same verified {rule.trait}"
        for other in others:
            # ops turned the rule on: its merges join known customers too (the duplicates)
            await self._merge(
                other, survivor, via=f"rule:{rule.name}", reason=reason, refuse_known=False
            )

    async def _merge(
        self, absorbed: str, survivor: str, *, via: str, reason: str, refuse_known: bool
    ) -> None:
        gone, kept = self.of(absorbed), self.of(survivor)
        if gone == kept or (gone, kept) in self.refused:
            return
        if self.merges >= MAX_MERGES:
            raise _too_many(self.merges + 1)
        done = await identity.merge(
            self.conn,
            gone,
            kept,
            via=via,
            reason=reason[:300],
            actor=self.actor,
            refuse_known=refuse_known,
        )
        if done is None:
            return
        self.merges += 1  # a refused one too: it is on record, and the bound is of work
        if done.refused is not None:
            self.refused.add((gone, kept))
            return
        for sent, now in self.canonical.items():
            if now == done.absorbed:
                self.canonical[sent] = done.survivor
        self.canonical.setdefault(done.absorbed, done.survivor)

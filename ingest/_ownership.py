"""Which partitions of the outbox this dispatcher delivers (``store.outbox``, 64 of them).

Every running dispatcher holds a member slot; the live slots, sorted, deal the partitions
round-robin: partition ``p`` belongs to the member at index ``p % len(members)``. Each
dispatcher computes the same deal from the same ``pg_locks``, so nobody coordinates: a
dispatcher that starts makes the others' shares smaller at their next rebalance, and they
release what is no longer theirs between rounds (never in the middle of one, so a
customer's events are in flight from one dispatcher at a time); one that dies releases its
locks with its connection, and the others take its partitions at their next rebalance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection

from store import outbox

REBALANCE_SECONDS = 1.0


def share(slot: int, members: list[int], partitions: int = outbox.PARTITIONS) -> set[int]:
    """The partitions member ``slot`` delivers when ``members`` run (``slot`` among them)."""
    if slot not in members:
        return set()
    index, n = sorted(members).index(slot), len(members)
    return {p for p in range(partitions) if p % n == index}


@dataclass
class Ownership:
    """One dispatcher's membership, for the life of its session connection ``conn``."""

    conn: AsyncConnection[Any]
    slot: int
    held: set[int] = field(default_factory=set)
    members: list[int] = field(default_factory=list)
    _checked: float = 0.0

    @classmethod
    async def join(cls, conn: AsyncConnection[Any]) -> Ownership | None:
        """Join, or None while a dispatcher of the code before partitions runs."""
        slot = await outbox.join(conn)
        return None if slot is None else cls(conn, slot)

    async def rebalance(self, *, force: bool = False) -> set[int]:
        """Take this dispatcher's share and let go of the rest (at most once a second
        unless ``force``, or while some partition of the share is still held elsewhere)."""
        now = time.monotonic()
        if not force and now - self._checked < REBALANCE_SECONDS:
            return self.held
        self._checked = now
        self.members = await outbox.members(self.conn)
        self.held = await outbox.hold(self.conn, self.held, share(self.slot, self.members))
        return self.held

    @property
    def delivers_merges(self) -> bool:
        """Merges join two customers of any partitions: the holder of partition 0
        delivers them all, one dispatcher at a time, as before partitions."""
        return 0 in self.held

"""Account manager assignment's messages: the note to a manager about their new customer,
for an ``assign_manager`` action and for customers assigned from a pool's queue.

The worker runs :class:`ManagerNotes` next to its activities: every few seconds (and at
start) it assigns waiting customers of pools that have room again (an add whose process
died before it assigned the queue) and sends the notes still pending. A note has the
action's key + ``/notify`` in ``messages``, so it goes out once whether the action, the
queue or both get to it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from store import managers, waitlist

from .delivery import Messenger, Outgoing

log = logging.getLogger(__name__)
ROUND_SECONDS = 10.0


def manager_note(
    *, key: str, customer_id: str, journey: str, state: str, manager: managers.Manager
) -> Outgoing:
    """The note telling ``manager`` the customer is theirs (``templates/manager_assigned``)."""
    return Outgoing(
        key=key + "/notify",
        customer_id=customer_id,
        journey=journey,
        state=state,
        template="manager_assigned",
        channel="email",
        marketing=False,
        to=manager.email,
        context={"manager": {"name": manager.name, "email": manager.email}},
    )


class ManagerNotes:
    """Assigns pools' queues and sends the notes of customers assigned from them."""

    def __init__(self, pool: AsyncConnectionPool[Any], messenger: Messenger) -> None:
        self.pool = pool
        self.messenger = messenger

    async def round(self, now: datetime | None = None) -> int:
        """One pass: assign queues with room, then send pending notes; how many were sent.
        A note that fails stays pending for the next round."""
        now = now or datetime.now(UTC)
        async with self.pool.connection() as conn:
            for name in await waitlist.pools_with_room(conn):
                await waitlist.assign_waiting(conn, name, now=now)
            pending = await waitlist.pending_notes(conn)
        sent = 0
        for item in pending:
            w = item.waiting
            out = manager_note(
                key=w.idempotency_key,
                customer_id=w.customer_id,
                journey=w.journey,
                state=w.state,
                manager=item.manager,
            )
            customer = {"id": w.customer_id, **w.context.get("customer", {})}
            base = {**w.context, "customer": customer, "manager": out.context["manager"]}
            try:
                result = await self.messenger.send(out, base, now)
            except Exception as exc:  # an SMTP outage, a template error: try again later
                log.warning("note to the %s manager not sent yet: %s", w.pool, exc)
                continue
            if result.status == "deferred":
                continue  # the policy's quiet hours: a later round sends it
            async with self.pool.connection() as conn:
                await waitlist.noted(conn, item)
            sent += result.status == "done"
        return sent

    async def run(self, stop: asyncio.Event, every: float = ROUND_SECONDS) -> None:
        """Rounds until ``stop`` is set; a round that fails (PostgreSQL down) is retried."""
        while not stop.is_set():
            try:
                await self.round()
            except Exception as exc:
                log.warning("manager queue round failed (%s); retrying in %.0fs", exc, every)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)

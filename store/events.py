"""The one writer of ``events`` and ``outbox``, and of the ``journeys_outbox`` NOTIFY.

Every event Journeys stores goes through here, whoever produced it: an accepted Segment
message (``ingest.accept``), a fact Journeys itself made true (an offer redeemed, a survey
answered, a task done: :func:`record`, with ``source`` :data:`INTERNAL_SOURCE`), or a
customer's segment change or churn-band crossing (``activities.segments``). Each call runs
in the caller's transaction, so an event, its place in the outbox and the fact it reports
commit together.
The segment fan-out (:func:`record_segment_changes`, :func:`record_churn_changes`) is
one set-based statement per batch, so a refresh that changed a million customers never
round-trips their rows through Python.

``(source, message_id)`` is unique: appending a message stored before stores nothing, and
the caller learns which of its messages were new. Events get their ids in the order given,
which is the order the dispatcher delivers them in.

Admins read a customer's events back through :func:`of_customer` and :func:`count_of`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from engine.names import normalize_event_name

INTERNAL_SOURCE = 0  # events Journeys produces; no write key has this source


@dataclass(frozen=True)
class NewEvent:
    """One event to append: a row of ``events`` without its id, source and receipt time."""

    message_id: str
    type: str
    customer_id: str
    name: str | None
    properties: dict[str, Any]
    event_time: datetime
    context: dict[str, Any] = field(default_factory=dict)
    sent_as: str | None = None  # the id it was sent under, when not its customer's (a merge)


@dataclass(frozen=True)
class Queued:
    """One stored event waiting in the outbox for the customer's journeys."""

    event_id: int
    customer_id: str


async def append(
    conn: AsyncConnection[Any],
    source: int,
    events: Sequence[NewEvent],
    *,
    received_at: datetime,
) -> dict[str, int]:
    """Append ``events`` (message ids unique among them) in one statement; returns the new
    ones' ids by message id (a message id stored before for ``source`` is left out)."""
    if not events:
        return {}
    cur = await conn.execute(
        """
        INSERT INTO events (source, message_id, type, customer_id, name, properties,
                            event_time, received_at, context, sent_as)
        SELECT %s, m, t, c, n, p, e, %s, x, s
          FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::jsonb[],
                      %s::timestamptz[], %s::jsonb[], %s::text[]) AS u(m, t, c, n, p, e, x, s)
        ON CONFLICT (source, message_id) DO NOTHING
        RETURNING id, message_id
        """,
        (
            source,
            received_at,
            [e.message_id for e in events],
            [e.type for e in events],
            [e.customer_id for e in events],
            [e.name for e in events],
            [Jsonb(e.properties) for e in events],
            [e.event_time for e in events],
            [Jsonb(e.context) for e in events],
            [e.sent_as for e in events],
        ),
    )
    return {str(row[1]): int(row[0]) for row in await cur.fetchall()}


async def queue(conn: AsyncConnection[Any], queued: Sequence[Queued]) -> int:
    """Put stored events into the outbox and wake the dispatcher (the NOTIFY is delivered
    when the caller's transaction commits); returns how many were queued."""
    if not queued:
        return 0
    await conn.execute(
        "INSERT INTO outbox (event_id, customer_id) SELECT * FROM unnest(%s::bigint[], %s::text[])",
        ([q.event_id for q in queued], [q.customer_id for q in queued]),
    )
    await notify(conn)
    return len(queued)


async def notify(conn: AsyncConnection[Any]) -> None:
    """Wake the dispatcher: something new waits in the outbox."""
    await conn.execute("NOTIFY journeys_outbox")  # store.outbox.listen hears it


async def record(
    conn: AsyncConnection[Any],
    customer_id: str,
    name: str,
    properties: dict[str, Any],
    *,
    message_id: str,
    at: datetime | None = None,
) -> int | None:
    """Store one event Journeys produced (a ``track``, source :data:`INTERNAL_SOURCE`) and
    queue it for delivery; return its id, or None when ``message_id`` was stored before.
    ``message_id`` is deterministic (``offer_redeemed:CODE``), so producing the same fact
    twice stores it once. Call inside the transaction that made the fact true."""
    now = at or datetime.now(UTC)
    # a fact about a customer merged meanwhile is the survivor's (store.identity). Not
    # locked (the caller may hold rows a merge moves): one stored in the instant a merge
    # commits is moved when the merge settles (store.identity.settle)
    cur = await conn.execute("SELECT canonical FROM customer_ids WHERE id = %s", (customer_id,))
    row = await cur.fetchone()
    sent_as, customer_id = (
        (customer_id, str(row[0])) if row and row[0] != customer_id else (None, customer_id)
    )
    event = NewEvent(
        message_id,
        "track",
        customer_id,
        normalize_event_name(name),
        properties,
        now,
        sent_as=sent_as,
    )
    stored = await append(conn, INTERNAL_SOURCE, [event], received_at=now)
    event_id = stored.get(message_id)
    if event_id is None:
        return None
    await queue(conn, [Queued(event_id, customer_id)])
    return event_id


@dataclass(frozen=True)
class FanOut:
    """A batch of segment changes recorded as events: how many, and the key (refresh id,
    customer id) of the last one, to resume after (None: there was none left)."""

    count: int
    last: tuple[int, str] | None


async def record_segment_changes(
    conn: AsyncConnection[Any], *, after: tuple[int, str], limit: int, wanted: bool
) -> FanOut:
    """Record up to ``limit`` pending ``segment_changes`` after the key ``after`` as
    ``segment_changed`` events (message id ``segment_changed:REFRESH:CUSTOMER``), queue
    them if ``wanted`` (a journey listens), and mark the changes notified; rows another
    transaction holds are skipped. Call in a transaction: the batch commits whole."""
    return await _fan_out(conn, _SEGMENT_CHANGES, after=after, limit=limit, wanted=wanted)


async def _fan_out(
    conn: AsyncConnection[Any], statement: str, *, after: tuple[int, str], limit: int, wanted: bool
) -> FanOut:
    """Run one batch ``statement`` of the fan-out (``_SEGMENT_CHANGES``' shape) and wake
    the dispatcher when it queued events."""
    cur = await conn.execute(
        statement,
        {
            "source": INTERNAL_SOURCE,
            "wanted": wanted,
            "limit": limit,
            "refresh": after[0],
            "customer": after[1],
        },
    )
    row = await cur.fetchone()  # none: the batch was empty
    if row is None or not row[0]:
        return FanOut(0, None)
    if wanted:
        await notify(conn)
    return FanOut(int(row[0]), (int(row[1]), str(row[2])))


# One batch in one statement: pick pending changes (skipping rows another worker holds),
# store them as events, queue those a journey wants, mark the changes notified.
_SEGMENT_CHANGES = """
WITH batch AS (
    SELECT refresh_id, customer_id, previous_segment, segment, previous_tier, tier, r, f, m
      FROM segment_changes
     WHERE (refresh_id, customer_id) > (%(refresh)s, %(customer)s) AND notified_at IS NULL
     ORDER BY refresh_id, customer_id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), stored AS (
    INSERT INTO events (source, message_id, type, customer_id, name, properties,
                        event_time, received_at)
    SELECT %(source)s, 'segment_changed:' || refresh_id || ':' || customer_id, 'track',
           customer_id, 'segment_changed',
           jsonb_build_object('segment', segment, 'previous_segment', previous_segment,
                              'tier', tier, 'previous_tier', previous_tier,
                              'r', r, 'f', f, 'm', m, 'refresh_id', refresh_id),
           now(), now()
      FROM batch
    ON CONFLICT (source, message_id) DO NOTHING
    RETURNING id, customer_id
), queued AS (
    INSERT INTO outbox (event_id, customer_id)
    SELECT id, customer_id FROM stored WHERE %(wanted)s
), marked AS (
    UPDATE segment_changes s SET notified_at = now()
      FROM batch b
     WHERE s.refresh_id = b.refresh_id AND s.customer_id = b.customer_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM marked), last.refresh_id, last.customer_id
  FROM (SELECT refresh_id, customer_id FROM batch
         ORDER BY refresh_id DESC, customer_id DESC LIMIT 1) AS last
"""


async def record_churn_changes(
    conn: AsyncConnection[Any], *, after: tuple[int, str], limit: int, wanted: bool
) -> FanOut:
    """Record up to ``limit`` pending ``churn_changes`` after the key ``after`` as
    ``churn_risk_changed`` events (message id ``churn_risk_changed:REFRESH:CUSTOMER``),
    queue them if ``wanted``, mark them notified: as
    :func:`record_segment_changes` does for segments. Call in a transaction."""
    return await _fan_out(conn, _CHURN_CHANGES, after=after, limit=limit, wanted=wanted)


# As _SEGMENT_CHANGES: one batch in one statement.
_CHURN_CHANGES = """
WITH batch AS (
    SELECT refresh_id, customer_id, previous_band, band, previous_churn_risk, churn_risk
      FROM churn_changes
     WHERE (refresh_id, customer_id) > (%(refresh)s, %(customer)s) AND notified_at IS NULL
     ORDER BY refresh_id, customer_id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), stored AS (
    INSERT INTO events (source, message_id, type, customer_id, name, properties,
                        event_time, received_at)
    SELECT %(source)s, 'churn_risk_changed:' || refresh_id || ':' || customer_id, 'track',
           customer_id, 'churn_risk_changed',
           jsonb_build_object('churn_risk', churn_risk,
                              'previous_churn_risk', previous_churn_risk,
                              'band', band, 'previous_band', previous_band,
                              'rising', band > previous_band, 'refresh_id', refresh_id),
           now(), now()
      FROM batch
    ON CONFLICT (source, message_id) DO NOTHING
    RETURNING id, customer_id
), queued AS (
    INSERT INTO outbox (event_id, customer_id)
    SELECT id, customer_id FROM stored WHERE %(wanted)s
), marked AS (
    UPDATE churn_changes s SET notified_at = now()
      FROM batch b
     WHERE s.refresh_id = b.refresh_id AND s.customer_id = b.customer_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM marked), last.refresh_id, last.customer_id
  FROM (SELECT refresh_id, customer_id FROM batch
         ORDER BY refresh_id DESC, customer_id DESC LIMIT 1) AS last
"""


# --- reads, for admins ----------------------------------------------------------------------


@dataclass(frozen=True)
class StoredEvent:
    """One accepted message as stored: ``event_time`` is corrected for client clock skew."""

    id: int
    type: str
    name: str | None
    properties: dict[str, Any]
    event_time: datetime
    received_at: datetime
    message_id: str


async def of_customer(
    conn: AsyncConnection[Any], customer_id: str, *, before: int | None, limit: int
) -> list[StoredEvent]:
    """The customer's events newest first, at most ``limit``, with ids below ``before``."""
    cur = conn.cursor(row_factory=class_row(StoredEvent))
    await cur.execute(
        "SELECT id, type, name, properties, event_time, received_at, message_id FROM events"
        " WHERE customer_id = %s AND (%s::bigint IS NULL OR id < %s)"
        " ORDER BY id DESC LIMIT %s",
        (customer_id, before, before, limit),
    )
    return await cur.fetchall()


async def count_of(conn: AsyncConnection[Any], customer_id: str) -> int:
    """How many events the customer has."""
    cur = await conn.execute("SELECT count(*) FROM events WHERE customer_id = %s", (customer_id,))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def move_customer(conn: AsyncConnection[Any], absorbed: str, survivor: str) -> None:
    """A merge (``store.identity.merge``): the absorbed customer's events and waiting
    outbox rows become the survivor's; each event keeps the id it was sent under. Wakes the
    dispatcher, which tells both customers' workflows."""
    await conn.execute(
        "UPDATE events SET customer_id = %s, sent_as = coalesce(sent_as, customer_id)"
        " WHERE customer_id = %s",
        (survivor, absorbed),
    )
    await conn.execute(
        "UPDATE outbox SET customer_id = %s WHERE customer_id = %s", (survivor, absorbed)
    )
    await notify(conn)

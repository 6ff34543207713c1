"""Who else carries a verified value (``rules/identity.yaml``): the customers whose stored
traits hold the same email or phone, verified, as an identify that ingestion is storing
(``ingest.accept`` then merges them, ``store.identity.merge``).

Values compare as ``engine.identity_rules.normalized`` makes them; the SQL here computes the
same form from the stored traits, and for the traits ``email`` and ``phone`` in exactly the
expression of the indexes of migration 0018, so the lookup is one index probe. The trait
names are ops' (validated by the rules file: letters, digits, ``_.-``) and go into the
statement as literals, so the planner can match those indexes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import class_row

from engine.identity_rules import MAX_VALUE_LENGTH, Kind


@dataclass(frozen=True)
class Holder:
    """A customer whose stored traits carry the value, and when we first saw them."""

    customer_id: str
    first_seen: datetime


def _compared(kind: Kind, trait: str) -> sql.Composable:
    value = sql.SQL("(traits ->> {})").format(sql.Literal(trait))
    blanks = sql.SQL("E' \\t\\n\\r'")
    if kind == "email":
        return sql.SQL("lower(btrim({}, {}))").format(value, blanks)
    return sql.SQL(
        "(CASE WHEN btrim({v}, {b}) LIKE '+%%' THEN '+' ELSE '' END"
        " || regexp_replace({v}, '[^0-9]', '', 'g'))"
    ).format(v=value, b=blanks)


async def holders(
    conn: AsyncConnection[Any],
    *,
    kind: Kind,
    trait: str,
    verified_by: str,
    value: str,
    besides: str,
    limit: int,
) -> list[Holder]:
    """Up to ``limit`` customers other than ``besides`` whose trait ``trait`` compares
    equal to ``value`` (normalised) and whose ``verified_by`` trait is JSON true, first
    seen first. No locks: the caller merges under ``store.identity``'s."""
    cur = conn.cursor(row_factory=class_row(Holder))
    await cur.execute(
        holders_query(kind, trait, verified_by, limit), {"value": value, "besides": besides}
    )
    return await cur.fetchall()


def holders_query(kind: Kind, trait: str, verified_by: str, limit: int) -> sql.Composed:
    """The statement of :func:`holders` (parameters ``value`` and ``besides``)."""
    return sql.SQL(
        "SELECT customer_id, first_seen FROM customers"
        " WHERE traits ? {t} AND length(traits ->> {t}) <= {n} AND {expr} = {value}"
        " AND traits -> {flag} = 'true'::jsonb AND customer_id <> {besides}"
        " ORDER BY first_seen, customer_id LIMIT {limit}"
    ).format(
        t=sql.Literal(trait),
        n=sql.Literal(MAX_VALUE_LENGTH),
        expr=_compared(kind, trait),
        value=sql.Placeholder("value"),
        flag=sql.Literal(verified_by),
        besides=sql.Placeholder("besides"),
        limit=sql.Literal(limit),
    )


async def first_seen(conn: AsyncConnection[Any], customer_id: str) -> datetime | None:
    """When the customer's profile was first stored (None: it has none yet)."""
    cur = await conn.execute(
        "SELECT first_seen FROM customers WHERE customer_id = %s", (customer_id,)
    )
    row = await cur.fetchone()
    return row[0] if row else None

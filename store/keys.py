"""API keys, ``api_keys``: write keys (for sources) and admin tokens, stored as hashes.

Making, hashing and checking keys is ``ingest.keys``; here are only the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row


@dataclass(frozen=True)
class KeyInfo:
    """A stored key, without its secret (only ``prefix``, its first characters)."""

    id: int
    kind: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class LiveKey:
    """A key not revoked: its hash, for checking a presented key."""

    hash: str
    id: int
    kind: str
    name: str = ""


async def insert(
    conn: AsyncConnection[Any], *, kind: str, name: str, prefix: str, hash: str
) -> KeyInfo:
    """Store a key by its hash; storing a hash again brings a revoked key back."""
    cur = conn.cursor(row_factory=class_row(KeyInfo))
    await cur.execute(
        "INSERT INTO api_keys (kind, name, prefix, hash) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (hash) DO UPDATE SET revoked_at = NULL"
        " RETURNING id, kind, name, prefix, created_at, revoked_at",
        (kind, name, prefix, hash),
    )
    row = await cur.fetchone()
    if row is None:  # RETURNING always gives the row, inserted or updated
        raise RuntimeError("api_keys: the upsert returned no row")
    return row


async def listing(conn: AsyncConnection[Any]) -> list[KeyInfo]:
    """Every key, revoked or not, oldest first."""
    cur = conn.cursor(row_factory=class_row(KeyInfo))
    await cur.execute(
        "SELECT id, kind, name, prefix, created_at, revoked_at FROM api_keys ORDER BY id"
    )
    return await cur.fetchall()


async def revoke(conn: AsyncConnection[Any], key_id: int) -> bool:
    """Revoke a key; False when there is no live key with that id."""
    cur = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (key_id,)
    )
    return cur.rowcount == 1


async def name_of(conn: AsyncConnection[Any], key_id: int) -> str | None:
    """The name a key was created with (revoked or not), None for an unknown id."""
    cur = await conn.execute("SELECT name FROM api_keys WHERE id = %s", (key_id,))
    row = await cur.fetchone()
    return str(row[0]) if row else None


async def live(conn: AsyncConnection[Any]) -> list[LiveKey]:
    """Every key not revoked."""
    cur = conn.cursor(row_factory=class_row(LiveKey))
    await cur.execute("SELECT hash, id, kind, name FROM api_keys WHERE revoked_at IS NULL")
    return await cur.fetchall()


async def live_admins(conn: AsyncConnection[Any]) -> int:
    """How many admin tokens are not revoked."""
    cur = await conn.execute(
        "SELECT count(*) FROM api_keys WHERE kind = 'admin' AND revoked_at IS NULL"
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0

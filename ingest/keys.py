"""Write keys (for sources) and admin tokens: random, stored only as SHA-256 hashes,
checked in constant time, cached for a few seconds so a request costs no query."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncConnection

Kind = Literal["write", "admin"]
PREFIX = {"write": "jw_", "admin": "ja_"}


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(kind: Kind) -> str:
    return PREFIX[kind] + secrets.token_urlsafe(24)


@dataclass(frozen=True)
class KeyInfo:
    id: int
    kind: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


async def create(
    conn: AsyncConnection[Any], kind: Kind, name: str, *, key: str | None = None
) -> tuple[KeyInfo, str]:
    """Store a new key (or ``key`` if given); returns it in clear, the only time it is."""
    secret = key or new_key(kind)
    cur = await conn.execute(
        "INSERT INTO api_keys (kind, name, prefix, hash) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (hash) DO UPDATE SET revoked_at = NULL"
        " RETURNING id, kind, name, prefix, created_at, revoked_at",
        (kind, name, secret[:7], hash_key(secret)),
    )
    row = await cur.fetchone()
    assert row is not None
    return KeyInfo(*row), secret


async def listing(conn: AsyncConnection[Any]) -> list[KeyInfo]:
    cur = await conn.execute(
        "SELECT id, kind, name, prefix, created_at, revoked_at FROM api_keys ORDER BY id"
    )
    return [KeyInfo(*row) for row in await cur.fetchall()]


async def revoke(conn: AsyncConnection[Any], key_id: int) -> bool:
    cur = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (key_id,)
    )
    return cur.rowcount == 1


class KeyCache:
    """Live keys by hash, reloaded at most every ``ttl`` seconds (revocation takes effect
    within that time)."""

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self._keys: dict[str, tuple[int, str]] = {}
        self._loaded = 0.0

    async def refresh(self, conn: AsyncConnection[Any], *, force: bool = False) -> None:
        if not force and time.monotonic() - self._loaded < self.ttl:
            return
        cur = await conn.execute("SELECT hash, id, kind FROM api_keys WHERE revoked_at IS NULL")
        self._keys = {row[0]: (row[1], row[2]) for row in await cur.fetchall()}
        self._loaded = time.monotonic()

    def check(self, key: str, kind: str) -> int | None:
        """The key's id if ``key`` is a live key of ``kind``, else None. Every stored hash is
        compared with ``hmac.compare_digest``, so the time taken says nothing about which
        characters matched."""
        digest = hash_key(key)
        found: int | None = None
        for stored, (key_id, key_kind) in self._keys.items():
            if hmac.compare_digest(stored, digest) and key_kind == kind:
                found = key_id
        return found

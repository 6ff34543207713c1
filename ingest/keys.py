"""Write keys (for sources) and admin tokens: random, stored only as SHA-256 hashes
(``store.keys``), checked in constant time, cached for a few seconds so a request costs no
query."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any, Literal

from psycopg import AsyncConnection

from store import keys as key_store
from store.keys import KeyInfo, listing, revoke

__all__ = ["KeyCache", "KeyInfo", "create", "hash_key", "listing", "new_key", "revoke"]

Kind = Literal["write", "admin"]
PREFIX = {"write": "jw_", "admin": "ja_"}


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(kind: Kind) -> str:
    return PREFIX[kind] + secrets.token_urlsafe(24)


async def create(
    conn: AsyncConnection[Any], kind: Kind, name: str, *, key: str | None = None
) -> tuple[KeyInfo, str]:
    """Store a new key (or ``key`` if given); returns it in clear, the only time it is."""
    secret = key or new_key(kind)
    info = await key_store.insert(
        conn, kind=kind, name=name, prefix=secret[:7], hash=hash_key(secret)
    )
    return info, secret


class KeyCache:
    """Live keys by hash, reloaded at most every ``ttl`` seconds (revocation takes effect
    within that time)."""

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self._keys: dict[str, tuple[int, str]] = {}
        self._names: dict[int, str] = {}
        self._loaded = 0.0

    async def refresh(self, conn: AsyncConnection[Any], *, force: bool = False) -> None:
        if not force and time.monotonic() - self._loaded < self.ttl:
            return
        live = await key_store.live(conn)
        self._keys = {k.hash: (k.id, k.kind) for k in live}
        self._names = {k.id: k.name for k in live}
        self._loaded = time.monotonic()

    def name(self, key_id: int) -> str:
        """The name a key was created with (what the audit log of merges shows)."""
        return self._names.get(key_id, f"#{key_id}")

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

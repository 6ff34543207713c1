"""PostgreSQL: connection pools, schema migrations, and a database made ready for this code."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from engine import Journey

log = logging.getLogger(__name__)
_LOCK = 0x4A6F75726E  # advisory lock id: only one process migrates at a time


def pool(url: str, *, min_size: int = 1, max_size: int = 10, **options: Any) -> AsyncConnectionPool:
    """A pool that is not open yet: open it in the entry point (``await pool.open()``);
    ``options`` go to the pool (``configure``, ``connection_class``: the message bench
    counts statements with them)."""
    return AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={"autocommit": True},
        **options,
    )


async def ping(conn: psycopg.AsyncConnection[Any]) -> None:
    """Raise unless the server answers a query on ``conn`` (readiness checks)."""
    await conn.execute("SELECT 1")


def migrations() -> list[tuple[int, str, str]]:
    files = resources.files("store").joinpath("migrations")
    out = []
    for f in sorted(files.iterdir(), key=lambda p: p.name):
        if f.name.endswith(".sql"):
            out.append((int(f.name.split("_", 1)[0]), f.name, f.read_text(encoding="utf-8")))
    return out


async def migrate(url: str) -> list[str]:
    """Apply the migrations this database has not seen, in order; return their names."""
    applied: list[str] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK,))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            for version, name, sql in migrations():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql.encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (version, name),
                    )
                log.info("applied migration %s", name)
                applied.append(name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK,))
    return applied


async def prepare_database(
    database_url: str, journeys: Sequence[Journey], *, reason: str = "worker start"
) -> int:
    """Migrate the schema and publish ``journeys`` (a changed journey becomes a new version;
    customers in flight keep theirs); return the current catalog seq. Idempotent: the
    worker does it at every start, ``make run`` before anyone sends events."""
    from . import catalog  # catalog's queries need the schema this module migrates

    await migrate(database_url)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        seq = await catalog.publish(conn, list(journeys), reason=reason)
    log.info("published %d journey(s) as catalog %d", len(journeys), seq)
    return seq

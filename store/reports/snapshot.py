"""One consistent view of the database for a whole report."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus


@asynccontextmanager
async def consistent(conn: AsyncConnection[Any]) -> AsyncIterator[None]:
    """On an idle connection, a repeatable-read, read-only transaction, so the figures
    read inside agree with each other while the engine keeps writing; inside a caller's
    transaction, that one (its isolation is the caller's choice)."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        yield
        return
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield

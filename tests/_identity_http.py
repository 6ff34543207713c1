"""The real app on a real uvicorn server over real PostgreSQL, without Temporal (the
dispatcher off: outbox rows stay where ingestion put them), for the identity tests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from api import create_app
from devstack.stack import free_port
from ingest import keys
from settings import Settings
from store import identity

KEY_NAME = "web shop"


@dataclass
class Served:
    url: str
    write_key: str
    db: Any

    def http(self) -> httpx.AsyncClient:
        token = base64.b64encode(f"{self.write_key}:".encode()).decode()
        return httpx.AsyncClient(
            base_url=self.url, timeout=30, headers={"Authorization": f"Basic {token}"}
        )

    async def post(self, kind: str, body: dict[str, Any]) -> httpx.Response:
        async with self.http() as http:
            return await http.post(f"/v1/{kind}", json=body)

    async def ok(self, kind: str, body: dict[str, Any]) -> None:
        answer = await self.post(kind, body)
        assert answer.status_code == 200, answer.text

    async def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        async with self.db.connection() as conn:
            cur = await conn.execute(sql, args)
            return [tuple(r) for r in await cur.fetchall()]

    async def canonical(self, *ids: str) -> list[str]:
        async with self.db.connection() as conn:
            return [await identity.canonical(conn, i) for i in ids]


@contextlib.asynccontextmanager
async def serving(db, db_url: str, rules: Path | None = None) -> AsyncIterator[Served]:
    async with db.connection() as conn:
        _, write = await keys.create(conn, "write", KEY_NAME)
    env = {"DATABASE_URL": db_url, "JOURNEYS_DISPATCHER": "false", "JOURNEYS_ENV": "development"}
    if rules is not None:
        env["JOURNEYS_RULES"] = str(rules)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(Settings.model_validate(env)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", write, db)
    finally:
        server.should_exit = True
        await task


def track(event: str, *, user: str | None = None, anon: str | None = None, **more: Any):
    body: dict[str, Any] = {"event": event, **more}
    if user:
        body["userId"] = user
    if anon:
        body["anonymousId"] = anon
    return body

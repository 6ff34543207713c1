"""The development mail catcher: it stores what it catches in PostgreSQL, the dev API
route lists it (development only, admin token), and it runs as ``python -m
devstack.mailcatcher``."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from channels import send_email
from devstack.mailcatcher import serve_mailcatcher
from devstack.stack import free_port, port_open
from tests.conftest import ROOT
from tests.test_channels import settings, welcome


@asynccontextmanager
async def mailcatcher(db_url: str) -> AsyncIterator[int]:
    port, stop, ready = free_port(), asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve_mailcatcher(db_url, "127.0.0.1", port, stop, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield port
    finally:
        stop.set()
        await task


async def test_mailcatcher_stores_and_the_dev_route_lists(db_url, db):
    async with mailcatcher(db_url) as port:
        cfg = settings(SMTP_PORT=str(port))
        first = await send_email(cfg, welcome())
        await send_email(
            cfg, welcome(to="bob@example.com", subject="Hi Bob", html=None, idempotency_key="b")
        )
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT message_id, mail_from, rcpt_to, subject FROM dev_mail ORDER BY id"
        )
        rows = await cur.fetchall()
    assert rows[0] == (first, "journeys@localhost", ["ann@example.com"], "Welcome, Ann")
    assert rows[1][2:] == (["bob@example.com"], "Hi Bob")

    from api import create_app
    from api.dev_routes import router
    from ingest import keys

    async with db.connection() as conn:
        _, admin = await keys.create(conn, "admin", "test admin")

    async def get(env: str, path: str, token: str | None = admin) -> httpx.Response:
        app = create_app(
            settings(DATABASE_URL=db_url, JOURNEYS_ENV=env, JOURNEYS_DISPATCHER="false")
        )
        if not any(getattr(r, "path", None) == "/v1/dev/mail" for r in app.routes):
            app.include_router(router)  # until api/app.py includes it
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as client,
        ):
            return await client.get(path, headers=headers)

    body = (await get("development", "/v1/dev/mail")).json()
    newest, oldest = body["messages"]
    assert (newest["to"], newest["subject"], newest["html"]) == (
        ["bob@example.com"],
        "Hi Bob",
        None,
    )
    assert oldest["message_id"] == first and oldest["from"] == "journeys@localhost"
    assert oldest["text"].strip() == "Hello Ann" and "<b>Ann</b>" in oldest["html"]
    assert oldest["headers"]["X-Journeys-Idempotency-Key"] == "c42:lifecycle:new:1"
    only = (await get("development", "/v1/dev/mail?to=ANN@example.com&limit=5")).json()
    assert [m["subject"] for m in only["messages"]] == ["Welcome, Ann"]
    assert (await get("development", "/v1/dev/mail", token=None)).status_code == 401
    hidden = await get("production", "/v1/dev/mail")
    assert hidden.status_code == 404 and "JOURNEYS_ENV=development" in hidden.json()["message"]


async def test_mailcatcher_runs_as_a_module(db_url, db):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "JOURNEYS_MAILCATCHER_PORT": str(port)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "devstack.mailcatcher", cwd=ROOT, env=env
    )
    try:
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", port):
            assert proc.returncode is None and time.monotonic() < deadline, "no mail catcher"
            await asyncio.sleep(0.05)
        await send_email(settings(SMTP_PORT=str(port)), welcome())
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0  # SIGTERM stops it cleanly
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM dev_mail")
        assert (await cur.fetchone())[0] == 1

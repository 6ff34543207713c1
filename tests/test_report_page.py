"""The report page over HTTP: the real app on a port of its own, behind the admin token
(Basic for browsers, Bearer for scripts); ``serve_reports`` is shared with the browser
test."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import uvicorn

from api import create_app
from devstack.stack import free_port
from ingest import keys
from settings import Settings
from tests.report_seed import connect, seeded

__all__ = ["seeded", "serve_reports"]  # the fixture is used here by name


@dataclass
class Served:
    url: str
    admin: str
    write: str


@asynccontextmanager
async def serve_reports(db_url: str) -> AsyncIterator[Served]:
    """The real app (without Temporal or the dispatcher) on a uvicorn port of its own."""
    async with await connect(db_url) as conn:
        _, write = await keys.create(conn, "write", "test source")
        _, admin = await keys.create(conn, "admin", "test admin")
    settings = Settings.model_validate(
        {"DATABASE_URL": db_url, "JOURNEYS_DISPATCHER": False, "JOURNEYS_ENV": "development"}
    )
    app = create_app(settings)  # /reports is one of api.app.ROUTERS
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    deadline = asyncio.get_running_loop().time() + 30
    while not server.started:
        if task.done() or asyncio.get_running_loop().time() > deadline:
            raise RuntimeError("the report app did not start within 30 s")
        await asyncio.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", admin, write)
    finally:
        server.should_exit = True
        await task


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_reports_page_needs_the_admin_token(seeded):
    async with serve_reports(seeded) as s, httpx.AsyncClient(base_url=s.url) as http:
        r = await http.get("/reports")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        assert "admin token as password" in r.json()["message"]
        r = await http.get("/reports", headers=basic("me", "wrong"))
        assert r.status_code == 401 and r.json()["error"] == "bad_token"
        r = await http.get("/reports", headers={"Authorization": f"Bearer {s.write}"})
        assert r.status_code == 403
        r = await http.get("/reports", headers=basic("anyone", s.admin))  # a browser login
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert r.headers["cache-control"] == "private, no-store"
        r = await http.get(
            "/reports",
            params={"since": "2026-01-25"},
            headers={"Authorization": f"Bearer {s.admin}"},
        )
        assert r.status_code == 200 and "Since 2026-01-25" in r.text
        assert "<svg" in r.text
        r = await http.get(
            "/reports", params={"since": "soon"}, headers={"Authorization": f"Bearer {s.admin}"}
        )
        assert r.status_code == 422

"""What the hostile-input suites share: the real app on a real uvicorn server over real
PostgreSQL (no Temporal: every refusal here happens before the API would reach it), raw
HTTP over a socket for requests httpx will not send (a lying Content-Length, a body that
never ends), and the checks every case ends with: the refusal's shape, nothing stored,
the service still healthy."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn

from api import create_app
from devstack.stack import free_port
from ingest import keys
from settings import Settings
from store import surveys
from store.db import pool as make_pool
from tests.conftest import create_database, with_db

PII = "s3cr3t-pii"  # put in hostile bodies: must never come back in an answer
# every table a request could write to
TABLES = ("events", "outbox", "customers", "managers", "offer_budgets", "consent")


@dataclass
class Served:
    url: str
    port: int
    write_key: str
    admin_token: str
    db: Any

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=20)

    def write(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.write_key}:".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    async def stored(self) -> dict[str, int]:
        """Row counts of every table a request could write to, and answered surveys."""
        out = {}
        async with self.db.connection() as conn:
            for table in TABLES:
                cur = await conn.execute(f"SELECT count(*) FROM {table}")
                out[table] = (await cur.fetchone())[0]
            cur = await conn.execute("SELECT count(*) FROM surveys WHERE answered_at IS NOT NULL")
            out["answers"] = (await cur.fetchone())[0]
        return out

    async def healthy(self) -> None:
        """Still up, and still storing a good event."""
        async with self.http() as http:
            assert (await http.get("/healthz")).json() == {"ok": True}
            ok = await http.post(
                "/v1/track", json={"userId": "healthy", "event": "Ping"}, headers=self.write()
            )
        assert ok.status_code == 200, ok.text

    async def survey(self) -> str:
        """A fresh NPS survey's token."""
        async with self.db.connection() as conn:
            made = await surveys.create(
                conn,
                idempotency_key=uuid.uuid4().hex,
                customer_id="ann",
                journey="nps",
                template="nps_survey",
                kind="nps",
                expires_in=timedelta(days=14),
                now=datetime.now(UTC),
            )
        return made.token


@pytest.fixture(name="served", scope="module")
async def served_fixture(pg_server: str, pg_template: str) -> AsyncIterator[Served]:
    """One server and database per module: every case compares what is stored before and
    after itself, so cases do not depend on each other."""
    db_url = with_db(pg_server, create_database(pg_server, "journeys_h", template=pg_template))
    db = make_pool(db_url, max_size=4)
    await db.open()
    async with db.connection() as conn:
        _, write = await keys.create(conn, "write", "hostile source")
        _, admin = await keys.create(conn, "admin", "hostile admin")
    settings = Settings.model_validate(
        {"DATABASE_URL": db_url, "JOURNEYS_DISPATCHER": "false", "JOURNEYS_ENV": "development"}
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", port, write, admin, db)
    finally:
        server.should_exit = True
        await task
        await db.close()


def refused(response: httpx.Response, status: int, error: str | None = None) -> dict[str, Any]:
    """The project's refusal: ``status``, JSON ``{error, message}``, nothing echoed."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    body = response.json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), body
    assert "detail" not in body
    if error is not None:
        assert body["error"] == error, body
    assert PII not in response.text
    return dict(body)


@dataclass
class RawAnswer:
    status: int
    body: bytes


def chunked(size: int) -> bytes:
    """``size`` bytes of body in 64 KB chunks, without the final empty chunk: the server
    must answer before the body ends."""
    out, left = [], size
    while left:
        n = min(left, 65536)
        out.append(b"%x\r\n%s\r\n" % (n, b"x" * n))
        left -= n
    return b"".join(out)


async def raw_request(
    port: int, head: str, body: bytes = b"", *, deadline: float = 15
) -> RawAnswer:
    """Send ``head`` (request line and headers, ``\\n``-separated) and ``body``, which may
    be less than the headers promise, and read the answer. Every byte sent is one the
    server reads before answering (a close with unread bytes would reset the connection
    and lose the answer), so a test sends at most one byte past a limit."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), deadline)
        header_block = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), deadline)
        length = 0
        for line in header_block.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        content = await asyncio.wait_for(reader.readexactly(length), deadline)
        return RawAnswer(int(status_line.split()[1]), content)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

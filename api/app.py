"""The FastAPI application and its shared state.

FastAPI because it gives the OpenAPI document (/docs) and pydantic v2 validation for free
on an ASGI server (uvicorn); the ingestion hot path reads the raw body itself, to bound
gzip inflation and to answer Segment's way."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import psycopg
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from engine import Catalog, Journey
from ingest.accept import Interest
from ingest.dispatcher import Delivery, Dispatcher
from ingest.keys import KeyCache
from orchestration.customers import CustomerIds
from orchestration.temporal import connect
from settings import Settings, get_settings
from store.db import pool as make_pool

from ._guard import RequestGuard
from ._openapi import describe_contract, validation_message
from .metrics import Metrics

log = logging.getLogger(__name__)


@dataclass
class RateLimiter:
    """A token bucket per key: ``rate`` requests a second, bursts of twice that."""

    rate: float
    buckets: dict[int, tuple[float, float]] = field(default_factory=dict)

    def allow(self, key: int) -> bool:
        now = time.monotonic()
        tokens, last = self.buckets.get(key, (self.rate * 2, now))
        tokens = min(self.rate * 2, tokens + (now - last) * self.rate)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return False
        self.buckets[key] = (tokens - 1, now)
        return True


class AppState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: AsyncConnectionPool[Any] = make_pool(
            settings.require_database_url(), max_size=10
        )
        self.keys = KeyCache()
        self.ids = CustomerIds(settings.id_secret)
        self.metrics = Metrics()
        self.limiter = RateLimiter(settings.rate_limit)
        self.interest = Interest(set(), everything=True)
        self._interest_seq = -1
        self._interest_at = 0.0
        self._outbox = (0, 0.0)
        self._client: Client | None = None
        self._client_lock = asyncio.Lock()

    async def client(self) -> Client:
        """The Temporal client, connected on first use (the API starts without Temporal)."""
        async with self._client_lock:
            if self._client is None:
                self._client = await connect(self.settings)
            return self._client

    async def refresh(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Keys and journey interest, at most every few seconds."""
        await self.keys.refresh(conn)
        if time.monotonic() - self._interest_at < 5.0:
            return
        self._interest_at = time.monotonic()
        cur = await conn.execute("SELECT coalesce(max(seq), 0) FROM catalogs")
        row = await cur.fetchone()
        seq = int(row[0]) if row else 0
        if seq == self._interest_seq:
            return
        cur = await conn.execute("SELECT definition FROM journey_versions")
        versions = [Journey.model_validate(r[0]) for r in await cur.fetchall()]
        if not versions:  # nothing published yet: keep everything, deliver later
            self.interest = Interest(set(), everything=True)
        else:
            catalog = Catalog(versions={f"{j.journey}@{j.version}": j for j in versions})
            names, everything = catalog.interest()
            self.interest = Interest(names, everything)
        self._interest_seq = seq

    async def outbox_depth(self, conn: psycopg.AsyncConnection[Any]) -> int:
        depth, at = self._outbox
        if time.monotonic() - at > 1.0:
            cur = await conn.execute("SELECT count(*) FROM outbox")
            row = await cur.fetchone()
            depth = int(row[0]) if row else 0
            self._outbox = (depth, time.monotonic())
            self.metrics.outbox.set(depth)
        return depth

    def delivered(self, result: Delivery, seconds: float) -> None:
        self.metrics.delivered.inc(result.events)
        self.metrics.delivery_failures.inc(result.failed)
        self.metrics.dead_letters.inc(result.dead)


def create_app(settings: Settings | None = None, *, temporal: Client | None = None) -> FastAPI:
    """The app; ``temporal`` is a connected client to use instead of connecting (tests)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = AppState(settings)
        state._client = temporal
        app.state.journeys = state
        await state.pool.open()
        stop = asyncio.Event()
        task = None
        if settings.dispatcher:
            dispatcher = Dispatcher(
                state.pool,
                settings.require_database_url(),
                state.client,
                task_queue=settings.task_queue,
                on_delivered=state.delivered,
                ids=state.ids,
            )
            state.dispatcher = dispatcher  # type: ignore[attr-defined]
            task = asyncio.create_task(dispatcher.run(stop))
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await task
            await state.pool.close()

    app = FastAPI(
        title="Journeys",
        summary="Segment-compatible event ingestion and customer journey administration",
        version="1",
        lifespan=lifespan,
    )
    from .action_routes import router as actions
    from .admin_routes import router as admin
    from .codec_routes import router as codec
    from .dead_letter_routes import router as dead_letters
    from .dev_routes import router as dev
    from .ingest_routes import router as ingest
    from .report_routes import router as reports

    app.include_router(ingest)
    app.include_router(admin)
    app.include_router(actions)
    app.include_router(dead_letters)
    app.include_router(dev)
    app.include_router(reports)
    app.include_router(codec)

    @app.exception_handler(HTTPException)
    async def flat_errors(request: Request, exc: HTTPException) -> JSONResponse:
        """``{"error": ..., "message": ...}`` like the ingestion endpoints."""
        body = (
            exc.detail
            if isinstance(exc.detail, dict)
            else {"error": "http_error", "message": str(exc.detail)}
        )
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 in the same shape; FastAPI's default would echo the submitted body."""
        return JSONResponse(
            {"error": "invalid_request", "message": validation_message(exc.errors())},
            status_code=422,
        )

    app.add_middleware(RequestGuard)
    describe_contract(app)
    return app

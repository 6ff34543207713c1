"""The FastAPI application: its lifespan (the state, the dispatcher), its routers and
its error shapes.

FastAPI because it gives the OpenAPI document (/docs) and pydantic v2 validation for free
on an ASGI server (uvicorn); the ingestion hot path reads the raw body itself, to bound
gzip inflation and to answer Segment's way. A route module is one ``APIRouter`` that
takes what it needs from ``api.deps``; listing it in ``ROUTERS`` serves it. The error
roots of ``engine.errors`` are answered here, once each, from their ``status`` and
``code``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from temporalio.client import Client

from engine.errors import InputError, RefusedError, RulesError
from ingest.dispatcher import Dispatcher, policy_zones
from settings import Settings, get_settings

from . import (
    action_routes,
    admin_routes,
    codec_routes,
    dead_letter_routes,
    dev_routes,
    experiment_routes,
    health_routes,
    ingest_routes,
    merge_routes,
    public_routes,
    report_routes,
)
from ._guard import INGESTION, RequestGuard, route_class
from ._openapi import describe_contract, validation_message
from .state import AppState

log = logging.getLogger(__name__)

# in the order of /docs
ROUTERS: tuple[APIRouter, ...] = (
    ingest_routes.router,
    admin_routes.router,
    merge_routes.router,
    health_routes.router,
    action_routes.router,
    public_routes.router,
    dead_letter_routes.router,
    dev_routes.router,
    report_routes.router,
    experiment_routes.router,
    codec_routes.router,
)


def create_app(settings: Settings | None = None, *, temporal: Client | None = None) -> FastAPI:
    """The app; ``temporal`` is a connected client to use instead of connecting (tests)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = AppState(settings, temporal=temporal)
        app.state.journeys = state
        await state.pool.open()
        stop = asyncio.Event()
        task = None
        if settings.dispatcher:
            state.dispatcher = Dispatcher(
                state.pool,
                settings.require_database_url(),
                state.client,
                task_queue=settings.task_queue,
                on_delivered=state.delivered,
                ids=state.ids,
                time_zones=policy_zones(settings.rules_dir),
            )
            task = asyncio.create_task(state.dispatcher.run(stop))
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
    for router in ROUTERS:
        app.include_router(router)

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

    async def by_root(request: Request, exc: Exception) -> JSONResponse:
        """A root of ``engine.errors`` no route caught: its ``status``, its ``code`` as
        ``error`` and its sentence (which never holds submitted data)."""
        assert isinstance(exc, InputError | RefusedError | RulesError)
        shape = {"success": False} if route_class(request.scope["path"]) is INGESTION else {}
        return JSONResponse(
            {**shape, "error": exc.code, "message": str(exc)}, status_code=exc.status
        )

    for root in (InputError, RefusedError, RulesError):
        app.add_exception_handler(root, by_root)

    app.add_middleware(RequestGuard)
    describe_contract(app)
    return app

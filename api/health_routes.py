"""Health (the process is up), readiness (PostgreSQL and Temporal answer) and Prometheus
metrics: no credentials, for load balancers and scrapers."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import generate_latest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from store import db, dead_letters

from .deps import State

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, bool]:
    """The process is up."""
    return {"ok": True}


@router.get("/readyz")
async def readyz(state: State) -> JSONResponse:
    """PostgreSQL and Temporal are reachable."""
    checks: dict[str, str] = {}
    try:
        async with state.pool.connection(timeout=3) as conn:
            await db.ping(conn)
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = f"unreachable: {type(exc).__name__}"
    try:
        client = await state.client()
        await client.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=timedelta(seconds=3)
        )
        checks["temporal"] = "ok"
    except Exception as exc:
        checks["temporal"] = f"unreachable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(state: State) -> PlainTextResponse:
    """Prometheus metrics: events accepted, deduplicated, rejected by reason, latency,
    delivered, dead letters."""
    with contextlib.suppress(Exception):  # the figures we have are still worth scraping
        async with state.pool.connection(timeout=2) as conn:
            await state.outbox_depth(conn)
            state.metrics.dead_letters_waiting.set(await dead_letters.count(conn))
    return PlainTextResponse(
        generate_latest(state.metrics.registry).decode(), media_type="text/plain; version=0.0.4"
    )

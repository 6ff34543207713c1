"""Admin reads and overrides (admin token), health, readiness and metrics."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import generate_latest
from pydantic import BaseModel, Field
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from engine import CustomerState
from engine.identity import is_hashed, scrub_text
from ingest.segment import IngestError
from orchestration import customers
from store import dead_letters, read_model, tags

from .app import AppState
from .auth import credential

router = APIRouter()
PG_BIGINT = 2**63 - 1  # ids are bigserial: a larger number cannot name a row


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.journeys
    return state


async def require_admin(request: Request) -> AppState:
    state = _state(request)
    try:
        token = credential(request.headers.get("authorization"))
    except IngestError as exc:
        raise HTTPException(401, {"error": exc.reason, "message": str(exc)}) from None
    if not token:
        raise HTTPException(
            401,
            {"error": "missing_token", "message": "send the admin token as Authorization: Bearer"},
        )
    await check_admin(state, token, what="read or change customers")
    return state


async def check_admin(
    state: AppState, token: str, *, what: str, headers: dict[str, str] | None = None
) -> None:
    """Refuse anything but a live admin token: 403 for a write key (it cannot ``what``),
    401 otherwise (with ``headers``, e.g. a Basic challenge)."""
    async with state.pool.connection() as conn:
        await state.refresh(conn)
    if state.keys.check(token, "admin") is not None:
        return
    if state.keys.check(token, "write") is not None:
        raise HTTPException(
            403,
            {"error": "write_key", "message": f"a write key cannot {what}; use an admin token"},
        )
    raise HTTPException(
        401,
        {"error": "bad_token", "message": "the admin token is unknown or revoked"},
        headers=headers,
    )


Admin = Annotated[AppState, Depends(require_admin)]


def _shown(customer_id: str) -> str:
    """The id in an error sentence: itself when safe to show, never contact details."""
    return "with this id" if is_hashed(customer_id) else f"'{customer_id}'"


async def _temporal(state: AppState) -> Any:
    try:
        return await state.client()
    except Exception:
        raise HTTPException(
            503,
            {"error": "temporal_unavailable", "message": "Temporal is not reachable; retry later"},
        ) from None


def _journeys(st: CustomerState) -> dict[str, Any]:
    out = {}
    for name, run in sorted(st.runs.items()):
        nxt = min(run.timers, key=lambda t: t.due_at) if run.timers else None
        out[name] = {
            "state": run.state,
            "status": run.status,
            "version": run.version,
            "context": run.context,
            "entered_at": run.entered_at,
            "enrolled_at": run.enrolled_at,
            "next_timer": {"after": nxt.label, "due_at": nxt.due_at} if nxt else None,
            "history": [t.model_dump(mode="json") for t in run.history],
        }
    return out


_METRIC_NAMES = (
    "recency_days",
    "orders",
    "revenue",
    "r",
    "f",
    "m",
    "segment",
    "tier",
    "ltv",
    "ltv_orders",
    "aov",
    "first_order_at",
    "last_order_at",
    "as_of",
    "computed_at",
)
_METRICS = f"SELECT {', '.join(_METRIC_NAMES)} FROM customer_metrics WHERE customer_id = %s"


def _journeys_stored(snap: read_model.Snapshot, history: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for j in snap.journeys:
        nxt = (
            {"after": j.next_timer_label, "due_at": j.next_timer_due, "to": j.next_timer_target}
            if j.next_timer_due
            else None
        )
        out[j.journey] = {
            "state": j.state,
            "status": j.status,
            "version": j.version,
            "context": j.context,
            "entered_at": j.since,
            "enrolled_at": j.enrolled_at,
            "next_timer": nxt,
            "history": history.get(j.journey, []),
        }
    return out


@router.get("/v1/customers/{customer_id}", tags=["admin"])
async def get_customer(
    customer_id: str,
    state: Admin,
    live: Annotated[
        bool, Query(description="ask the customer's workflow instead of the read model")
    ] = False,
) -> dict[str, Any]:
    """A customer's profile and every journey they are in: from PostgreSQL's read model
    (fast, and available while Temporal or a worker is down), or with ``live=true`` from
    the customer's workflow itself. A customer whose workflow has not written the read
    model yet is asked live."""
    async with state.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT traits, anonymous_id, first_seen, updated_at FROM customers"
            " WHERE customer_id = %s",
            (customer_id,),
        )
        profile = await cur.fetchone()
        cur = await conn.execute(
            "SELECT count(*) FROM events WHERE customer_id = %s", (customer_id,)
        )
        count_row = await cur.fetchone()
        cur = await conn.execute(_METRICS, (customer_id,))
        metrics_row = await cur.fetchone()
        metrics = dict(zip(_METRIC_NAMES, metrics_row, strict=True)) if metrics_row else None
        snap = None if live else await read_model.read(conn, customer_id)
        tagged = await tags.tags_of(conn, customer_id)
        history = await read_model.history(conn, customer_id) if snap else {}
    events = int(count_row[0]) if count_row else 0
    journeys: dict[str, Any] = {}
    problems: list[Any] = []
    if snap is not None:
        journeys = _journeys_stored(snap, history)
        problems = snap.problems
        tier, segment = snap.tier, snap.segment
    else:
        journeys, problems, tier, segment = await _live(state, customer_id)
    if metrics:  # the latest refresh is the truth; the workflow learns it on its next event
        tier, segment = metrics["tier"], metrics["segment"]
    if profile is None and not journeys and not events:
        raise HTTPException(
            404, {"error": "unknown_customer", "message": f"no customer {_shown(customer_id)}"}
        )
    return {
        "customer_id": customer_id,
        "traits": profile[0] if profile else {},
        "anonymous_id": profile[1] if profile else None,
        "first_seen": profile[2] if profile else None,
        "tier": tier,
        "segment": segment,
        "tags": [t.tag for t in tagged],  # what tag actions wrote (segments read the same)
        "metrics": metrics,
        "events": events,
        "journeys": journeys,
        "problems": problems,
        "read_from": "read_model" if snap is not None else "workflow",
        "as_of": snap.at if snap is not None else None,
    }


async def _live(
    state: AppState, customer_id: str
) -> tuple[dict[str, Any], list[Any], str | None, str | None]:
    """Journeys, problems, tier and segment from the customer's workflow (a query)."""
    client = await _temporal(state)
    try:
        st = await customers.state(client, customer_id, ids=state.ids)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise HTTPException(
                503,
                {
                    "error": "temporal_unavailable",
                    "message": "could not query the customer's workflow",
                },
            ) from None
        return {}, [], None, None
    problems = [p.model_dump(mode="json") for p in st.problems]
    return _journeys(st), problems, st.customer.tier, st.customer.segment


@router.get("/v1/customers/{customer_id}/events", tags=["admin"])
async def get_events(
    customer_id: str,
    state: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=PG_BIGINT, description="page: events with id below this")
    ] = None,
) -> dict[str, Any]:
    """The customer's events, newest first."""
    async with state.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, type, name, properties, event_time, received_at, message_id FROM events"
            " WHERE customer_id = %s AND (%s::bigint IS NULL OR id < %s)"
            " ORDER BY id DESC LIMIT %s",
            (customer_id, before, before, limit),
        )
        rows = await cur.fetchall()
    items = [
        {
            "id": r[0],
            "type": r[1],
            "name": r[2],
            "properties": r[3],
            "timestamp": r[4],
            "received_at": r[5],
            "message_id": r[6],
        }
        for r in rows
    ]
    return {"events": items, "next": items[-1]["id"] if len(items) == limit else None}


@router.get("/v1/journeys", tags=["admin"])
async def get_journeys(state: Admin) -> dict[str, Any]:
    """Published journeys, their versions, and how many customers are in each state."""
    async with state.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT seq, latest, floor FROM catalogs ORDER BY seq DESC LIMIT 1"
        )
        head = await cur.fetchone()
        cur = await conn.execute(
            "SELECT journey, version, digest, source, published_at, definition"
            " FROM journey_versions ORDER BY journey, version"
        )
        rows = await cur.fetchall()
    latest = head[1] if head else {}
    client = await _temporal(state)
    out: dict[str, Any] = {}
    for name, version, digest, source, published, definition in rows:
        entry = out.setdefault(name, {"latest": latest.get(name), "versions": [], "states": {}})
        entry["versions"].append(
            {"version": version, "digest": digest, "source": source, "published_at": published}
        )
        if version == latest.get(name):
            for st in definition["states"]:
                query = f"WorkflowType = 'CustomerWorkflow' AND Journeys = '{name}:{st}'"
                try:
                    entry["states"][st] = (await client.count_workflows(query)).count
                except RPCError:
                    entry["states"][st] = None
    return {"catalog": head[0] if head else 0, "journeys": out}


class MoveBody(BaseModel):
    state: str = Field(min_length=1)
    reason: str = Field(min_length=1, max_length=500)


@router.post("/v1/customers/{customer_id}/journeys/{journey}/move", tags=["admin"])
async def move_customer(
    customer_id: str, journey: str, body: MoveBody, state: Admin
) -> dict[str, Any]:
    """Move a customer to a state (validated; the reason is recorded in the history)."""
    client = await _temporal(state)
    try:
        result = await customers.move(
            client, customer_id, journey, body.state, body.reason, ids=state.ids
        )
    except WorkflowUpdateFailedError as exc:
        # the sentence names what was asked for: only identifiers are echoed
        asked = [v for v in (body.state, journey) if not re.fullmatch(r"[a-z][a-z0-9_]*", v)]
        message = scrub_text(str(exc.cause or exc), asked)
        raise HTTPException(400, {"error": "invalid_move", "message": message}) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(
                404,
                {
                    "error": "unknown_customer",
                    "message": f"no workflow for customer {_shown(customer_id)}",
                },
            ) from None
        raise
    return result.model_dump()


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, bool]:
    """The process is up."""
    return {"ok": True}


@router.get("/readyz", tags=["health"])
async def readyz(request: Request) -> JSONResponse:
    """PostgreSQL and Temporal are reachable."""
    state = _state(request)
    checks: dict[str, str] = {}
    try:
        async with state.pool.connection(timeout=3) as conn:
            await conn.execute("SELECT 1")
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


@router.get("/metrics", tags=["health"], response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus metrics: events accepted, deduplicated, rejected by reason, latency,
    delivered, dead letters."""
    state = _state(request)
    try:
        async with state.pool.connection(timeout=2) as conn:
            await state.outbox_depth(conn)
            state.metrics.dead_letters_waiting.set(await dead_letters.count(conn))
    except Exception:
        pass
    return PlainTextResponse(
        generate_latest(state.metrics.registry).decode(), media_type="text/plain; version=0.0.4"
    )

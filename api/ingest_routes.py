"""Segment-compatible ingestion: /v1/track, identify, page, screen, group, alias, batch;
and /v1/sources/{name}, the webhooks of other event sources (``ingest.sources``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout

from ingest import sources
from ingest.accept import accept
from ingest.segment import MAX_BATCH_BYTES, IngestError, messages, parse_json, read_body

from .auth import credential
from .state import app_state

router = APIRouter(tags=["ingestion"])
OK = {"success": True}


def error(status: int, reason: str, message: str, **headers: str) -> JSONResponse:
    """Refusals say what was wrong and never repeat the submitted data."""
    return JSONResponse(
        {"success": False, "error": reason, "message": message},
        status_code=status,
        headers=headers or None,
    )


async def _raw_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BATCH_BYTES:
        raise IngestError(
            413,
            "batch_too_large",
            f"the request is over {MAX_BATCH_BYTES // 1024} KB; send smaller batches",
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BATCH_BYTES:
            raise IngestError(
                413,
                "batch_too_large",
                f"the request is over {MAX_BATCH_BYTES // 1024} KB; send smaller batches",
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def ingest(
    request: Request, kind: str | None, source_name: str | None = None
) -> JSONResponse:
    """Accept ``kind`` messages (a batch when None): the Segment contract, answered the
    Segment way (``{"success": ...}``), with metrics per endpoint and refusal reason.
    With ``source_name``, the body is that source's webhook delivery: verified and
    translated into a batch (:mod:`ingest.sources`), then accepted exactly like one."""
    state = app_state(request)
    metrics = state.metrics
    started = time.perf_counter()
    endpoint = kind or ("source" if source_name else "batch")
    try:
        received_at = datetime.now(UTC)
        source = sources.get(source_name) if source_name is not None else None
        if source is not None:
            endpoint = f"source:{source.name}"  # registered names only: bounded labels
        body = read_body(await _raw_body(request), request.headers.get("content-encoding"))
        data = parse_json(body)
        key = credential(request.headers.get("authorization"))
        if key is None and source is None and isinstance(data.get("writeKey"), str):
            key = data["writeKey"]
        if not key:
            raise IngestError(
                401,
                "missing_key",
                "send your write key as the HTTP Basic user "
                "name, as Authorization: Bearer, or as writeKey in the body",
            )
        async with state.pool.connection(timeout=5.0) as conn:
            await state.refresh(conn)
            key_source = state.keys.check(key, "write")
            if key_source is None:
                raise IngestError(401, "bad_key", "the write key is unknown or revoked")
            if source is not None:
                source.verify(state.settings, request.headers, body)
                data = _translated(source, data)
                if not data["batch"]:
                    return JSONResponse({**OK, "ignored": 1})
            if not state.limiter.allow(key_source):
                metrics.rejected.labels("rate_limited").inc()
                return error(
                    429,
                    "rate_limited",
                    "too many requests for this write key; retry after a second",
                    **{"Retry-After": "1"},
                )
            if await state.outbox_depth(conn) >= state.settings.max_outbox:
                metrics.rejected.labels("backlog").inc()
                return error(
                    429,
                    "backlog",
                    "the journeys engine is behind; retry in a few seconds (nothing was stored)",
                    **{"Retry-After": "5"},
                )
            batch = messages(data, kind=kind, received_at=received_at)
            result = await accept(
                conn,
                key_source,
                batch,
                received_at,
                state.interest,
                rules=state.identity_rules,
                actor=f"write key {state.keys.name(key_source)}",
            )
        metrics.accepted.inc(result.stored)
        metrics.deduped.inc(result.duplicates)
        return JSONResponse(OK)
    except IngestError as exc:
        metrics.rejected.labels(exc.reason).inc()
        return error(exc.status, exc.reason, str(exc))
    except (psycopg.OperationalError, psycopg.errors.AdminShutdown, PoolTimeout, OSError):
        metrics.rejected.labels("storage_unavailable").inc()
        return error(
            503,
            "storage_unavailable",
            "the event store is unavailable; nothing was stored, retry",
            **{"Retry-After": "2"},
        )
    finally:
        metrics.latency.labels(endpoint).observe(time.perf_counter() - started)


def _translated(source: sources.Source, delivery: dict[str, Any]) -> dict[str, Any]:
    """``delivery`` as the batch it means. A source refuses what it cannot read with an
    ``IngestError``; anything else it raises is still the delivery's shape, not ours."""
    try:
        batch = source.translate(delivery)
    except IngestError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise IngestError(
            400,
            "bad_source_message",
            f"the body is not a {source.name} delivery this source can read",
        ) from None
    return {"batch": batch}


@router.post("/v1/sources/{name}", summary="Another event source's webhook")
async def ingest_source(request: Request, name: str) -> JSONResponse:
    """Accept a webhook delivery of the event source ``name`` (``ingest/sources/``: e.g.
    ``stripe``), authenticated with a write key like ``/v1/batch`` and verified by the
    source (its signature). The delivery becomes Segment messages, checked, deduplicated
    and stored exactly like a batch; a kind of delivery Journeys does not use is answered
    ``{"success": true, "ignored": 1}`` and stores nothing."""
    return await ingest(request, None, name)


def _route(kind: str | None) -> Any:
    async def handler(request: Request) -> JSONResponse:
        return await ingest(request, kind)

    handler.__name__ = f"ingest_{kind or 'batch'}"
    handler.__doc__ = (
        f"Accept a Segment `{kind}` message."
        if kind
        else 'Accept a Segment batch: `{"batch": [messages]}`.'
    )
    return handler


for _kind in ("track", "identify", "page", "screen", "group", "alias"):
    router.add_api_route(
        f"/v1/{_kind}", _route(_kind), methods=["POST"], summary=f"Segment {_kind}"
    )
router.add_api_route("/v1/batch", _route(None), methods=["POST"], summary="Segment batch")
router.add_api_route(
    "/v1/import", _route(None), methods=["POST"], summary="Segment batch (import alias)"
)

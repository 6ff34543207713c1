"""What a route asks for, as ``Annotated`` aliases: a route module imports these (and
``api.auth`` for credentials it reads itself), never the app or another route module.

    State         the app's ``AppState`` (settings, key cache, metrics, ...)
    Pool          the PostgreSQL pool
    Temporal      the Temporal client; 503 ``temporal_unavailable`` when unreachable
    Admin         the caller's admin key id: ``Authorization: Bearer TOKEN``, else 401/403
    BrowserAdmin  the same, or a browser's Basic login (401 with a Basic challenge)
    DevAdmin      Admin, and only with JOURNEYS_ENV=development (404 elsewhere)

Put the caller first among a route's parameters: FastAPI resolves dependencies in that
order, so credentials are checked before anything is connected. Dependencies are resolved
before the body is validated: a route with a body calls ``connected`` in its code instead
of taking ``Temporal``, so a bad body is a 422 even while Temporal is down."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from ingest.segment import IngestError

from .auth import check_admin, parse
from .state import AppState, app_state

State = Annotated[AppState, Depends(app_state)]


def _pool(state: State) -> AsyncConnectionPool[Any]:
    return state.pool


Pool = Annotated[AsyncConnectionPool[Any], Depends(_pool)]


async def connected(state: AppState) -> Client:
    """The Temporal client, or 503 when Temporal cannot be reached (for routes that need
    it only sometimes; the others take ``Temporal``)."""
    try:
        return await state.client()
    except Exception:
        raise HTTPException(
            503,
            {"error": "temporal_unavailable", "message": "Temporal is not reachable; retry later"},
        ) from None


async def _temporal(state: State) -> Client:
    return await connected(state)


Temporal = Annotated[Client, Depends(_temporal)]


async def require_admin(request: Request, state: State) -> int:
    """The admin token from ``Authorization: Bearer`` (its key id), else 401 or 403."""
    try:
        found = parse(request.headers.get("authorization"))
    except IngestError as exc:
        raise HTTPException(401, {"error": exc.reason, "message": str(exc)}) from None
    token = found.key if found is not None else None
    if not token:
        raise HTTPException(
            401,
            {"error": "missing_token", "message": "send the admin token as Authorization: Bearer"},
        )
    return await check_admin(state, token, what="read or change customers")


Admin = Annotated[int, Depends(require_admin)]

CHALLENGE = {"WWW-Authenticate": 'Basic realm="Journeys reports", charset="UTF-8"'}


async def require_admin_browser(request: Request, state: State) -> int:
    """The admin token from a Bearer header or a browser's Basic login (the password, any
    user name); without one, 401 with a Basic challenge so the browser asks for it."""
    try:
        found = parse(request.headers.get("authorization"))
    except IngestError:
        found = None
    token = found.login if found is not None else None
    if not token:
        raise HTTPException(
            401,
            {
                "error": "missing_token",
                "message": "log in with the admin token as password (any user name),"
                " or send Authorization: Bearer TOKEN",
            },
            headers=CHALLENGE,
        )
    return await check_admin(state, token, what="read reports", headers=CHALLENGE)


BrowserAdmin = Annotated[int, Depends(require_admin_browser)]


async def require_dev_admin(request: Request, state: State) -> int:
    """The admin token, and only in development: elsewhere these routes do not exist."""
    if state.settings.env != "development":
        raise HTTPException(
            404,
            {
                "error": "not_found",
                "message": "development endpoints exist only with JOURNEYS_ENV=development",
            },
        )
    return await require_admin(request, state)


DevAdmin = Annotated[int, Depends(require_dev_admin)]

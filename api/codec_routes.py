"""The codec endpoint: Temporal's remote codec protocol, so admins read decoded payloads
in the Temporal UI and the ``temporal`` CLI (``--codec-endpoint URL/codec``).

``POST /codec/encode`` and ``POST /codec/decode`` take and return ``{"payloads": [...]}``
(protobuf JSON). Admins only: the admin token as ``Authorization: Bearer`` (the CLI's
``--codec-auth``), or the cookie ``/codec/login`` sets (a browser: the Temporal UI sends it
with "include cross-origin credentials"). Browsers are let in from the origins in
``JOURNEYS_CODEC_CORS_ORIGINS`` only."""

from __future__ import annotations

import logging
from html import escape
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from ingest.segment import IngestError
from orchestration.codec import EncryptionCodec, PayloadKeyError, parse_keys

from .auth import check_admin, credential
from .deps import State
from .state import AppState, app_state

log = logging.getLogger(__name__)
router = APIRouter()
COOKIE = "journeys_codec"
MAX_BODY = 8 * 1024 * 1024  # a UI page of payloads; Temporal caps each at 2 MB
_ALLOW_HEADERS = "Authorization, Content-Type, X-Namespace"


def _cors(request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    state = app_state(request)
    allowed = {o.strip().rstrip("/") for o in state.settings.codec_cors_origins.split(",")}
    if not origin or origin.rstrip("/") not in allowed:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": _ALLOW_HEADERS,
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


def _fail(request: Request, status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "message": message}, status_code=status, headers=_cors(request)
    )


def _codec(state: AppState) -> EncryptionCodec:
    if state.codec is None:
        state.codec = EncryptionCodec(parse_keys(state.settings.payload_keys))
    return state.codec


_LOGIN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Journeys: decode payloads</title></head>
<body><h1>Decode payloads in the Temporal UI</h1>
<p>{note}</p>
<form method="post" action="/codec/login">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="off" required>
<button type="submit">Sign in</button>
</form>
<p>Then, in the Temporal UI's codec server settings, turn on
<em>Include cross-origin credentials</em>.</p></body></html>
"""


@router.get("/codec/login", include_in_schema=False)
async def codec_login_page() -> HTMLResponse:
    """A form that stores the admin token in a cookie for the codec endpoint only."""
    note = "The Temporal UI decodes payloads through this API with your admin token."
    return HTMLResponse(_LOGIN.format(note=escape(note)), headers={"Cache-Control": "no-store"})


@router.post("/codec/login", include_in_schema=False)
async def codec_login(request: Request, state: State) -> HTMLResponse:
    body = await request.body()
    if len(body) > 4096:
        return HTMLResponse(_LOGIN.format(note="That is not an admin token."), status_code=413)
    try:
        fields = parse_qs(body.decode(), max_num_fields=4)
    except (UnicodeDecodeError, ValueError):
        fields = {}
    token = (fields.get("token") or [""])[0].strip()
    try:
        await check_admin(state, token, what="decode payloads")
    except HTTPException:
        return HTMLResponse(
            _LOGIN.format(note="That is not a live admin token; try again."), status_code=401
        )
    page = HTMLResponse(
        _LOGIN.format(note="Signed in: the Temporal UI can decode payloads now."),
        headers={"Cache-Control": "no-store"},
    )
    page.set_cookie(
        COOKIE,
        token,
        max_age=12 * 3600,
        path="/codec",
        httponly=True,
        samesite="lax",  # the UI and the API are one site (same host, other port)
        secure=request.url.scheme == "https",
    )
    return page


@router.options("/codec/{op}", include_in_schema=False)
async def codec_preflight(op: str, request: Request) -> Response:
    """CORS preflight of the Temporal UI (no credentials are sent with it)."""
    return Response(status_code=204, headers=_cors(request))


async def _admin(request: Request, state: AppState) -> str | None:
    """Why the caller is not an admin (a sentence), or None."""
    try:
        token = credential(request.headers.get("authorization"))
    except IngestError as exc:
        return str(exc)
    token = token or request.cookies.get(COOKIE)
    if not token:
        return "send the admin token as Authorization: Bearer (or sign in at /codec/login)"
    try:
        await check_admin(state, token, what="decode payloads")
    except HTTPException as exc:
        detail: Any = exc.detail
        return str(detail.get("message") if isinstance(detail, dict) else detail)
    return None


@router.post("/codec/{op}", tags=["admin"])
async def codec(op: str, request: Request, state: State) -> Response:
    """Encode or decode payloads for the Temporal UI and CLI (remote codec protocol)."""
    if op not in ("encode", "decode"):
        return _fail(request, 404, "not_found", "use /codec/encode or /codec/decode")
    refused = await _admin(request, state)
    if refused is not None:
        return _fail(request, 401, "unauthorized", refused)
    namespace = request.headers.get("x-namespace")
    if namespace and namespace != state.settings.temporal_namespace:
        return _fail(
            request,
            400,
            "wrong_namespace",
            f"this codec serves the namespace {state.settings.temporal_namespace!r}",
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return _fail(request, 413, "too_large", f"send at most {MAX_BODY} bytes at once")
    payloads = Payloads()
    try:
        json_format.Parse(bytes(body) or b"{}", payloads)
    except (json_format.ParseError, UnicodeDecodeError, ValueError, RecursionError):
        return _fail(request, 400, "bad_json", 'send {"payloads": [...]} as protobuf JSON')
    codec = _codec(state)
    try:
        if op == "encode":
            out = await codec.encode(list(payloads.payloads))
        else:
            out = await codec.decode(list(payloads.payloads))
    except PayloadKeyError as exc:
        return _fail(request, 400, "undecodable", str(exc))
    result = json_format.MessageToDict(Payloads(payloads=out))
    return JSONResponse({"payloads": result.get("payloads", [])}, headers=_cors(request))

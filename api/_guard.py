"""The first thing every HTTP request meets: one ASGI middleware that bounds what a client
can make us read, before any route parses a body or checks a credential.

* **Per route class** a byte limit on the declared ``Content-Length`` (refused before a
  byte is read) and on the bytes actually streamed (chunked bodies, lying headers):
  ingestion 500 KB (Segment's limit), the public survey and unsubscribe forms 16 KB,
  the codec endpoint 8 MB (whole Temporal payloads), everything else (admin) 64 KB.
* An admin request with a body but no ``Authorization`` header is refused before its body
  is read: without credentials a client cannot make us read anything.
* A URL holding a NUL character (``%00``) is refused: PostgreSQL cannot store or compare
  one, and no id, token or name of ours contains it.
* Admin and public JSON bodies are checked with the ingestion parser's rules
  (``ingest.sanitize``): no NUL, lone surrogates, NaN, infinities, huge integers or
  runaway nesting reach a route. Ingestion bodies are left to the ingestion parser, which
  also inflates gzip.

Refusals use the project's JSON shape ``{"error", "message"}`` (ingestion's adds
``"success": false``), and never repeat what was sent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from email.message import Message as MimeHeader
from typing import Any

from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest import sanitize
from ingest.segment import MAX_BATCH_BYTES, IngestError


@dataclass(frozen=True)
class RouteClass:
    name: str
    max_bytes: int
    admin: bool  # a body needs credentials before we read it
    inspect_json: bool  # check JSON bodies with the ingestion parser's rules


INGESTION = RouteClass("ingestion", MAX_BATCH_BYTES, admin=False, inspect_json=False)
PUBLIC = RouteClass("public", 16 * 1024, admin=False, inspect_json=True)
ADMIN = RouteClass("admin", 64 * 1024, admin=True, inspect_json=True)
# the Temporal UI's and CLI's codec calls carry whole payloads (up to Temporal's 2 MB blob
# each); the UI authenticates with the codec cookie instead of an Authorization header
CODEC = RouteClass("codec", 8 * 1024 * 1024, admin=True, inspect_json=False)
CODEC_PATHS = frozenset({"/codec/encode", "/codec/decode"})
CODEC_COOKIE = "journeys_codec="

INGESTION_PATHS = frozenset(
    f"/v1/{kind}"
    for kind in ("track", "identify", "page", "screen", "group", "alias", "batch", "import")
)
SOURCE_PREFIX = "/v1/sources/"  # webhooks of other event sources (ingest/sources/)
PUBLIC_PREFIXES = ("/v1/surveys/", "/s/", "/u/")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def route_class(path: str) -> RouteClass:
    """The class whose limits apply to ``path``."""
    if path.rstrip("/") in INGESTION_PATHS or path.startswith(SOURCE_PREFIX):
        return INGESTION
    if path.startswith(PUBLIC_PREFIXES) or path == "/codec/login":
        return PUBLIC
    if path.rstrip("/") in CODEC_PATHS:
        return CODEC
    return ADMIN


def _too_large(cls: RouteClass) -> dict[str, Any]:
    if cls is INGESTION:
        return {
            "success": False,
            "error": "batch_too_large",
            "message": f"the request is over {cls.max_bytes // 1024} KB; send smaller batches",
        }
    return {"error": "too_large", "message": f"the request body is over {cls.max_bytes} bytes"}


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the streamed body passes its class's limit; routes let
    it through (FastAPI re-raises HTTPException while reading a body) and the app's
    HTTPException handler answers 413."""

    def __init__(self, cls: RouteClass) -> None:
        super().__init__(413, _too_large(cls))


def _is_json(content_type: str | None) -> bool:
    """FastAPI's rule: no Content-Type, or application/json or application/*+json."""
    if not content_type:
        return True
    header = MimeHeader()
    header["content-type"] = content_type
    subtype = header.get_content_subtype()
    return header.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class RequestGuard:
    """The ASGI middleware (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        cls = route_class(path)
        query: bytes = scope.get("query_string", b"")
        if "\x00" in path or b"\x00" in query or b"%00" in query:
            await _answer(
                scope, send, 400, "bad_url", "the URL contains a NUL character (%00)", cls=cls
            )
            return
        headers = _headers(scope)
        declared = _content_length(headers.get("content-length"))
        has_body = bool(declared) or "transfer-encoding" in headers
        method: str = scope["method"]
        credentials = bool(headers.get("authorization")) or (
            cls is CODEC and CODEC_COOKIE in headers.get("cookie", "")
        )
        if cls.admin and has_body and method in _BODY_METHODS and not credentials:
            await _answer(
                scope,
                send,
                401,
                "missing_token",
                "send the admin token as Authorization: Bearer",
                cls=cls,
            )
            return
        if declared is not None and declared > cls.max_bytes:
            await _respond(scope, send, 413, _too_large(cls))
            return
        if cls.inspect_json and has_body and _is_json(headers.get("content-type")):
            body = await _read(receive, cls)
            if body is None:
                await _respond(scope, send, 413, _too_large(cls))
                return
            refusal = _refusal(body)
            if refusal is not None:
                await _answer(scope, send, 400, refusal.reason, str(refusal), cls=cls)
                return
            receive = _replay(body, receive)
        else:
            receive = _counting(receive, cls)
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except BodyTooLarge as exc:  # raised where no handler caught it
            if started:
                raise
            assert isinstance(exc.detail, dict)
            await _respond(scope, send, 413, exc.detail)


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in scope.get("headers", []):
        out.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
    return out


def _content_length(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip()[:20])  # 20 digits bound int() and exceed any limit


async def _read(receive: Receive, cls: RouteClass) -> bytes | None:
    """The whole body, or None once it passes the class's limit (stops reading there)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the route sees an empty or partial body
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cls.max_bytes:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _refusal(body: bytes) -> IngestError | None:
    """Why ``body`` cannot reach a route, or None (malformed JSON is left to the route,
    which words it)."""
    try:
        sanitize.check_text(sanitize.loads(body), "body")
    except IngestError as exc:
        return exc
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _counting(receive: Receive, cls: RouteClass) -> Receive:
    size = 0

    async def counting() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > cls.max_bytes:
                raise BodyTooLarge(cls)
        return message

    return counting


async def _answer(
    scope: Scope, send: Send, status: int, error: str, message: str, *, cls: RouteClass
) -> None:
    shape = {"success": False} if cls is INGESTION else {}  # as the ingestion routes answer
    await _respond(scope, send, status, {**shape, "error": error, "message": message})


async def _respond(scope: Scope, send: Send, status: int, body: dict[str, Any]) -> None:
    """Answer without reading the body; ``Connection: close`` because an unread body
    cannot be skipped on a kept-alive connection. Ingestion refusals are counted in
    ``journeys_requests_rejected_total`` like the routes' own."""
    state = getattr(getattr(scope.get("app"), "state", None), "journeys", None)
    if state is not None and route_class(scope["path"]) is INGESTION:
        state.metrics.rejected.labels(body["error"]).inc()
    response = JSONResponse(body, status_code=status, headers={"Connection": "close"})

    async def nothing() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, nothing, send)

"""The HTTP stand-in (an SMS provider, a customer's webhook): a real server in a thread
of its own that records what it received (see ``tests.standins``)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Reply:
    """What the HTTP stand-in answers: a status, a body (dict/list as JSON), headers, and
    a delay before answering (to make clients time out)."""

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, dict | list):
            return json.dumps(self.body).encode(), "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return self.body, "application/octet-stream"


@dataclass(frozen=True)
class Recorded:
    """One HTTP request as received; header names in lower case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class RecordingHTTPServer:
    """An HTTP/1.1 server on 127.0.0.1 (random port) that records every request.

    It answers the replies of ``script`` in order, then ``200 {"id": "rec_<n>"}``. Like
    Stripe's API, it remembers the answer to a request with an ``Idempotency-Key`` and
    replays it to a repeated key without delivering again; unlike Stripe, only 2xx answers
    are remembered (a 503 means "nothing happened, retry"), so a retry after a 503 is a new
    attempt. ``requests`` holds every request, ``deliveries`` the ones that were accepted
    (2xx, not replays): what the receiving side acted on. ``idempotent=False`` turns
    replays off, to see what a receiver without that protection would get."""

    def __init__(self, *, script: list[Reply] | None = None, idempotent: bool = True) -> None:
        self.script = list(script or [])
        self.idempotent = idempotent
        self.requests: list[Recorded] = []
        self.deliveries: list[Recorded] = []
        self._replays: dict[str, Reply] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start the server first"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (append a path)."""
        return f"http://{HOST}:{self.port}"

    def answer(self, request: Recorded) -> Reply:
        """The reply to ``request``, recording it (called by the handler threads)."""
        with self._lock:
            self.requests.append(request)
            key = request.header("idempotency-key") if self.idempotent else None
            if key is not None and key in self._replays:
                return self._replays[key]
            if self.script:
                reply = self.script.pop(0)
            else:
                reply = Reply(200, {"id": f"rec_{len(self.deliveries) + 1}"})
            if 200 <= reply.status < 300:
                # remembered before the delay: a client that timed out and retries while
                # this answer is still "in flight" gets the replay, as with a real provider
                self.deliveries.append(request)
                if key is not None:
                    self._replays[key] = replace(reply, delay=0.0)
            return reply

    async def wait_for(self, deliveries: int, *, timeout: float = 10.0) -> list[Recorded]:
        """Wait until at least ``deliveries`` were accepted; returns them."""
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < deliveries:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {deliveries} deliveries, got {len(self.deliveries)}"
                    f" (requests: {[(r.method, r.path) for r in self.requests]})"
                )
            await asyncio.sleep(0.02)
        return list(self.deliveries)

    def start(self) -> RecordingHTTPServer:
        server = ThreadingHTTPServer((HOST, 0), _HTTPHandler)
        server.daemon_threads = True
        server.owner = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> RecordingHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RecordingHTTPServer:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)


class _HTTPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real providers

    def _handle(self) -> None:
        owner: RecordingHTTPServer = self.server.owner  # type: ignore[attr-defined]
        # httpx sends Content-Length for byte bodies; chunked bodies are not needed here
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = owner.answer(Recorded(self.command, self.path, headers, body, time.time()))
        if reply.delay:
            time.sleep(reply.delay)
        content, content_type = reply.encoded()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
        except OSError:  # the client gave up (timed out) meanwhile
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the test looks at .requests

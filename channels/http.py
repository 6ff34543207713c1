"""Calling a provider over HTTP (httpx) for the SMS and webhook channels: idempotent,
retried, signed, guarded against SSRF.

Every call carries an ``Idempotency-Key`` header (the action's key), so a provider that
honours it, like Stripe's API does, drops the resend after a worker died between its call
and the activity's completion. Transient failures are retried a few times here, quickly,
with exponential backoff and jitter; beyond that the activity fails and Temporal retries it
with its own policy. Redirects are never followed: the URL configured is the URL called.
Every call passes the SSRF guard (:mod:`channels.guard`); the SMS provider's own host
(JOURNEYS_SMS_URL, the operator's configuration rather than data) may be private."""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import logging
import random
import time
from dataclasses import replace

import httpx

from settings import Settings

from ._errors import PermanentDeliveryError, TransientDeliveryError, header_key
from .guard import AllowList, GuardedTransport

log = logging.getLogger(__name__)

TRIES = 3
BACKOFF_FIRST = 0.2  # seconds before the second try; doubles, with jitter, at most:
BACKOFF_MAX = 2.0
RETRY_AFTER_MAX = 5.0  # a provider asking for a longer pause gets it from Temporal's retries
TRANSIENT_STATUS = frozenset({408, 409, 425, 429})  # and every 5xx
SIGNATURE_HEADER = "Journeys-Signature"
USER_AGENT = "Journeys/1"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Journeys-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str, header: str, body: bytes, *, tolerance: int = 300, now: int | None = None
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and is at most ``tolerance``
    seconds old or early (replay protection). Several ``v1`` entries may be present (secret
    rotation); one matching is enough."""
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((int(time.time()) if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, c) for c in candidates)


def provider_id(response: httpx.Response) -> str:
    """The receiver's id for what it accepted: ``id``/``sid``/``message_id`` in a JSON body,
    else an ``X-Message-Id``/``X-Request-Id`` header, else ``"HTTP <status>"``."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("id", "sid", "message_id", "messageId"):
            value = data.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
                return str(value)
    for header in ("x-message-id", "x-request-id"):
        if response.headers.get(header):
            return response.headers[header]
    return f"HTTP {response.status_code}"


async def post(
    settings: Settings,
    url: str,
    content: bytes,
    headers: dict[str, str],
    *,
    idempotency_key: str,
    what: str,
    hint: str,
    secret: str | None = None,
    trusted: bool = False,
) -> httpx.Response:
    """POST ``content`` to ``url`` with retries, signed with ``secret`` when given (see
    :func:`sign`); ``trusted``: the URL's host is the operator's own configuration
    (JOURNEYS_SMS_URL), not data, so it may be private without being listed."""
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise PermanentDeliveryError(f"cannot call {url!r} ({what}): {exc}") from None
    headers = {**headers, "Idempotency-Key": header_key(idempotency_key), "User-Agent": USER_AGENT}
    timeout = settings.outbound_timeout_seconds
    allow = AllowList.parse(settings.outbound_allow)
    if trusted:
        allow = replace(allow, hosts=allow.hosts | {target.raw_host.decode("ascii").lower()})
    transport = GuardedTransport(allow)
    async with httpx.AsyncClient(
        transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
    ) as client:
        for attempt in range(1, TRIES + 1):
            if secret:  # a fresh timestamp per try, as receivers reject old ones
                headers[SIGNATURE_HEADER] = sign(secret, int(time.time()), content)
            wait: float | None = None
            try:
                response = await client.post(target, content=content, headers=headers)
            except httpx.TimeoutException:
                error = TransientDeliveryError(f"{what} to {url} timed out after {timeout:g}s")
            except httpx.TransportError as exc:  # refused, reset, TLS, protocol errors
                error = TransientDeliveryError(
                    f"{what} to {url} failed: {exc or type(exc).__name__}"
                )
            except TransientDeliveryError as exc:  # DNS trouble in the guard
                error = exc
            else:
                if response.is_success:
                    return response
                error, wait = _failure(response, url, what, hint)
            if attempt == TRIES:
                raise error
            delay = _backoff(attempt) if wait is None else wait
            if delay > RETRY_AFTER_MAX:
                raise TransientDeliveryError(f"{error} (it asks to retry after {delay:g}s)")
            log.info("%s; try %d of %d in %.2fs", error, attempt + 1, TRIES, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def _failure(
    response: httpx.Response, url: str, what: str, hint: str
) -> tuple[TransientDeliveryError, float | None]:
    """The transient error for a failed answer (with its Retry-After), or raises the
    permanent one."""
    status = response.status_code
    said = f"{status} {response.reason_phrase}".strip()
    snippet = response.text[:200].strip()
    if snippet:
        said += f": {snippet}"
    if response.is_redirect:
        location = response.headers.get("location", "?")
        raise PermanentDeliveryError(
            f"{what} to {url} answered {status}, redirecting to {location}; redirects are"
            " not followed, configure the final URL"
        )
    if status in TRANSIENT_STATUS or status >= 500:
        return TransientDeliveryError(f"{what} to {url} answered {said}"), _retry_after(response)
    raise PermanentDeliveryError(f"{what} to {url} was refused with {said}; {hint}")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None or response.status_code not in (429, 503):
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _backoff(attempt: int) -> float:
    """Exponential with "equal jitter": spreads the retries of many senders, yet always
    waits at least half the step."""
    step = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (attempt - 1))
    return random.uniform(step / 2, step)

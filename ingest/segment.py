"""The Segment HTTP tracking format: parse, check and normalise messages.

Pure functions over bytes and dicts; the HTTP layer (``api``) and the store (``ingest.accept``)
do the I/O. Limits and semantics follow Segment's HTTP Tracking API: 32 KB per message,
500 KB per request, event time = ``timestamp`` corrected by ``receivedAt - sentAt``.
``journeys simulate`` reads its event file through the same functions (``ingest.event_file``):
one parser, one set of bounds, one wording of every refusal.
"""

from __future__ import annotations

import json
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.names import normalize_event_name

from . import _bounds, sanitize
from ._errors import IngestError as IngestError  # the public name

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
# A batch's ``context`` is copied into each of its messages: all the copies together may
# add at most this much, so a 500 KB request cannot become hundreds of MB of rows.
MAX_CONTEXT_COPIES_BYTES = 500 * 1024
# a day inside Python's years 1-9999, so every session time zone can read the time back
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, 23, 59, 59, tzinfo=UTC)
TYPES = ("track", "identify", "page", "screen", "group", "alias")


def read_body(raw: bytes, encoding: str | None) -> bytes:
    """The request body, inflated if gzipped, never beyond ``MAX_BATCH_BYTES``: a gzip bomb
    stops after that many bytes instead of filling memory."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("identity", ""):
        body = raw
    elif enc in ("gzip", "x-gzip", "deflate"):
        wbits = 16 + zlib.MAX_WBITS if enc != "deflate" else zlib.MAX_WBITS
        inflater = zlib.decompressobj(wbits)
        try:
            body = inflater.decompress(raw, MAX_BATCH_BYTES + 1)
        except zlib.error:
            raise IngestError(400, "bad_gzip", f"the body is not valid {enc} data") from None
        if len(body) <= MAX_BATCH_BYTES and not inflater.eof and not inflater.unconsumed_tail:
            raise IngestError(400, "bad_gzip", f"the {enc} body is truncated")
    else:
        raise IngestError(
            415,
            "bad_encoding",
            f"Content-Encoding '{enc[:20]}' is not supported; send gzip or an uncompressed body",
        )
    if len(body) > MAX_BATCH_BYTES:
        raise IngestError(
            413,
            "batch_too_large",
            f"the request is over {MAX_BATCH_BYTES // 1024} "
            "KB (after decompression); send smaller batches",
        )
    return body


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        data = sanitize.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = (
            f" at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise IngestError(400, "bad_json", f"the body is not valid JSON{where}") from None
    if not isinstance(data, dict):
        raise IngestError(400, "bad_json", "the body must be a JSON object")
    return data


@dataclass
class Message:
    """One accepted message, normalised."""

    type: str
    message_id: str
    customer_id: str
    anonymous_id: str | None
    name: str | None
    properties: dict[str, Any]
    traits: dict[str, Any]
    event_time: datetime
    context: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # groupId, previousId, ...
    previous_id: str | None = None  # an alias's previousId: merged into customer_id
    user_id: str | None = None  # the userId, when sent (a known person: store.identity)

    def link(self) -> tuple[str, str, str] | None:
        """The merge this message asks for, as (absorbed id, surviving id, via): an
        ``identify`` with both an anonymousId and a userId, or an ``alias``; None when it
        asks for none (or names one id twice)."""
        if self.type == "alias" and self.previous_id and self.previous_id != self.customer_id:
            return self.previous_id, self.customer_id, "alias"
        if self.type == "identify" and self.anonymous_id and self.anonymous_id != self.customer_id:
            return self.anonymous_id, self.customer_id, "identify"
        return None

    def stored_properties(self) -> dict[str, Any]:
        """The properties as the events history keeps them, and as a journey sees a
        ``track``'s (redacted by the dispatcher): with the extra fields, and for
        ``identify`` and ``group`` with their traits."""
        if self.type in ("identify", "group"):
            traits = {"traits": self.traits} if self.traits else {}
            return {**self.properties, **traits, **self.extra}
        return {**self.properties, **self.extra} if self.extra else self.properties


def _time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise IngestError(400, "bad_timestamp", f"{where} must be an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise IngestError(400, "bad_timestamp", f"{where} is not an ISO-8601 timestamp") from None
    offset = parsed.utcoffset()
    if offset is not None and abs(offset) >= timedelta(hours=16):  # PostgreSQL's range
        raise IngestError(400, "bad_timestamp", f"{where} has a UTC offset beyond ±15:59")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _object(msg: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = msg.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise IngestError(400, "bad_field", f"{where}.{key} must be a JSON object")
    return value


def _id(msg: dict[str, Any], key: str, where: str) -> str | None:
    value = msg.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise IngestError(400, "bad_field", f"{where}.{key} must be a string")
    text = str(value)
    if len(text) > 256:
        raise IngestError(400, "bad_field", f"{where}.{key} is longer than 256 characters")
    return text


def normalize(
    msg: Any,
    *,
    kind: str | None,
    where: str,
    received_at: datetime | None,
    batch_sent_at: datetime | None = None,
    batch_context: dict[str, Any] | None = None,
    batch_context_bytes: int = 0,
    default_id: str | None = None,
) -> Message:
    """Check one message and bring it to our shape. ``kind`` is the endpoint's type
    (None inside a batch, where each message carries its own ``type``); the batch's
    context counts towards the message's size. ``received_at`` None: the message was
    never received (an event file), so its ``timestamp`` is required and taken as it is.
    ``default_id``: the ``messageId`` of a message without one (else a new UUID)."""
    if not isinstance(msg, dict):
        raise IngestError(400, "bad_message", f"{where} must be a JSON object")
    sanitize.check_text(msg, where)
    size = _json_bytes(msg) + batch_context_bytes
    if size > MAX_MESSAGE_BYTES:
        raise IngestError(
            413,
            "message_too_large",
            f"{where} is {size // 1024} KB; a message may "
            f"be at most {MAX_MESSAGE_BYTES // 1024} KB",
        )
    mtype = msg.get("type", kind)
    if kind is not None and mtype != kind:
        mtype = kind
    if mtype not in TYPES:
        raise IngestError(400, "bad_type", f"{where}.type must be one of {', '.join(TYPES)}")
    user_id = _id(msg, "userId", where)
    anonymous_id = _id(msg, "anonymousId", where)
    if not user_id and not anonymous_id:
        raise IngestError(400, "missing_user", f"{where} needs a userId or an anonymousId")
    context = {**(batch_context or {}), **_object(msg, "context", where)}
    fields = {"properties": msg.get("properties"), "traits": msg.get("traits"), "context": context}
    if refusal := _bounds.check_fields(where, fields):  # depth and list lengths
        raise IngestError(400, refusal.reason, refusal.message)
    name: str | None = None
    if mtype == "track":
        event = msg.get("event")
        if not isinstance(event, str) or not event.strip():
            raise IngestError(400, "missing_event", f"{where}.event (the event name) is required")
        name = normalize_event_name(event)
        if not name:
            raise IngestError(400, "bad_event", f"{where}.event has no letters or digits")
    elif mtype in ("page", "screen"):
        page = msg.get("name")
        name = page if isinstance(page, str) else None
    traits = _object(msg, "traits", where)
    if mtype == "identify" and not traits:
        traits = _object(context, "traits", f"{where}.context")
    extra = {k: msg[k] for k in ("groupId", "previousId", "category") if msg.get(k) is not None}
    previous_id = None
    if mtype == "alias":  # alias previousId -> userId merges the two (ingest.accept)
        previous_id = _id(msg, "previousId", where)
        if previous_id is None:
            raise IngestError(
                400,
                "missing_previous_id",
                f"{where}.previousId (the id to merge into userId) is required for an alias",
            )
        extra["previousId"] = previous_id
    stamp = _time(msg.get("timestamp"), f"{where}.timestamp")
    sent_at = _time(msg.get("sentAt"), f"{where}.sentAt") or batch_sent_at
    if received_at is None:  # no receipt: no clock to correct, no time to default to
        if stamp is None:
            raise IngestError(
                400,
                "missing_timestamp",
                f"{where}.timestamp is required in an event file (there is no time of receipt)",
            )
        received_at, sent_at = stamp, None
    try:
        if stamp is None:
            event_time = received_at
        elif sent_at is not None:
            event_time = stamp + (received_at - sent_at)
        else:
            event_time = stamp
        event_time = event_time.astimezone(UTC)
        if not EARLIEST <= event_time <= LATEST:
            raise OverflowError
    except OverflowError:
        raise IngestError(
            400,
            "bad_timestamp",
            f"{where}.timestamp, corrected by sentAt, is outside 0001-01-02 to 9999-12-30",
        ) from None
    message_id = _id(msg, "messageId", where) or default_id or f"gen-{uuid.uuid4()}"
    return Message(
        type=mtype,
        message_id=message_id,
        customer_id=user_id or anonymous_id or "",
        anonymous_id=anonymous_id,
        name=name,
        properties=_object(msg, "properties", where),
        traits=traits,
        event_time=event_time,
        context=context,
        extra=extra,
        previous_id=previous_id,
        user_id=user_id,
    )


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), default=str).encode())


def messages(
    data: dict[str, Any],
    *,
    kind: str | None,
    received_at: datetime | None,
    default_id: str | None = None,
) -> list[Message]:
    """All messages of one request: a single message, or ``batch`` for ``/v1/batch``.
    ``received_at`` and ``default_id`` as for :func:`normalize` (in a batch, a message's
    default id is ``default_id[i]``)."""
    if kind is None:
        batch = data.get("batch")
        if not isinstance(batch, list):
            raise IngestError(400, "bad_batch", "a batch body needs 'batch': [messages]")
        if not batch:
            raise IngestError(400, "bad_batch", "the batch is empty")
        sent_at = _time(data.get("sentAt"), "sentAt")
        context = _object(data, "context", "body")
        sanitize.check_text(context, "context")
        context_bytes = _json_bytes(context) if context else 0
        if context_bytes * len(batch) > MAX_CONTEXT_COPIES_BYTES:
            raise IngestError(
                413,
                "batch_too_large",
                f"the batch context ({context_bytes // 1024} KB) copied into each of "
                f"{len(batch)} messages is over {MAX_CONTEXT_COPIES_BYTES // 1024} KB; "
                "send a smaller context or put it in the messages",
            )
        return [
            normalize(
                m,
                kind=None,
                where=f"batch[{i}]",
                received_at=received_at,
                batch_sent_at=sent_at,
                batch_context=context,
                batch_context_bytes=context_bytes,
                default_id=f"{default_id}[{i}]" if default_id else None,
            )
            for i, m in enumerate(batch)
        ]
    return [
        normalize(data, kind=kind, where="message", received_at=received_at, default_id=default_id)
    ]

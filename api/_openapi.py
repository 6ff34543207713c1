"""The real contract in ``/openapi.json``, so generated clients and API fuzzers see what
the API does: the Segment message schemas of the ingestion routes (which read their body
themselves, so FastAPI cannot infer them), the security schemes, the refusals each class
of route answers in the ``{"error", "message"}`` shape, and the wording of 422s."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI

from ingest import sanitize
from ingest.segment import MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, TYPES

from ._guard import INGESTION, PUBLIC, route_class

_REF = "#/components/schemas/"
_ID = {
    "type": ["string", "integer", "number"],
    "minLength": 1,
    "maxLength": 256,
    "description": "at most 256 characters",
}
_TIME = {
    "type": "string",
    "format": "date-time",
    "description": "ISO-8601 with a UTC offset within ±15:59",
}
_OBJECT = {"type": "object", "additionalProperties": True}
_COMMON: dict[str, Any] = {
    "userId": _ID,
    "anonymousId": _ID,
    "messageId": {**_ID, "description": "deduplicates retries of the same message"},
    "timestamp": {**_TIME, "description": "when it happened, corrected by receivedAt - sentAt"},
    "sentAt": _TIME,
    "context": _OBJECT,
    "integrations": _OBJECT,
}
_FIELDS: dict[str, dict[str, Any]] = {
    "track": {
        "event": {"type": "string", "minLength": 1, "description": "the event name"},
        "properties": _OBJECT,
    },
    "identify": {"traits": _OBJECT},
    "page": {"name": {"type": "string"}, "category": {"type": "string"}, "properties": _OBJECT},
    "screen": {"name": {"type": "string"}, "category": {"type": "string"}, "properties": _OBJECT},
    "group": {"groupId": _ID, "traits": _OBJECT},
    "alias": {"previousId": {**_ID, "description": "the id merged into userId's customer"}},
}
_WHO = [{"required": ["userId"]}, {"required": ["anonymousId"]}]
_LIMITS = (
    f"At most {MAX_MESSAGE_BYTES // 1024} KB per message (with the batch context) and "
    f"{MAX_BATCH_BYTES // 1024} KB per request, after gzip; strings hold no NUL and no lone "
    "surrogate; numbers are finite and fit a 64-bit float."
)


def _message(kind: str, *, in_batch: bool) -> dict[str, Any]:
    required = ["type"] if in_batch else []
    if kind == "track":
        required.append("event")
    if kind == "alias":
        required.append("previousId")
    return {
        "type": "object",
        "description": f"A Segment `{kind}` message. {_LIMITS}",
        "properties": {
            "type": {"type": "string", "enum": [kind]},
            **_COMMON,
            **_FIELDS[kind],
            **({} if in_batch else {"writeKey": {"type": "string"}}),
        },
        "required": required,
        "anyOf": _WHO,
        "additionalProperties": True,
    }


def _schemas() -> dict[str, Any]:
    out: dict[str, Any] = {kind.capitalize(): _message(kind, in_batch=False) for kind in TYPES}
    out["BatchMessage"] = {
        "oneOf": [_message(kind, in_batch=True) for kind in TYPES],
        "discriminator": {"propertyName": "type"},
    }
    out["Batch"] = {
        "type": "object",
        "description": f"Several messages, all stored or none. {_LIMITS}",
        "properties": {
            "batch": {"type": "array", "minItems": 1, "items": {"$ref": _REF + "BatchMessage"}},
            "sentAt": _TIME,
            "context": {**_OBJECT, "description": "merged into every message"},
            "writeKey": {"type": "string"},
        },
        "required": ["batch"],
    }
    out["Error"] = {
        "type": "object",
        "description": "A refusal: what was wrong, never the submitted data.",
        "properties": {
            "error": {"type": "string", "description": "a stable code"},
            "message": {"type": "string", "description": "a sentence saying what to fix"},
            "success": {"type": "boolean", "enum": [False], "description": "ingestion only"},
        },
        "required": ["error", "message"],
    }
    out["Accepted"] = {
        "type": "object",
        "properties": {"success": {"type": "boolean", "enum": [True]}},
        "required": ["success"],
    }
    return out


SECURITY_SCHEMES = {
    "writeKey": {
        "type": "http",
        "scheme": "basic",
        "description": "A source's write key as the user name, empty password (Segment's "
        "SDKs). `Authorization: Bearer KEY` and `writeKey` in the body work too.",
    },
    "adminToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "An admin token (`journeys keys create --kind admin`).",
    },
    "adminBasic": {
        "type": "http",
        "scheme": "basic",
        "description": "`GET /reports` in a browser: the admin token as the password.",
    },
}
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
TEMPORAL_PATHS = ("/v1/customers/", "/v1/journeys")
POSTGRES_ONLY = frozenset({"/v1/customers/merge"})  # under TEMPORAL_PATHS, needs no Temporal
_REASONS = {
    400: "Refused: bad JSON, a field that is missing or of the wrong type, NUL or a lone "
    "surrogate in a string, a number that is not finite, a timestamp out of range",
    401: "No, an unknown or a revoked key",
    403: "A write key where an admin token is needed",
    413: "The body is over the limit of this class of route",
    415: "A Content-Encoding other than gzip or deflate",
    422: "A parameter or a field of the body is invalid",
    429: "Too many requests for this key, or the delivery backlog is full; see Retry-After",
    503: "A store is unavailable (nothing was stored); retry",
}


def _refusals(statuses: Sequence[int]) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": _REF + "Error"}}}
    return {str(s): {"description": _REASONS[s], "content": error} for s in statuses}


def _ingestion(operation: dict[str, Any], path: str) -> None:
    kind = path.rstrip("/").rsplit("/", 1)[-1]
    model = kind.capitalize() if kind in TYPES else "Batch"
    operation["requestBody"] = {
        "required": True,
        "description": "JSON, optionally with `Content-Encoding: gzip` or `deflate`.",
        "content": {"application/json": {"schema": {"$ref": _REF + model}}},
    }
    operation["security"] = [{"writeKey": []}]
    operation["responses"] = {
        "200": {
            "description": "Stored durably",
            "content": {"application/json": {"schema": {"$ref": _REF + "Accepted"}}},
        },
        **_refusals((400, 401, 413, 415, 429, 503)),
    }


def _augment(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(_schemas())
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in schema.get("paths", {}).items():
        cls = route_class(path)
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if cls is INGESTION:
                _ingestion(operation, path)
                continue
            statuses = [400, 413, 422]
            if cls is PUBLIC:
                operation["security"] = []  # the token in the path is the credential
            elif path in OPEN_PATHS:
                operation["security"] = []
                statuses = []
            else:
                operation["security"] = [{"adminToken": []}]
                if path == "/reports":
                    operation["security"].append({"adminBasic": []})
                statuses += [401, 403]
                if path.startswith(TEMPORAL_PATHS) and path not in POSTGRES_ONLY:
                    statuses.append(503)
            if "422" in responses or statuses:
                responses.update(_refusals(statuses))
    for unused in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(unused, None)


def describe_contract(app: FastAPI) -> None:
    """Make ``app.openapi()`` describe the contract above (once, then cached)."""
    generate = app.openapi
    done = False

    def openapi() -> dict[str, Any]:
        nonlocal done
        schema = generate()
        if not done:
            _augment(schema)
            done = True
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def validation_message(errors: Sequence[Any]) -> str:
    """A sentence from pydantic's errors: where and what, never the submitted value."""
    parts = []
    for err in errors[:3]:
        where = sanitize.field_path(err.get("loc", ())) or "the request"
        text = str(err.get("msg", "is invalid"))
        if err.get("type") == "json_invalid":
            where, text = "body", f"not valid JSON ({err.get('ctx', {}).get('error', '')})"
        value = err.get("input")
        if isinstance(value, str) and value and value in text:
            text = text.replace(value, "…")
        parts.append(f"{where}: {text}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more

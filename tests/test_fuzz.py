"""Property-based fuzzing (issue #10), bounded so it runs in seconds in ``make test``:

* the ingestion parser with hypothesis: any body, however hostile, is either refused with
  a 4xx ``IngestError`` or gives messages that PostgreSQL stores as they are (asked of a
  real PostgreSQL);
* the real ASGI app with schemathesis, in process, from its own ``/openapi.json`` (real
  PostgreSQL, the Temporal time-skipping server), with valid and invalid data: no answer
  is a 5xx (the in-process transport raises the app's exceptions, so a crash fails too).

``JOURNEYS_FUZZ_EXAMPLES=150`` runs the API fuzz about as long as the run that found the
269 5xx of the issue (~8,000 cases); it finds none."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from psycopg.types.json import Jsonb
from schemathesis import GenerationMode
from schemathesis.python import asgi
from temporalio.testing import WorkflowEnvironment

from api import create_app
from api._guard import ADMIN, INGESTION, PUBLIC, route_class
from ingest import keys
from ingest.segment import TYPES, IngestError, Message, messages, parse_json, read_body
from settings import Settings
from store.db import pool as make_pool
from tests.conftest import create_database, tool, with_db

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
EXAMPLES = int(os.environ.get("JOURNEYS_FUZZ_EXAMPLES", "8"))  # per operation and mode
QUICK = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- the ingestion parser ---------------------------------------------------------------

_hostile_chars = st.sampled_from(["\x00", "\ud800", "\udfff", "\u2028", "\\", '"', "\U0001f600"])
_chars = st.one_of(st.characters(), st.characters(), st.characters(), _hostile_chars)  # 1 in 4
_texts = st.text(alphabet=_chars, max_size=12)
_plain_numbers = st.integers(min_value=-(2**70), max_value=2**70) | st.floats(
    allow_nan=False, allow_infinity=False
)
_numbers = st.one_of(
    _plain_numbers,
    _plain_numbers,
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),  # NaN and infinities included
)
_json = st.recursive(
    st.none() | st.booleans() | _numbers | _texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_texts, inner, max_size=3),
    max_leaves=12,
)
_offsets = st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23))
_instants = st.builds(
    lambda when, offset: when.replace(tzinfo=timezone(offset)).isoformat(),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    _offsets,
)
_times = st.one_of(st.none(), _texts, _instants, st.sampled_from(["0001-01-01", "9999-12-31"]))
_ids = st.one_of(_texts, _numbers, st.booleans(), st.none())
_fields = {
    "type": st.one_of(st.sampled_from(TYPES), _texts),
    "userId": _ids,
    "anonymousId": _ids,
    "messageId": _ids,
    "event": _texts,
    "name": _texts,
    "properties": _json,
    "traits": _json,
    "context": _json,
    "timestamp": _times,
    "sentAt": _times,
    "groupId": _ids,
    "previousId": _ids,
}
_anything = st.fixed_dictionaries({}, optional=_fields)
# most of these pass the parser, so what it accepts is put to PostgreSQL often
_plausible = st.fixed_dictionaries(
    {
        "type": st.sampled_from(TYPES),
        "userId": st.text(alphabet=_chars, min_size=1, max_size=12).filter(str.strip),
        "event": st.text(alphabet=_chars, min_size=1, max_size=12).map(lambda t: "e" + t),
    },
    optional={k: v for k, v in _fields.items() if k not in ("type", "userId", "event")},
)
_message = _anything | _plausible | _plausible
_bodies = st.one_of(
    _message.map(lambda m: (m, m.get("type") if m.get("type") in TYPES else "track")),
    st.fixed_dictionaries(
        {"batch": st.lists(_message, max_size=4)},
        optional={"sentAt": _times, "context": _json},
    ).map(lambda b: (b, None)),
)


def _parse(raw: bytes, kind: str | None) -> list[Message] | None:
    try:
        return messages(parse_json(read_body(raw, None)), kind=kind, received_at=NOW)
    except IngestError as exc:
        assert 400 <= exc.status < 500 and exc.reason and str(exc)
        return None


def _stored_as_is(conn: psycopg.Connection[Any], found: list[Message]) -> None:
    """PostgreSQL takes every accepted value, text, jsonb and timestamptz, and gives it
    back unchanged, whatever the session's time zone (+14:00 and -12:00 here)."""
    for m, zone in zip(found, itertools.cycle(["Pacific/Kiritimati", "Etc/GMT+12"])):
        conn.execute(f"SET TimeZone = '{zone}'")
        assert m.event_time.utcoffset() == timedelta(0)
        texts = [m.message_id, m.customer_id, m.anonymous_id, m.name]
        objects = [m.properties, m.traits, m.context, m.extra]
        row = conn.execute(
            "SELECT %s::text, %s::text, %s::text, %s::text,"
            " %s::jsonb, %s::jsonb, %s::jsonb, %s::jsonb, %s::timestamptz",
            [*texts, *(Jsonb(o) for o in objects), m.event_time],
        ).fetchone()
        assert row is not None
        assert list(row[:4]) == texts and row[8] == m.event_time
        assert all(_same(a, b) for a, b in zip(row[4:8], objects, strict=True))


def _same(stored: Any, sent: Any) -> bool:
    """Equal JSON values; a float equals what jsonb made of its digits (2.4894e16 comes
    back as the integer 24894000000000000)."""
    if isinstance(stored, dict) and isinstance(sent, dict):
        return stored.keys() == sent.keys() and all(_same(stored[k], sent[k]) for k in sent)
    if isinstance(stored, list) and isinstance(sent, list):
        return len(stored) == len(sent) and all(map(_same, stored, sent))
    if isinstance(sent, float) and isinstance(stored, int | float) and not isinstance(stored, bool):
        return float(stored) == sent
    return bool(type(stored) is type(sent) and stored == sent)


@QUICK
@given(body=_bodies)
def test_any_message_is_refused_with_a_4xx_or_stored_as_is(db_url: str, body: Any):
    data, kind = body
    found = _parse(json.dumps(data).encode(), kind)  # NaN, Infinity and \ud800 included
    if found:
        with psycopg.connect(db_url) as conn:
            _stored_as_is(conn, found)


@QUICK
@given(raw=st.binary(max_size=200) | _texts.map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_are_refused_with_a_4xx_or_parsed(raw: bytes):
    for kind in (None, "track"):
        _parse(raw, kind)


@settings(max_examples=20, deadline=None, database=None)
@given(depth=st.integers(min_value=1, max_value=5000), kind=st.sampled_from(["[", "{"]))
def test_any_nesting_is_refused_with_a_4xx_or_parsed(depth: int, kind: str):
    inner = "[" * depth + "]" * depth if kind == "[" else '{"a":' * depth + "1" + "}" * depth
    _parse(('{"userId": "u", "event": "e", "properties": {"x": ' + inner + "}}").encode(), "track")


# --- the API ----------------------------------------------------------------------------


@dataclass
class Fuzzed:
    schema: Any
    headers: dict[Any, dict[str, str]]  # per route class: its credential


@pytest.fixture(scope="module")
async def fuzzed(pg_server: str, pg_template: str) -> AsyncIterator[Fuzzed]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=tool("temporal-test-server")
    )
    db_url = with_db(pg_server, create_database(pg_server, "journeys_f", template=pg_template))
    db = make_pool(db_url, max_size=2)
    await db.open()
    async with db.connection() as conn:
        _, write = await keys.create(conn, "write", "fuzz source")
        _, admin = await keys.create(conn, "admin", "fuzz admin")
    await db.close()
    app = create_app(
        Settings.model_validate(
            {
                "DATABASE_URL": db_url,
                "JOURNEYS_DISPATCHER": "false",
                "JOURNEYS_ENV": "development",  # the development routes are fuzzed too
                "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            }
        )
    )
    basic = base64.b64encode(f"{write}:".encode()).decode()
    bearer = {"Authorization": f"Bearer {admin}"}
    try:
        yield Fuzzed(
            schemathesis.openapi.from_asgi("/openapi.json", app),
            {INGESTION: {"Authorization": f"Basic {basic}"}, ADMIN: bearer, PUBLIC: {}},
        )
    finally:
        asgi.shutdown_lifespans()  # the app's lifespan runs in schemathesis's event loop
        await env.shutdown()


def test_openapi_declares_the_contract(fuzzed: Fuzzed):
    raw = fuzzed.schema.raw_schema
    assert set(raw["components"]["securitySchemes"]) == {"writeKey", "adminToken", "adminBasic"}
    track = raw["paths"]["/v1/track"]["post"]
    assert track["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Track")
    assert track["security"] == [{"writeKey": []}]
    assert {"400", "401", "413", "415", "429", "503"} <= set(track["responses"])
    batch = raw["components"]["schemas"]["Batch"]
    assert batch["required"] == ["batch"]
    budget = raw["paths"]["/v1/offer-budgets/{name}"]["put"]
    assert budget["security"] == [{"adminToken": []}]
    assert budget["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Error"
    )
    assert "HTTPValidationError" not in raw["components"]["schemas"]


# schemathesis's negative generation draws from `random` (its bug, not a failure of ours)
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("cls", [INGESTION, ADMIN, PUBLIC], ids=lambda c: c.name)
def test_no_input_gets_a_server_error(fuzzed: Fuzzed, cls: Any, mode: GenerationMode):
    operations = [r.ok() for r in fuzzed.schema.get_all_operations()]
    mine = [op for op in operations if route_class(op.path) is cls]
    assert mine
    for operation in mine:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Any) -> None:
            response = case.call(headers=fuzzed.headers[cls])
            assert response.status_code < 500, (
                f"{response.status_code} {response.text[:300]}\n{case.as_curl_command()}"
            )

        with contextlib.suppress(Unsatisfiable):  # nothing to make invalid
            call()

"""Hostile input to the ingestion routes over real HTTP (issue #10, sections 3 and 4):
each case is refused with a 4xx in the ingestion shape, stores nothing, echoes nothing,
and leaves the service up and storing."""

from __future__ import annotations

import json
import re
import time

import pytest

from ingest.segment import MAX_BATCH_BYTES
from tests.hostile import PII, chunked, raw_request, refused, served_fixture  # noqa: F401


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


TRACK = {"userId": "u1", "event": "Order Completed", "properties": {"note": PII}}
# (case, endpoint, raw JSON body, status, error)
CASES = [
    ("NUL in userId", "track", {**TRACK, "userId": "u\u00001"}, 400, "bad_text"),
    ("NUL in anonymousId", "track", {**TRACK, "anonymousId": "\u0000"}, 400, "bad_text"),
    ("NUL in messageId", "track", {**TRACK, "messageId": "m\u0000"}, 400, "bad_text"),
    ("NUL in event name", "track", {**TRACK, "event": "Order\u0000"}, 400, "bad_text"),
    ("NUL in a property", "track", {**TRACK, "properties": {"a": PII + "\u0000"}}, 400, "bad_text"),
    ("NUL in a property key", "track", {**TRACK, "properties": {"\u0000": 1}}, 400, "bad_text"),
    ("NUL in a list", "track", {**TRACK, "properties": {"a": [1, "\u0000"]}}, 400, "bad_text"),
    ("NUL in traits", "identify", {"userId": "u1", "traits": {"n": "\u0000"}}, 400, "bad_text"),
    ("NUL in context", "track", {**TRACK, "context": {"ip": "\u0000"}}, 400, "bad_text"),
    (
        "NUL in context.traits",
        "identify",
        {"userId": "u1", "context": {"traits": {"email": "\u0000"}}},
        400,
        "bad_text",
    ),
    (
        "NUL in batch context",
        "batch",
        {"batch": [{**TRACK, "type": "track"}], "context": {"x": "\u0000"}},
        400,
        "bad_text",
    ),
    ("lone surrogate", "track", {**TRACK, "properties": {"a": "\ud800"}}, 400, "bad_text"),
    ("lone surrogate in a key", "track", {**TRACK, "properties": {"\udfff": 1}}, 400, "bad_text"),
    ("lone surrogate in userId", "track", {**TRACK, "userId": "\udbff"}, 400, "bad_text"),
    ("NaN", "track", '{"userId": "u1", "event": "e", "properties": {"x": NaN}}', 400, "bad_number"),
    ("Infinity", "track", '{"userId": "u1", "event": "e", "x": Infinity}', 400, "bad_number"),
    ("-Infinity", "track", '{"userId": "u1", "event": "e", "x": -Infinity}', 400, "bad_number"),
    (
        "1e400",
        "track",
        '{"userId": "u1", "event": "e", "properties": {"x": 1e400}}',
        400,
        "bad_number",
    ),
    (
        "an integer of 5,000 digits",
        "track",
        '{"userId": "u1", "event": "e", "properties": {"x": ' + "9" * 5000 + "}}",
        400,
        "bad_number",
    ),
    (
        "an integer userId of 400 digits",
        "track",
        '{"userId": ' + "9" * 400 + ', "event": "e"}',
        400,
        "bad_number",
    ),
    (
        "nesting 1,000 deep",
        "track",
        '{"userId": "u1", "event": "e", "properties": {"x": ' + _deep(1000) + "}}",
        400,
        "too_deep",
    ),
    ("nesting 100,000 deep", "batch", '{"batch": ' + _deep(100_000) + "}", 400, "too_deep"),
    (
        "clock skew past year 9999",
        "track",
        {**TRACK, "timestamp": "9999-12-31T00:00:00Z", "sentAt": "2000-01-01T00:00:00Z"},
        400,
        "bad_timestamp",
    ),
    (
        "clock skew before year 1",
        "track",
        {**TRACK, "timestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T00:00:00Z"},
        400,
        "bad_timestamp",
    ),
    (
        "clock skew in a batch's sentAt",
        "batch",
        {
            "batch": [{**TRACK, "type": "track", "timestamp": "0001-01-02T00:00:00Z"}],
            "sentAt": "9999-12-31T00:00:00Z",
        },
        400,
        "bad_timestamp",
    ),
    (
        "UTC offset +16:00",
        "track",
        {**TRACK, "timestamp": "2026-01-01T00:00:00+16:00"},
        400,
        "bad_timestamp",
    ),
    (
        "UTC offset -23:59",
        "track",
        {**TRACK, "timestamp": "2026-01-01T00:00:00-23:59"},
        400,
        "bad_timestamp",
    ),
    (
        "UTC offset in sentAt",
        "track",
        {**TRACK, "sentAt": "2026-01-01T00:00+20:00"},
        400,
        "bad_timestamp",
    ),
    (
        "a time some time zones cannot read back",
        "track",
        {**TRACK, "timestamp": "9999-12-31T12:00:00Z"},
        400,
        "bad_timestamp",
    ),
    (
        "a timestamp shifted out of range by its offset",
        "track",
        {**TRACK, "timestamp": "0001-01-01T00:00:00+01:00"},
        400,
        "bad_timestamp",
    ),
]


@pytest.mark.parametrize(
    ("case", "endpoint", "body", "status", "error"), CASES, ids=[c[0] for c in CASES]
)
async def test_hostile_message_is_refused_and_stores_nothing(
    served, case, endpoint, body, status, error
):
    before = await served.stored()
    content = body if isinstance(body, str) else json.dumps(body)
    async with served.http() as http:
        r = await http.post(
            f"/v1/{endpoint}",
            content=content.encode(),
            headers={**served.write(), "Content-Type": "application/json"},
        )
    answer = refused(r, status, error)
    assert answer["success"] is False
    assert "\x00" not in answer["message"]  # the value is not repeated
    assert await served.stored() == before
    await served.healthy()


async def test_extreme_but_valid_times_and_offsets_are_stored(served):
    """What PostgreSQL holds is kept: offsets up to ±15:59, the first and last days that
    every session time zone can read back, numbers that fit a double; stored in UTC."""
    one = {**TRACK, "type": "track", "userId": "times"}
    messages = [
        {**one, "messageId": "a", "timestamp": "2026-01-01T00:00:00+15:59"},
        {**one, "messageId": "b", "timestamp": "2026-01-01T00:00:00-15:59"},
        {**one, "messageId": "c", "timestamp": "9999-12-30T00:00:00Z"},
        {**one, "messageId": "d", "timestamp": "0001-01-02T12:00:00Z"},
        {**one, "messageId": "e", "properties": {"x": 1e300, "y": 10**300}},
    ]
    async with served.http() as http:
        r = await http.post("/v1/batch", json={"batch": messages}, headers=served.write())
    assert r.status_code == 200, r.text
    async with served.db.connection() as conn:
        cur = await conn.execute(
            "SELECT message_id, to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')"
            " FROM events WHERE customer_id = 'times' ORDER BY message_id"
        )
        rows = await cur.fetchall()
    assert rows == [
        ("a", "2025-12-31 08:01"),
        ("b", "2026-01-01 15:59"),
        ("c", "9999-12-30 00:00"),
        ("d", "0001-01-02 12:00"),
        ("e", rows[4][1]),
    ]


async def test_batch_context_cannot_amplify_a_request(served):
    """The measured case: a 499 KB request with 100 KB of context became 9,405 events and
    941 MB of JSON. Now the copies of the context count, and it is refused at once."""
    context = {"blob": "c" * 100_000}
    tiny = {"type": "track", "userId": "amp", "event": "e"}
    room = 499 * 1024 - len(json.dumps({"batch": [], "context": context}))
    batch = [tiny] * (room // (len(json.dumps(tiny)) + 2))  # as many as fit 499 KB
    body = json.dumps({"batch": batch, "context": context}).encode()
    assert len(body) <= 499 * 1024 and len(batch) > 5_000
    before = await served.stored()
    started = time.monotonic()
    async with served.http() as http:
        r = await http.post(
            "/v1/batch",
            content=body,
            headers={**served.write(), "Content-Type": "application/json"},
        )
    answer = refused(r, 413, "batch_too_large")
    assert "context" in answer["message"]
    assert time.monotonic() - started < 10  # refused before any copy is made
    assert await served.stored() == before
    await served.healthy()


async def test_batch_context_counts_in_the_message_size(served):
    msg = {"type": "track", "userId": "ctx", "event": "e", "properties": {"x": "p" * 20_000}}
    async with served.http() as http:
        r = await http.post(
            "/v1/batch",
            json={"batch": [msg], "context": {"c": "c" * 20_000}},
            headers=served.write(),
        )
        refused(r, 413, "message_too_large")
        ok = await http.post(
            "/v1/batch",
            json={"batch": [msg, {**msg, "messageId": "2"}], "context": {"app": {"v": "1"}}},
            headers=served.write(),
        )
    assert ok.status_code == 200, ok.text
    async with served.db.connection() as conn:
        cur = await conn.execute("SELECT context FROM events WHERE customer_id = 'ctx'")
        assert [row[0] for row in await cur.fetchall()] == [{"app": {"v": "1"}}] * 2


async def _rejected(served, reason: str) -> float:
    async with served.http() as http:
        text = (await http.get("/metrics")).text
    found = re.search(rf'journeys_requests_rejected_total{{reason="{reason}"}} (\S+)', text)
    return float(found.group(1)) if found else 0.0


async def test_declared_oversize_body_is_refused_before_reading(served):
    """A 300 MB Content-Length is answered at once, before a byte of the body is sent."""
    counted = await _rejected(served, "batch_too_large")
    answer = await raw_request(
        served.port,
        "POST /v1/batch HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        f"Content-Length: {300 * 1024 * 1024}\n",
    )
    assert answer.status == 413
    assert json.loads(answer.body)["error"] == "batch_too_large"
    assert await _rejected(served, "batch_too_large") == counted + 1  # as the routes count
    await served.healthy()


async def test_chunked_body_stops_at_the_limit(served):
    """No Content-Length to refuse: the streamed bytes are counted as they arrive, and
    one byte past the limit is answered although the body has not ended."""
    before = await served.stored()
    answer = await raw_request(
        served.port,
        "POST /v1/track HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        "Transfer-Encoding: chunked\n",
        chunked(MAX_BATCH_BYTES + 1),
    )
    assert answer.status == 413
    assert json.loads(answer.body) == {
        "success": False,
        "error": "batch_too_large",
        "message": f"the request is over {MAX_BATCH_BYTES // 1024} KB; send smaller batches",
    }
    assert await served.stored() == before
    await served.healthy()


async def test_nul_in_the_url_of_an_ingestion_route(served):
    before = await served.stored()
    async with served.http() as http:
        r = await http.post("/v1/track?x=%00", json=TRACK, headers=served.write())
    assert refused(r, 400, "bad_url")["success"] is False
    assert await served.stored() == before

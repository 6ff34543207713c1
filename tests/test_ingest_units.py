"""Segment parsing, limits, clock skew and auth headers: pure functions, no server."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from datetime import UTC, datetime, timedelta

import pytest

from api.auth import credential
from engine.catalog import exit_event_names
from ingest.keys import KeyCache, hash_key
from ingest.segment import MAX_BATCH_BYTES, IngestError, messages, normalize, parse_json, read_body

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_gzip_and_deflate_bodies_are_inflated():
    body = json.dumps({"userId": "a", "event": "x"}).encode()
    assert read_body(gzip.compress(body), "gzip") == body
    assert read_body(zlib.compress(body), "deflate") == body
    assert read_body(body, None) == body


def test_gzip_bomb_stops_at_the_limit_without_inflating_everything():
    bomb = gzip.compress(b" " * (200 * MAX_BATCH_BYTES))
    with pytest.raises(IngestError) as err:
        read_body(bomb, "gzip")
    assert err.value.status == 413 and err.value.reason == "batch_too_large"


def test_truncated_gzip_and_unknown_encoding_are_refused():
    body = gzip.compress(b'{"userId": "a"}' * 100)
    with pytest.raises(IngestError, match="truncated"):
        read_body(body[: len(body) // 2], "gzip")
    with pytest.raises(IngestError) as err:
        read_body(b"{}", "br")
    assert err.value.status == 415


def test_json_errors_point_at_the_place_and_never_echo():
    with pytest.raises(IngestError, match="line 1 column") as err:
        parse_json(b'{"userId": "secret-value",')
    assert "secret-value" not in str(err.value)
    with pytest.raises(IngestError, match="JSON object"):
        parse_json(b"[]")


def test_clock_skew_correction_as_segment():
    msg = {
        "userId": "a",
        "event": "Order Completed",
        "timestamp": "2026-05-01T11:00:00Z",
        "sentAt": "2026-05-01T11:00:30Z",
    }
    m = normalize(msg, kind="track", where="message", received_at=NOW)
    # the device clock is 59.5 minutes behind ours: shift the event by the same amount
    assert m.event_time == datetime(2026, 5, 1, 11, 59, 30, tzinfo=UTC)
    assert m.name == "order_completed"
    assert (
        normalize(
            {"userId": "a", "event": "x"}, kind="track", where="m", received_at=NOW
        ).event_time
        == NOW
    )
    no_sent = normalize({**msg, "sentAt": None}, kind="track", where="m", received_at=NOW)
    assert no_sent.event_time == datetime(2026, 5, 1, 11, 0, tzinfo=UTC)


def test_batch_sent_at_applies_to_each_message_and_errors_name_the_index():
    data = {
        "sentAt": (NOW - timedelta(seconds=10)).isoformat(),
        "batch": [
            {"type": "track", "userId": "a", "event": "e", "timestamp": "2026-05-01T11:59:00Z"},
            {"type": "identify", "anonymousId": "anon-1", "context": {"traits": {"plan": "pro"}}},
        ],
    }
    first, second = messages(data, kind=None, received_at=NOW)
    assert first.event_time == datetime(2026, 5, 1, 11, 59, 10, tzinfo=UTC)
    assert (second.customer_id, second.traits) == ("anon-1", {"plan": "pro"})
    with pytest.raises(IngestError, match=r"batch\[1\] needs a userId or an anonymousId"):
        messages(
            {"batch": [data["batch"][0], {"type": "track", "event": "e"}]},
            kind=None,
            received_at=NOW,
        )
    with pytest.raises(IngestError, match=r"batch\[0\]\.type must be one of"):
        messages({"batch": [{"type": "nope", "userId": "a"}]}, kind=None, received_at=NOW)


def test_message_size_limit():
    big = {"userId": "a", "event": "e", "properties": {"x": "y" * 33_000}}
    with pytest.raises(IngestError) as err:
        normalize(big, kind="track", where="message", received_at=NOW)
    assert err.value.status == 413 and "32 KB" in str(err.value)


def test_missing_message_id_gets_a_generated_one():
    m = normalize({"userId": 42, "event": "e"}, kind="track", where="m", received_at=NOW)
    assert m.customer_id == "42" and m.message_id.startswith("gen-")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Basic " + base64.b64encode(b"jw_key:").decode(), "jw_key"),
        ("Basic " + base64.b64encode(b"jw_key:ignored").decode(), "jw_key"),
        ("Bearer ja_token", "ja_token"),
        (None, None),
    ],
)
def test_credentials(header, expected):
    assert credential(header) == expected


def test_bad_credentials_are_401():
    with pytest.raises(IngestError) as err:
        credential("Basic !!!")
    assert err.value.status == 401
    with pytest.raises(IngestError):
        credential("Digest abc")


def test_key_cache_checks_kind_and_hash():
    cache = KeyCache()
    cache._keys = {hash_key("jw_a"): (1, "write"), hash_key("ja_b"): (2, "admin")}
    assert cache.check("jw_a", "write") == 1
    assert cache.check("jw_a", "admin") is None
    assert cache.check("ja_b", "admin") == 2
    assert cache.check("jw_nope", "write") is None


def test_exit_when_interest():
    assert exit_event_names('event.name == "Unsubscribed"') == {"unsubscribed"}
    assert exit_event_names("event.name == 'a' || (event.name == 'b')") == {"a", "b"}
    assert exit_event_names('event.name == "a" && ctx.x > 1') is None
    assert exit_event_names("customer.traits.blocked") is None


def test_identify_and_alias_name_the_merge_they_ask_for():
    def one(body: dict, kind: str):
        return normalize(body, kind=kind, where="message", received_at=NOW)

    assert one({"anonymousId": "a", "userId": "u"}, "identify").link() == ("a", "u", "identify")
    assert one({"userId": "u"}, "identify").link() is None
    assert one({"anonymousId": "u", "userId": "u"}, "identify").link() is None
    assert one({"anonymousId": "a", "userId": "u", "event": "x"}, "track").link() is None
    alias = one({"userId": "u", "previousId": 42}, "alias")
    assert (alias.link(), alias.extra, alias.user_id) == (
        ("42", "u", "alias"),
        {"previousId": "42"},
        "u",
    )
    assert one({"userId": "u", "previousId": "u"}, "alias").link() is None
    assert one({"anonymousId": "a", "event": "x"}, "track").user_id is None
    for bad, reason in (({}, "missing_previous_id"), ({"previousId": "p" * 257}, "bad_field")):
        with pytest.raises(IngestError) as err:
            one({"userId": "u", **bad}, "alias")
        assert (err.value.status, err.value.reason) == (400, reason)

"""One Segment parser: ``journeys simulate`` reads an event file with the API's own parser, so
it takes every message type the API takes and refuses a bad message with the API's sentence.

The API runs for real (uvicorn, PostgreSQL, the time-skipping Temporal server); the CLI runs
as ``journeys simulate`` does (``cli.run``) on the shipped rules."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

import cli
from api import create_app
from devstack.stack import free_port
from ingest import keys
from ingest.event_file import parse_messages
from settings import Settings
from tests.helpers import publish_shipped

ROOT = Path(__file__).resolve().parent.parent
STAMP = "2025-01-01T00:00:00Z"
DEEP: dict[str, Any] = {}
_node = DEEP
for _ in range(40):
    _node["x"] = {}
    _node = _node["x"]


@pytest.fixture
async def api(time_env, db, db_url, task_queue) -> AsyncIterator[tuple[str, str]]:
    await publish_shipped(db_url)
    async with db.connection() as conn:
        _, write = await keys.create(conn, "write", "parser parity")
    settings = Settings.model_validate(
        {"DATABASE_URL": db_url, "JOURNEYS_TASK_QUEUE": task_queue, "JOURNEYS_ENV": "development"}
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, temporal=time_env.client),
            host="127.0.0.1",
            port=(port := free_port()),
            log_level="warning",
            lifespan="on",
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}", write
    server.should_exit = True
    await task


def _simulate(tmp_path: Path, lines: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    events = tmp_path / "ev.jsonl"
    events.write_text("\n".join(lines) + "\n")
    code = cli.run(
        [
            "simulate",
            "--rules",
            str(ROOT / "rules"),
            "--templates",
            str(ROOT / "templates"),
            "--events",
            str(events),
        ]
    )
    return code, capsys.readouterr()


BAD = [
    ("track", {"event": "Signed Up", "timestamp": STAMP}),
    ("track", {"userId": "u1", "timestamp": STAMP}),
    ("track", {"userId": "u1", "event": "Signed Up", "timestamp": "yesterday"}),
    ("track", {"userId": "u1", "event": "!!!", "timestamp": STAMP}),
    ("track", {"userId": "u1", "event": "x", "timestamp": STAMP, "properties": [1]}),
    ("track", {"userId": "u1", "event": "x", "timestamp": STAMP, "properties": DEEP}),
    ("track", {"userId": "u1", "event": "x", "timestamp": STAMP, "properties": {"y": "z" * 40000}}),
    ("identify", {"type": "identify", "userId": "u" * 300, "timestamp": STAMP}),
    ("page", {"type": "page", "userId": "u1", "timestamp": STAMP, "traits": "pro"}),
    ("batch", {"batch": [{"type": "track", "userId": "u1", "timestamp": STAMP}]}),
    ("batch", {"batch": [{"type": "click", "userId": "u1", "timestamp": STAMP}]}),
    ("batch", {"batch": []}),
    ("batch", {"batch": [], "sentAt": "soon"}),
]


@pytest.mark.parametrize(("endpoint", "message"), BAD)
async def test_a_bad_message_gets_the_same_sentence_from_the_api_and_from_simulate(
    api: tuple[str, str], tmp_path: Path, capsys, endpoint: str, message: dict[str, Any]
):
    if endpoint != "batch":  # in a file, a message says its type (no endpoint does)
        message = {"type": endpoint, **message}
    url, write = api
    token = base64.b64encode(f"{write}:".encode()).decode()
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        r = await http.post(
            f"/v1/{endpoint}", json=message, headers={"Authorization": f"Basic {token}"}
        )
    assert r.status_code in (400, 413), r.text
    sentence = r.json()["message"]
    code, out = _simulate(tmp_path, [json.dumps(message)], capsys)
    assert code == 1
    assert out.err == f"journeys simulate: {tmp_path / 'ev.jsonl'}:1: {sentence}\n"


def test_simulate_takes_every_message_type_the_api_takes(tmp_path: Path, capsys):
    lines = [
        {"type": "identify", "userId": "u1", "timestamp": STAMP, "traits": {"plan": "pro"}},
        {"type": "page", "userId": "u1", "name": "Home", "timestamp": STAMP},
        {"type": "screen", "userId": "u1", "name": "Cart", "timestamp": STAMP},
        {"type": "alias", "userId": "u1", "previousId": "anon-1", "timestamp": STAMP},
        # a group's traits go to the profile, as ingestion stores them
        {
            "type": "group",
            "userId": "u1",
            "groupId": "g1",
            "traits": {"team": "a"},
            "timestamp": STAMP,
        },
        {
            "batch": [
                {"type": "track", "userId": "u1", "event": "Signed Up", "timestamp": STAMP},
                {"type": "track", "userId": "u2", "event": "Order Completed", "timestamp": STAMP},
            ],
            "context": {"library": {"name": "analytics-python"}},
        },
    ]
    code, out = _simulate(tmp_path, [json.dumps(line) for line in lines], capsys)
    assert code == 0, out.err
    results = {r["customer_id"]: r for r in map(json.loads, out.out.splitlines())}
    assert sorted(results) == ["u1", "u2"]
    assert results["u1"]["journeys"]["lifecycle"]["state"] == "new"
    assert [a["kind"] for a in results["u1"]["actions"]] == ["send"]
    assert "lifecycle" in results["u2"]["journeys"]
    inputs = parse_messages([json.dumps(line) for line in lines], "ev.jsonl")
    assert [(m.kind, m.customer_id, m.line) for m in inputs] == [
        ("identify", "u1", 1),
        ("identify", "u1", 5),
        ("track", "u1", 6),
        ("track", "u2", 6),
    ]
    assert inputs[1].traits == {"team": "a"}
    assert [m.event.id for m in inputs[2:] if m.event] == ["ev.jsonl:6[0]", "ev.jsonl:6[1]"]

"""Canaries: an email address, a phone number and a name put everywhere a customer's
contact details can enter (customer ids, traits, event properties, a survey comment, an
SMTP relay's refusal that quotes them back), through the stack ``make run`` starts (the
Temporal dev server on its own SQLite file, the API, the worker). Afterwards none of them
is in the Temporal server's database file, in any log the stack wrote, or in any HTTP
error body; and the decrypted workflow state holds none either."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest

from devstack.stack import ROOT, Stack, free_port
from store import surveys
from tests.conftest import create_database, with_db
from tests.standins import RecordingSMTPServer

pytestmark = pytest.mark.timeout(150)

EMAIL = "annabel.canary@example.com"
PHONE = "+49 170 5550199"
NAME = "Annabel Canarysdottir"
# every form a canary could take in a file: as sent, digits only, the distinctive parts
NEEDLES = [EMAIL, "annabel.canary", PHONE, "491705550199", "5550199", NAME, "Canarysdottir"]


def _rules(tmp_path: Path) -> Path:
    """The shipped rules without quiet hours, so the welcome goes out at any hour."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    policy = (rules / "policy.yaml").read_text()
    (rules / "policy.yaml").write_text(policy.split("quiet_hours:")[0])
    return rules


def _hits(paths: list[Path]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in paths:
        data = path.read_bytes().lower()
        hits = [n for n in NEEDLES if n.lower().encode() in data]
        if hits:
            found[path.name] = hits
    return found


def _eventually(check: Callable[[], Any], *, timeout: float = 45.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s")
        time.sleep(0.3)


def test_no_contact_details_in_temporal_logs_or_error_bodies(tmp_path: Path, pg_server: str):
    traits = {
        "email": EMAIL,
        "phone": PHONE,
        "first_name": "Annabel",
        "family_name": "Canarysdottir",
        "name": NAME,
        "nickname": "Canarysdottir",
        "emails": [EMAIL],
        "contact": f"{NAME} <{EMAIL}>",
        "call": f"tel:{PHONE}",
        "nested": [[EMAIL, "keep"], [{"given_name": NAME, "plan": "pro"}]],
        "plan": "pro",
    }
    properties = {
        "revenue": 10,
        "referrer_email": EMAIL,
        "note": f"{NAME} on {PHONE}",
        "who": NAME,  # a bare name under an innocent key: only the codec hides it
        "lists": [[EMAIL], [PHONE]],
    }
    # the relay refuses the welcome and quotes the recipient back, as real ones do
    smtp = RecordingSMTPServer(
        replies=[f"554 5.7.1 mail for {NAME} <{EMAIL}> ({PHONE}) refused"] * 20
    ).start()
    database = with_db(pg_server, create_database(pg_server, "journeys_pii"))
    stack = Stack(
        data_dir=tmp_path / "data",
        temporal_port=free_port(),
        ui_port=free_port(),
        api_port=free_port(),
        database_url=database,
        rules_dir=_rules(tmp_path),
        log_dir=tmp_path / "logs",
        task_queue="pii",
        extra_env={**smtp.env(), "JOURNEYS_STICKY_TIMEOUT_SECONDS": "3"},
    )
    errors: list[str] = []
    try:
        with stack.running():
            stack.prepare_database()
            write, admin = stack.dev_keys()
            stack.start_api()
            stack.start_worker()
            api = httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}", timeout=20)
            bearer = {"Authorization": f"Bearer {admin}"}
            for n, cid in enumerate([EMAIL, PHONE, NAME]):
                for body in (
                    {"type": "identify", "userId": cid, "traits": traits},
                    {"userId": cid, "event": "Signed Up", "messageId": f"s{n}"},
                    {
                        "userId": cid,
                        "event": "Order Completed",
                        "messageId": f"o{n}",
                        "properties": properties,
                    },
                ):
                    path = "/v1/identify" if body.get("type") == "identify" else "/v1/track"
                    r = api.post(path, json=body, auth=(write, ""))
                    assert r.status_code == 200, r.text
            token = asyncio.run(_survey(database))
            comment = f"{NAME} here, call {PHONE} or write {EMAIL}"
            r = api.post(f"/v1/surveys/{token}", json={"score": 3, "comment": comment})
            assert r.status_code == 200

            # refusals whose request carries the canaries: the bodies must not
            refusals = [
                api.post("/v1/track", json={"userId": EMAIL}, auth=(write, "")),
                api.post(
                    "/v1/track",
                    json={"userId": EMAIL, "event": "x", "timestamp": EMAIL},
                    auth=(write, ""),
                ),
                api.post("/v1/identify", json={"userId": EMAIL, "traits": EMAIL}, auth=(write, "")),
                api.get(f"/v1/customers/{quote(NAME + 'x')}", headers=bearer),
                api.get(f"/v1/customers/{quote(EMAIL)}", headers={"Authorization": "Bearer no"}),
                api.post(
                    f"/v1/customers/{quote(EMAIL)}/journeys/lifecycle/move",
                    json={"state": f"{NAME} {PHONE}", "reason": EMAIL},
                    headers=bearer,
                ),
                api.post(f"/v1/surveys/{token}", json={"score": 1, "comment": comment}),
                api.post("/codec/decode", content=f'{{"payloads": "{EMAIL}"}}', headers=bearer),
            ]
            for r in refusals:
                assert 400 <= r.status_code < 500, (r.request.url, r.status_code)
                errors.append(r.text)

            def settled() -> dict[str, Any] | None:
                with psycopg.connect(database) as conn:
                    row = conn.execute("SELECT count(*) FROM outbox").fetchone()
                if row != (0,) or not smtp.rejected:
                    return None
                r = api.get(f"/v1/customers/{quote(EMAIL)}", headers=bearer)
                body: dict[str, Any] = r.json()
                return body if r.status_code == 200 and body["problems"] else None

            shown = _eventually(settled)
            # what the workflow knows and shows: no contact details, decrypted or not
            state_text = str({"journeys": shown["journeys"], "problems": shown["problems"]})
            assert not [n for n in NEEDLES if n.lower() in state_text.lower()], state_text
            assert "<redacted>" in str(shown["problems"]) or "<email>" in str(shown["problems"])
            api.close()
    finally:
        smtp.close()
    assert not [(n, e) for e in errors for n in NEEDLES if n.lower() in e.lower()], errors
    temporal_files = sorted(stack.data_dir.glob("temporal.db*"))
    assert temporal_files and any(p.stat().st_size > 0 for p in temporal_files)
    assert _hits(temporal_files) == {}
    # the right files were read: the keyed workflow ids are there, and the relay's refusal
    assert any(b"customer-k-" in p.read_bytes() for p in temporal_files)
    logs = sorted((tmp_path / "logs").glob("*.log"))
    assert {p.name for p in logs} >= {"api.log", "worker.log", "temporal.log"}
    assert "5.7.1 mail for <redacted>" in (tmp_path / "logs" / "worker.log").read_text()
    assert _hits(logs) == {}


async def _survey(database: str) -> str:
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        survey = await surveys.create(
            conn,
            idempotency_key="pii-canary-survey",
            customer_id=EMAIL,
            journey="nps",
            template="nps_survey",
            kind="nps",
            expires_in=timedelta(days=14),
            now=datetime.now(UTC),
        )
    return survey.token

"""The HTTP API on a real uvicorn server, real PostgreSQL and real workflows (time-skipping
test server), driven by the real Segment and RudderStack SDKs and by plain HTTP."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from api import create_app
from devstack.stack import free_port
from ingest import keys
from orchestration import customers
from settings import Settings
from tests.conftest import running_worker
from tests.helpers import publish_shipped
from tests.standins import RecordingSMTPServer


@dataclass
class Api:
    url: str
    write_key: str
    admin_token: str
    db: Any
    client: Any  # Temporal

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10)

    def auth(self, key: str | None = None) -> dict[str, str]:
        token = base64.b64encode(f"{key or self.write_key}:".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    async def count(self, sql: str, *args: Any) -> int:
        async with self.db.connection() as conn:
            cur = await conn.execute(sql, args)
            row = await cur.fetchone()
            return int(row[0])


@pytest.fixture
async def api(time_env, db, db_url, task_queue) -> AsyncIterator[Api]:
    await publish_shipped(db_url)
    async with db.connection() as conn:
        _, write = await keys.create(conn, "write", "test source")
        _, admin = await keys.create(conn, "admin", "test admin")
    smtp = RecordingSMTPServer().start()  # welcome emails go somewhere real
    settings = Settings.model_validate(
        {
            "DATABASE_URL": db_url,
            "JOURNEYS_TASK_QUEUE": task_queue,
            "JOURNEYS_ENV": "development",
            **smtp.env(),
        }
    )
    app = create_app(settings, temporal=time_env.client)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    async with running_worker(time_env.client, db, task_queue, settings=settings):
        yield Api(f"http://127.0.0.1:{port}", write, admin, db, time_env.client)
    server.should_exit = True
    await task
    smtp.close()


async def eventually(check, timeout: float = 20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            result = await check()
            if result:
                return result
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def journey(api: Api, customer: str, name: str) -> Any:
    st = await customers.state(api.client, customer)
    return st.runs.get(name)


def _run_sdk(module: str, api: Api, prefix: str) -> None:
    if module == "segment":
        from segment.analytics import Client
    else:
        from rudderstack.analytics.client import Client
    errors: list[Any] = []
    client = Client(
        api.write_key, host=api.url, on_error=lambda e, batch: errors.append(e), max_retries=1
    )
    client.identify(f"{prefix}-1", {"email": "x@example.com", "plan": "pro"})
    client.track(f"{prefix}-1", "Signed Up")
    client.track(f"{prefix}-1", "Order Completed", {"revenue": 6000})
    client.track(f"{prefix}-2", "Lead Created")
    client.flush()
    client.join()
    assert not errors, errors


@pytest.mark.parametrize("sdk", ["segment", "rudder"])
async def test_real_sdks_drive_journeys(api: Api, sdk: str):
    await asyncio.to_thread(_run_sdk, sdk, api, sdk)
    vip = await eventually(lambda: _state_is(api, f"{sdk}-1", "lifecycle", "vip"))
    assert vip.context == {"orders": 1, "spent": 6000.0}
    await eventually(lambda: _state_is(api, f"{sdk}-2", "lead_followup", "waiting"))
    st = await customers.state(api.client, f"{sdk}-1")
    assert st.customer.traits == {"plan": "pro"}  # the email stays in PostgreSQL
    async with api.http() as http:
        body = (await http.get(f"/v1/customers/{sdk}-1", headers=api.admin())).json()
    assert body["traits"]["email"] == "x@example.com"
    assert body["journeys"]["lifecycle"]["state"] == "vip"
    assert body["journeys"]["lifecycle"]["next_timer"]["after"] == "90d"


async def _state_is(api: Api, customer: str, name: str, state: str) -> Any:
    run = await journey(api, customer, name)
    return run if run is not None and run.state == state else None


def orders_of(cid: str, n: int) -> list[dict[str, Any]]:
    """``n`` distinct ``Order Completed`` track calls of 10 each for ``cid``."""
    return [
        {
            "type": "track",
            "userId": cid,
            "event": "Order Completed",
            "properties": {"revenue": 10},
            "messageId": f"{cid}-{i}",
        }
        for i in range(n)
    ]


async def test_duplicates_and_shuffled_batches_apply_once(api: Api):
    cid = f"dup-{uuid.uuid4().hex[:6]}"
    msgs = orders_of(cid, 20)
    twice = msgs + msgs
    random.Random(7).shuffle(twice)
    async with api.http() as http:
        for chunk in (twice[:15], twice[15:30], twice[30:]):
            r = await http.post("/v1/batch", json={"batch": chunk}, headers=api.auth())
            assert r.status_code == 200 and r.json() == {"success": True}
        # and once more as single calls
        for m in msgs[:5]:
            assert (await http.post("/v1/track", json=m, headers=api.auth())).status_code == 200
    run = await eventually(lambda: _orders(api, cid, 20))
    assert run.context == {"orders": 20, "spent": 200.0}
    assert await api.count("SELECT count(*) FROM events WHERE customer_id = %s", cid) == 20
    await asyncio.sleep(1.0)  # nothing arrives late
    assert (await journey(api, cid, "lifecycle")).context["orders"] == 20


async def test_several_events_of_one_customer_in_a_batch_cost_one_signal(api: Api):
    from temporalio.api.enums.v1 import EventType

    from engine.identity import workflow_id

    cid = f"one-{uuid.uuid4().hex[:6]}"
    batch = orders_of(cid, 5)
    async with api.http() as http:
        r = await http.post("/v1/batch", json={"batch": batch}, headers=api.auth())
        assert r.status_code == 200
    await eventually(lambda: _orders(api, cid, 5))
    history = await api.client.get_workflow_handle(workflow_id(cid)).fetch_history()
    signals = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert len(signals) == 1  # the signal-with-start that carried all five


async def _orders(api: Api, cid: str, n: int) -> Any:
    run = await journey(api, cid, "lifecycle")
    return run if run is not None and run.context["orders"] == n else None


async def test_unlistened_events_are_stored_but_never_signalled(api: Api):
    cid = f"quiet-{uuid.uuid4().hex[:6]}"
    async with api.http() as http:
        batch = [
            {"type": "track", "userId": cid, "event": "Page Scrolled"},
            {"type": "page", "userId": cid, "name": "Home"},
        ]
        assert (
            await http.post("/v1/batch", json={"batch": batch}, headers=api.auth())
        ).status_code == 200
    assert await api.count("SELECT count(*) FROM events WHERE customer_id = %s", cid) == 2
    assert await api.count("SELECT count(*) FROM outbox WHERE customer_id = %s", cid) == 0
    await asyncio.sleep(0.5)
    with pytest.raises(Exception, match="not found"):
        await customers.state(api.client, cid)


async def test_clock_skew_is_corrected(api: Api):
    cid = f"skew-{uuid.uuid4().hex[:6]}"
    async with api.http() as http:
        msg = {
            "userId": cid,
            "event": "x",
            "timestamp": "2020-01-01T00:00:00Z",
            "sentAt": "2020-01-01T00:00:10Z",
            "messageId": "s1",
        }
        assert (await http.post("/v1/track", json=msg, headers=api.auth())).status_code == 200
    async with api.db.connection() as conn:
        cur = await conn.execute(
            "SELECT event_time, received_at FROM events WHERE customer_id = %s", (cid,)
        )
        event_time, received = await cur.fetchone()
    # the client clock was ~6 years behind: event time = received - 10 s
    assert abs((received - event_time).total_seconds() - 10) < 0.01


BOMB = gzip.compress(b"{" + b" " * 50_000_000 + b"}")


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "reason"),
    [
        ("malformed json", b'{"userId": "a", "event": ', {}, 400, "bad_json"),
        ("not an object", b"[1, 2]", {}, 400, "bad_json"),
        (
            "event not a string",
            json.dumps({"userId": "a", "event": 5}).encode(),
            {},
            400,
            "missing_event",
        ),
        (
            "properties not an object",
            json.dumps({"userId": "a", "event": "e", "properties": [1]}).encode(),
            {},
            400,
            "bad_field",
        ),
        (
            "bad timestamp",
            json.dumps({"userId": "a", "event": "e", "timestamp": "yesterday"}).encode(),
            {},
            400,
            "bad_timestamp",
        ),
        (
            "no user",
            json.dumps({"event": "e", "properties": {"secret": "s3cr3t-pii"}}).encode(),
            {},
            400,
            "missing_user",
        ),
        (
            "message over 32 KB",
            json.dumps(
                {"userId": "a", "event": "e", "properties": {"x": "s3cr3t-pii" * 4000}}
            ).encode(),
            {},
            413,
            "message_too_large",
        ),
        ("gzip bomb", BOMB, {"Content-Encoding": "gzip"}, 413, "batch_too_large"),
        ("not gzip", b"plain", {"Content-Encoding": "gzip"}, 400, "bad_gzip"),
    ],
)
async def test_bad_input_is_refused_clearly_and_changes_nothing(
    api: Api, case, body, headers, status, reason
):
    before = await api.count("SELECT count(*) FROM events")
    async with api.http() as http:
        r = await http.post(
            "/v1/track",
            content=body,
            headers={**api.auth(), "Content-Type": "application/json", **headers},
        )
    assert r.status_code == status, r.text
    assert r.json()["error"] == reason and r.json()["success"] is False
    assert r.json()["message"]
    assert "s3cr3t-pii" not in r.text  # submitted data is never echoed back
    assert await api.count("SELECT count(*) FROM events") == before


async def test_oversize_batch_is_refused(api: Api):
    batch = [
        {"type": "track", "userId": "big", "event": "e", "properties": {"x": "y" * 20_000}}
        for _ in range(30)
    ]
    async with api.http() as http:
        r = await http.post("/v1/batch", json={"batch": batch}, headers=api.auth())
        bad = await http.post(
            "/v1/batch",
            json={"batch": [{"type": "track", "userId": "ok", "event": "e"}, {"type": "track"}]},
            headers=api.auth(),
        )
    assert r.status_code == 413 and r.json()["error"] == "batch_too_large"
    assert bad.status_code == 400 and "batch[1]" in bad.json()["message"]
    assert await api.count("SELECT count(*) FROM events WHERE customer_id IN ('big', 'ok')") == 0


async def test_keys_wrong_revoked_and_admin_separation(api: Api):
    msg = {"userId": "k1", "event": "e"}
    async with api.http() as http:
        assert (await http.post("/v1/track", json=msg)).status_code == 401
        r = await http.post("/v1/track", json=msg, headers=api.auth("jw_wrong"))
        assert r.status_code == 401 and r.json()["error"] == "bad_key"
        r = await http.post("/v1/track", json={**msg, "writeKey": api.write_key})
        assert r.status_code == 200
        r = await http.post(
            "/v1/track", json=msg, headers={"Authorization": f"Bearer {api.write_key}"}
        )
        assert r.status_code == 200
        # an admin token is no write key, a write key no admin token
        r = await http.post("/v1/track", json=msg, headers=api.auth(api.admin_token))
        assert r.status_code == 401
        r = await http.get("/v1/customers/k1", headers={"Authorization": f"Bearer {api.write_key}"})
        assert r.status_code == 403 and r.json()["error"] == "write_key"
        assert (await http.get("/v1/customers/k1")).status_code == 401
        async with api.db.connection() as conn:
            info = next(k for k in await keys.listing(conn) if k.kind == "write")
            assert await keys.revoke(conn, info.id)
        await asyncio.sleep(5.2)  # the key cache lives 5 s
        r = await http.post("/v1/track", json=msg, headers=api.auth())
        assert r.status_code == 401


async def test_admin_endpoints(api: Api):
    cid = f"adm-{uuid.uuid4().hex[:6]}"
    async with api.http() as http:
        await http.post("/v1/track", json={"userId": cid, "event": "Signed Up"}, headers=api.auth())
        await eventually(lambda: _state_is(api, cid, "lifecycle", "new"))
        events = (await http.get(f"/v1/customers/{cid}/events", headers=api.admin())).json()
        assert [e["name"] for e in events["events"]] == ["signed_up"]
        listing = (await http.get("/v1/journeys", headers=api.admin())).json()
        assert listing["journeys"]["lifecycle"]["latest"] == 1
        assert set(listing["journeys"]["lifecycle"]["states"]) == {
            "new",
            "active",
            "vip",
            "dormant",
            "lost",
        }
        r = await http.post(
            f"/v1/customers/{cid}/journeys/lifecycle/move",
            json={"state": "vip", "reason": "key account"},
            headers=api.admin(),
        )
        assert r.status_code == 200 and r.json()["state"] == "vip"
        r = await http.post(
            f"/v1/customers/{cid}/journeys/lifecycle/move",
            json={"state": "nowhere", "reason": "x"},
            headers=api.admin(),
        )
        assert r.status_code == 400 and "no state 'nowhere'" in r.json()["message"]
        r = await http.post(
            "/v1/customers/ghost/journeys/lifecycle/move",
            json={"state": "vip", "reason": "x"},
            headers=api.admin(),
        )
        assert r.status_code == 404
        assert (await http.get("/v1/customers/ghost", headers=api.admin())).status_code == 404
        assert (await http.get("/healthz")).json() == {"ok": True}
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["postgres"] == "ok"
        metrics = (await http.get("/metrics")).text
        assert "journeys_events_accepted_total" in metrics
        assert "journeys_requests_rejected_total" in metrics
        assert (await http.get("/openapi.json")).json()["paths"]["/v1/batch"]

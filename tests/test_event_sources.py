"""Event sources besides Segment (``ingest/sources/``): the Stripe source over the real API,
uvicorn, PostgreSQL and workflows on the time-skipping server; and the seam itself, with a
source this test registers through the public registry."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from api import create_app
from channels.http import sign
from devstack.stack import free_port
from ingest import keys, sources
from ingest.segment import IngestError
from ingest.sources import stripe
from orchestration import customers
from settings import Settings
from tests.conftest import running_worker
from tests.helpers import publish_shipped
from tests.standins import RecordingSMTPServer

SECRET = "whsec_test_secret"


def charge(event_id: str, user: str, amount: int, currency: str = "usd") -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": "charge.succeeded",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": f"ch_{event_id}",
                "object": "charge",
                "amount": amount,
                "currency": currency,
                "customer": "cus_123",
                "metadata": {"userId": user},
            }
        },
    }


def test_a_charge_is_an_order_in_major_units_and_the_event_id_is_the_message_id() -> None:
    [msg] = stripe.translate(charge("evt_1", "42", 600000))
    assert msg["type"] == "track" and msg["event"] == "Order Completed"
    assert msg["userId"] == "42" and msg["messageId"] == "stripe:evt_1"
    assert msg["properties"] == {"revenue": 6000.0, "currency": "USD", "order_id": "ch_evt_1"}
    [yen] = stripe.translate(charge("evt_2", "42", 6000, "jpy"))
    assert yen["properties"]["revenue"] == 6000


def test_a_customer_without_the_shops_id_is_the_stripe_customer_and_unknown_kinds_are_ignored() -> (
    None
):
    delivery = {
        "id": "evt_3",
        "type": "customer.created",
        "created": 1_700_000_000,
        "data": {"object": {"id": "cus_9", "email": "ada@example.com", "name": "Ada"}},
    }
    [msg] = stripe.translate(delivery)
    assert msg == {
        "messageId": "stripe:evt_3",
        "timestamp": "2023-11-14T22:13:20+00:00",
        "context": {"integration": {"name": "stripe"}},
        "type": "identify",
        "userId": "cus_9",
        "traits": {"email": "ada@example.com", "name": "Ada"},
    }
    assert stripe.translate({**delivery, "type": "invoice.created"}) == []


def test_a_delivery_missing_what_it_needs_is_refused_naming_the_field() -> None:
    broken = charge("evt_4", "42", 100)
    del broken["data"]["object"]["amount"]
    with pytest.raises(IngestError, match=r"needs data\.object\.amount \(int\)"):
        stripe.translate(broken)
    anonymous = charge("evt_5", "42", 100)
    anonymous["data"]["object"].pop("metadata")
    anonymous["data"]["object"].pop("customer")
    with pytest.raises(IngestError, match="to know whose it is"):
        stripe.translate(anonymous)


@dataclass
class Api:
    url: str
    write_key: str
    db: Any
    client: Any

    async def post(
        self, name: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        token = base64.b64encode(f"{self.write_key}:".encode()).decode()
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            return await http.post(
                f"/v1/sources/{name}",
                content=body,
                headers={
                    "Authorization": f"Basic {token}",
                    "Content-Type": "application/json",
                    **(headers or {}),
                },
            )

    async def stored(self, message_id: str) -> int:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM events WHERE message_id = %s", (message_id,)
            )
            row = await cur.fetchone()
            return int(row[0]) if row else 0


@pytest.fixture
async def api(time_env, db, db_url, task_queue) -> AsyncIterator[Api]:
    await publish_shipped(db_url)
    async with db.connection() as conn:
        _, write = await keys.create(conn, "write", "stripe")
    smtp = RecordingSMTPServer().start()
    settings = Settings.model_validate(
        {
            "DATABASE_URL": db_url,
            "JOURNEYS_TASK_QUEUE": task_queue,
            "JOURNEYS_ENV": "development",
            "JOURNEYS_STRIPE_WEBHOOK_SECRET": SECRET,
            **smtp.env(),
        }
    )
    app = create_app(settings, temporal=time_env.client)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        await asyncio.sleep(0.02)
    async with running_worker(time_env.client, db, task_queue, settings=settings):
        yield Api(f"http://127.0.0.1:{port}", write, db, time_env.client)
    server.should_exit = True
    await task
    smtp.close()


def signed(delivery: dict[str, Any], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(delivery).encode()
    return body, {"Stripe-Signature": sign(secret, int(time.time()), body)}


async def test_a_signed_stripe_payment_makes_a_vip_once_and_forgeries_are_refused(api) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    body, headers = signed(charge("evt_vip", user, 600000))
    first = await api.post("stripe", body, headers)
    assert first.status_code == 200, first.text
    again = await api.post("stripe", body, headers)  # Stripe retries until it gets a 2xx
    assert again.status_code == 200
    assert await api.stored("stripe:evt_vip") == 1

    deadline = time.monotonic() + 30
    while True:
        try:
            state = await customers.state(api.client, user)
            if state.runs.get("lifecycle") and state.runs["lifecycle"].state == "vip":
                break
        except Exception:  # the workflow may not be started yet
            pass
        assert time.monotonic() < deadline, "the payment did not reach the journeys"
        await asyncio.sleep(0.1)

    forged, _ = signed(charge("evt_forged", user, 900000), secret="whsec_someone_else")
    refused = await api.post("stripe", forged, signed(charge("x", user, 1))[1])
    assert refused.status_code == 401
    assert "does not sign this body" in refused.json()["message"]
    unsigned = await api.post("stripe", forged)
    assert unsigned.status_code == 401 and "header is missing" in unsigned.json()["message"]
    assert await api.stored("stripe:evt_forged") == 0

    ignored_body, ignored_headers = signed(
        {**charge("evt_ign", user, 1), "type": "invoice.created"}
    )
    ignored = await api.post("stripe", ignored_body, ignored_headers)
    assert ignored.status_code == 200 and ignored.json()["ignored"] == 1

    nowhere = await api.post("paypal", body, headers)
    assert nowhere.status_code == 404 and "stripe" in nowhere.json()["message"]


async def test_a_source_is_one_registration_and_gets_the_apis_checks(api) -> None:
    """The seam: a source registered here (as a module in ingest/sources/ would) is served
    at /v1/sources/{name}, and what it translates passes the Segment checks."""

    def verify(settings: Settings, headers: Mapping[str, str], body: bytes) -> None:
        if headers.get("x-shop-token") != "right":
            raise IngestError(401, "bad_signature", "the shop token is wrong")

    def translate(delivery: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "type": "track",
                "messageId": f"shop:{delivery['order']}",
                "userId": delivery["buyer"],
                "event": "Order Completed",
                "properties": {"revenue": delivery["total"]},
            }
        ]

    sources.register(sources.Source("shop", verify, translate))
    try:
        body = json.dumps({"order": "o-1", "buyer": "b-1", "total": 12.5}).encode()
        ok = await api.post("shop", body, {"X-Shop-Token": "right"})
        assert ok.status_code == 200, ok.text
        assert await api.stored("shop:o-1") == 1
        wrong = await api.post("shop", body, {"X-Shop-Token": "wrong"})
        assert wrong.status_code == 401 and wrong.json()["message"] == "the shop token is wrong"
        # the translation is a Segment message like any other: the API's own refusals
        no_user = json.dumps({"order": "o-2", "buyer": "", "total": 1}).encode()
        refused = await api.post("shop", no_user, {"X-Shop-Token": "right"})
        assert refused.status_code == 400 and "userId" in refused.json()["message"]
        assert await api.stored("shop:o-2") == 0
    finally:
        sources.unregister("shop")

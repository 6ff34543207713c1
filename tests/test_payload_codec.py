"""The payload codec, its keys and rotation, the codec endpoint over HTTP, the refusal of
development secrets, and customers whose workflow runs under the legacy (unsalted) id."""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.service import RPCError

from api import create_app
from engine.identity import workflow_id
from engine.model import Event
from ingest import keys
from ingest.bootstrap import check_secrets
from orchestration import customers
from orchestration.codec import (
    COMPRESS_FROM,
    ENCODING,
    ENCODING_ZLIB,
    EncryptionCodec,
    PayloadKeyError,
    SharedPayloadConverter,
    data_converter,
    new_key_spec,
    parse_keys,
)
from settings import DEV_PAYLOAD_KEYS, Settings
from tests.conftest import running_worker
from tests.helpers import publish_shipped
from workflows.customer import CUSTOMER_ID, CustomerWorkflow
from workflows.io import SIGNAL_EVENTS, CustomerInput, EventsSignal

PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"email":"ann@example.com"}')


async def test_payloads_are_encrypted_and_old_keys_still_decrypt_after_rotation():
    old = new_key_spec("k1")
    codec = EncryptionCodec(parse_keys(old))
    (sealed,) = await codec.encode([PLAIN])
    assert sealed.metadata["encoding"] == ENCODING and sealed.metadata["encryption-key-id"] == b"k1"
    assert b"ann@example.com" not in sealed.SerializeToString()
    rotated = EncryptionCodec(parse_keys(f"{new_key_spec('k2')},{old}"))
    (fresh,) = await rotated.encode([PLAIN])
    assert fresh.metadata["encryption-key-id"] == b"k2"  # the first key encrypts
    assert await rotated.decode([sealed, fresh]) == [PLAIN, PLAIN]  # all keys decrypt
    # payloads recorded before the codec decode as they are
    assert await codec.decode([PLAIN]) == [PLAIN]
    with pytest.raises(PayloadKeyError, match="key 'k2', which JOURNEYS_PAYLOAD_KEYS does not"):
        await codec.decode([fresh])


def _sealed_by_hand(codec: EncryptionCodec, encoding: bytes, plain: bytes) -> Payload:
    """``plain`` encrypted with the codec's key k1 under ``encoding``, as no encoder of
    today would write it (an older codec's payload, a corrupt one)."""
    nonce = b"\0" * 12
    return Payload(
        metadata={"encoding": encoding, "encryption-key-id": b"k1"},
        data=nonce + codec._encrypt.encrypt(nonce, plain, None),
    )


async def test_large_payloads_are_compressed_before_encryption_and_old_ones_still_decode():
    codec = EncryptionCodec(parse_keys(new_key_spec("k1")))
    catalog = json.dumps(
        [{"journey": f"j{i}", "states": ["new", "active", "vip"]} for i in range(200)]
    ).encode()
    big = Payload(metadata={"encoding": b"json/plain"}, data=catalog)
    (sealed,) = await codec.encode([big])
    assert sealed.metadata["encoding"] == ENCODING_ZLIB
    assert len(sealed.data) < len(catalog) / 4 and b"journey" not in sealed.data
    assert await codec.decode([sealed]) == [big]
    # below the threshold, or when zlib would not make it smaller: encrypted only
    random = Payload(metadata={"encoding": b"json/plain"}, data=os.urandom(1600))
    assert len(random.SerializeToString()) >= COMPRESS_FROM
    (small, noise) = await codec.encode([PLAIN, random])
    assert small.metadata["encoding"] == noise.metadata["encoding"] == ENCODING
    assert await codec.decode([small, noise]) == [PLAIN, random]
    # a large payload sealed before compression existed decodes as it did
    legacy = _sealed_by_hand(codec, ENCODING, big.SerializeToString())
    assert await codec.decode([legacy]) == [big]


async def test_a_compressed_payload_that_does_not_expand_cleanly_is_refused(monkeypatch):
    codec = EncryptionCodec(parse_keys(new_key_spec("k1")))
    (sealed,) = await codec.encode([Payload(data=b"a" * 100_000)])
    monkeypatch.setattr("orchestration.codec.MAX_EXPANDED", 10_000)
    with pytest.raises(PayloadKeyError, match="expands past"):
        await codec.decode([sealed])
    garbage = _sealed_by_hand(codec, ENCODING_ZLIB, b"not zlib")
    with pytest.raises(PayloadKeyError, match="does not decompress"):
        await codec.decode([garbage])


def test_one_payload_converter_serves_every_workflow_and_writes_what_the_stock_one_does():
    """The SDK builds a payload converter per cached workflow and per activation: the
    project's class hands out one, with one cache of TypeAdapters, and its payloads are
    byte for byte the stock converter's (recorded histories decode alike)."""
    converter = data_converter(new_key_spec("k1"))
    assert SharedPayloadConverter() is SharedPayloadConverter()
    assert converter.payload_converter_class is SharedPayloadConverter
    value = CustomerInput(customer_id="c1", catalog_seq=3)
    stock = PydanticPayloadConverter()
    for built in (converter.payload_converter, dataclasses.replace(converter).payload_converter):
        (payload,) = built.to_payloads([value])
        assert payload == stock.to_payloads([value])[0]
        assert built.from_payloads([payload], [CustomerInput]) == [value]
        assert built.from_payloads(stock.to_payloads([7]), [int]) == [7]


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("", "lists no key"),
        ("nokey", "id:base64key"),
        ("k1:!!", "not valid base64"),
        ("k1:c2hvcnQ=", "has 5 bytes"),
        (f"{new_key_spec('a')},{new_key_spec('a')}", "listed twice"),
    ],
)
def test_malformed_key_lists_are_refused(spec: str, why: str):
    with pytest.raises(PayloadKeyError, match=why):
        parse_keys(spec)


async def test_production_refuses_the_development_payload_key_and_id_secret(db_url):
    prod = Settings.model_validate(
        {
            "DATABASE_URL": db_url,
            "JOURNEYS_ENV": "production",
            "JOURNEYS_LINK_SECRET": "a-long-random-production-secret",
        }
    )
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await keys.create(conn, "admin", "ops")
        with pytest.raises(SystemExit, match="holds the development key"):
            await check_secrets(conn, prod)
        rotated = prod.model_copy(
            update={"payload_keys": f"{new_key_spec('k1')},{DEV_PAYLOAD_KEYS}"}
        )
        with pytest.raises(SystemExit, match="holds the development key"):
            await check_secrets(conn, rotated)
        with pytest.raises(SystemExit, match=r"JOURNEYS_PAYLOAD_KEYS: .*lists no key"):
            await check_secrets(conn, prod.model_copy(update={"payload_keys": " "}))
        own = prod.model_copy(update={"payload_keys": new_key_spec("k1")})
        with pytest.raises(SystemExit, match="JOURNEYS_ID_SECRET is the development default"):
            await check_secrets(conn, own)
        await check_secrets(conn, own.model_copy(update={"id_secret": "x" * 32}))


# --- the endpoint -------------------------------------------------------------------------

UI = "http://localhost:8233"


@pytest.fixture
async def codec_http(db, db_url) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    async with db.connection() as conn:
        _, admin = await keys.create(conn, "admin", "test admin")
        _, write = await keys.create(conn, "write", "test source")
    settings = Settings.model_validate({"DATABASE_URL": db_url, "JOURNEYS_DISPATCHER": "false"})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, admin, write


def _body(*payloads: Payload) -> dict:
    from google.protobuf import json_format
    from temporalio.api.common.v1 import Payloads

    return json_format.MessageToDict(Payloads(payloads=list(payloads)))


async def test_codec_endpoint_decodes_for_admins_only_and_lets_the_ui_in(codec_http):
    http, admin, write = codec_http
    (sealed,) = await EncryptionCodec(parse_keys(DEV_PAYLOAD_KEYS)).encode([PLAIN])
    bearer = {"Authorization": f"Bearer {admin}", "X-Namespace": "default"}
    r = await http.post("/codec/decode", json=_body(sealed), headers=bearer)
    assert r.status_code == 200
    assert r.json() == _body(PLAIN)
    # encode then decode gives the payload back
    r = await http.post("/codec/encode", json=_body(PLAIN), headers=bearer)
    assert r.status_code == 200 and "ann@example.com" not in r.text
    r = await http.post("/codec/decode", json=r.json(), headers=bearer)
    assert r.json() == _body(PLAIN)
    # no token, a write key, another namespace, bad JSON: refused, nothing echoed
    for headers in ({}, {"Authorization": f"Bearer {write}"}, {"Authorization": "Bearer nope"}):
        r = await http.post("/codec/decode", json=_body(sealed), headers=headers)
        assert r.status_code == 401 and set(r.json()) == {"error", "message"}
    r = await http.post("/codec/decode", json=_body(sealed), headers={**bearer, "X-Namespace": "x"})
    assert r.status_code == 400 and r.json()["error"] == "wrong_namespace"
    r = await http.post("/codec/decode", content=b'{"payloads": "ann@example.com"}', headers=bearer)
    assert r.status_code == 400 and r.json()["error"] == "bad_json"
    assert "ann@example.com" not in r.text
    # the UI's preflight, from its origin only
    pre = {"Origin": UI, "Access-Control-Request-Method": "POST"}
    r = await http.options("/codec/decode", headers=pre)
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == UI
    assert r.headers["access-control-allow-credentials"] == "true"
    assert "X-Namespace" in r.headers["access-control-allow-headers"]
    r = await http.options("/codec/decode", headers={**pre, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    # a browser signs in once; the cookie then authorises the UI's requests
    r = await http.post("/codec/login", content=f"token={write}".encode())
    assert r.status_code == 401 and "journeys_codec" not in r.cookies
    r = await http.post("/codec/login", content=f"token={admin}".encode())
    assert r.status_code == 200 and "Signed in" in r.text
    r = await http.post("/codec/decode", json=_body(sealed), headers={"Origin": UI})
    assert r.status_code == 200 and r.json() == _body(PLAIN)
    assert r.headers["access-control-allow-origin"] == UI
    # whole payloads, far over the admin routes' 64 KB: the codec has a class of its own
    big = Payload(metadata={"encoding": b"json/plain"}, data=b'"' + b"x" * 300_000 + b'"')
    (sealed_big,) = await EncryptionCodec(parse_keys(DEV_PAYLOAD_KEYS)).encode([big])
    r = await http.post("/codec/decode", json=_body(sealed_big), headers=bearer)
    assert r.status_code == 200 and r.json() == _body(big)


# --- workflows under the legacy id ----------------------------------------------------------


async def test_a_customer_started_under_the_legacy_hash_keeps_its_workflow(
    time_env, db, db_url, task_queue
):
    seq = await publish_shipped(db_url)
    client = time_env.client
    ids = customers.CustomerIds("a-long-random-id-secret-for-tests")
    old, new = f"old-{uuid.uuid4().hex[:6]}@example.com", f"new-{uuid.uuid4().hex[:6]}@example.com"

    async def order(n: str) -> Event:
        return Event(
            name="Order Completed",
            id=n,
            timestamp=await time_env.get_current_time(),
            properties={"revenue": 10},
        )

    async with running_worker(client, db, task_queue):
        # as the code before the keyed hash started it
        await client.start_workflow(
            CustomerWorkflow.run,
            CustomerInput(customer_id=old, catalog_seq=seq),
            id=workflow_id(old),
            task_queue=task_queue,
            start_signal=SIGNAL_EVENTS,
            start_signal_args=[EventsSignal(events=[await order("o1")], catalog_seq=seq)],
        )
        await customers.send_events(
            client, old, [await order("o2")], task_queue=task_queue, catalog_seq=seq, ids=ids
        )
        await customers.send_events(
            client, new, [await order("n1")], task_queue=task_queue, catalog_seq=seq, ids=ids
        )
        st = await customers.state(client, old, ids=ids)
        assert st.runs["lifecycle"].context["orders"] == 2  # both in the old workflow
        assert (await customers.state(client, new, ids=ids)).runs["lifecycle"].context == {
            "orders": 1,
            "spent": 10.0,
        }
    assert await ids.workflow_id(client, old) == workflow_id(old)
    with pytest.raises(RPCError):
        await client.get_workflow_handle(workflow_id(old, ids.secret)).describe()
    keyed = workflow_id(new, ids.secret)
    assert await ids.workflow_id(client, new) == keyed and keyed.startswith("customer-k-")
    desc = await client.get_workflow_handle(keyed).describe()
    assert desc.typed_search_attributes.get(CUSTOMER_ID) == ids.key(new)
    assert new not in json.dumps(str(desc.raw_description))

"""Merging customers by hand over real HTTP and real PostgreSQL (issue #13, Admin and
Safety): ``POST /v1/customers/merge`` merges, is idempotent, is safe when two admins merge
the same pair at once, records who, when and why in the audit log (``GET /v1/merges``),
and refuses what is asked wrongly with a 4xx sentence that echoes nothing, merging
nothing. The customer reads and moves under an absorbed id: tests/test_merge_read.py."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from engine.errors import InputError, RefusedError
from orchestration.merging import BadMerge, UnknownCustomer
from tests.hostile import PII, refused, served_fixture  # noqa: F401

EMAIL = f"{PII}@example.com"  # a contact-like id: never shown in a refusal


async def _seen(served, *ids: str) -> None:
    """Customers that Journeys has seen: one event each, through ingestion."""
    async with served.http() as http:
        for cid in ids:
            r = await http.post(
                "/v1/track", json={"userId": cid, "event": "Page Viewed"}, headers=served.write()
            )
            assert r.status_code == 200, r.text


async def _count(served, table: str) -> int:
    async with served.db.connection() as conn:
        cur = await conn.execute(f"SELECT count(*) FROM {table}")
        return int((await cur.fetchone())[0])


def _ids() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"anon-{tag}", f"user-{tag}"


async def _merge(served, body: object):
    async with served.http() as http:
        return await http.post("/v1/customers/merge", json=body, headers=served.admin())


async def test_a_merge_absorbs_the_first_into_the_second_once_and_is_audited(served):
    anon, user = _ids()
    await _seen(served, anon, user)
    before = datetime.now(UTC) - timedelta(seconds=5)
    r = await _merge(served, {"from": anon, "into": user, "reason": "one person, two ids"})
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["merged"] is True and done["already"] is False
    assert (done["from"], done["into"], done["customer_id"]) == (anon, user, user)
    assert done["ids"] == sorted([anon, user])
    merge = done["merge"]
    assert (merge["absorbed"], merge["survivor"], merge["via"]) == (anon, user, "admin")
    assert merge["reason"] == "one person, two ids"
    assert merge["actor"].startswith("admin key hostile admin (#")
    assert merge["delivered"] is False  # the dispatcher tells the workflows (off here)
    assert merge["refused"] is None  # an admin's merge is made, known people or not
    assert before <= datetime.fromisoformat(merge["at"]) <= datetime.now(UTC)
    assert done["message"] == (
        f"merged {anon} into {user} (merge #{merge['id']}); "
        f"{user}'s workflow takes over {anon}'s journeys"
    )
    async with served.db.connection() as conn:
        cur = await conn.execute(
            "SELECT customer_id, sent_as FROM events WHERE customer_id = ANY(%s) ORDER BY id",
            ([anon, user],),
        )
        assert await cur.fetchall() == [(user, anon), (user, None)]

    # idempotent, either way round and through the other id: nothing new, 200
    for body in ({"from": anon, "into": user}, {"from": user, "into": anon}):
        again = await _merge(served, {**body, "reason": "again"})
        assert again.status_code == 200, again.text
        assert again.json()["merged"] is False and again.json()["already"] is True
        assert again.json()["merge"] is None and again.json()["customer_id"] == user
        assert "already are one customer" in again.json()["message"]

    async with served.http() as http:
        log = await http.get("/v1/merges", params={"customer": anon}, headers=served.admin())
        every = await http.get("/v1/merges", params={"limit": 1}, headers=served.admin())
    assert log.status_code == 200, log.text
    assert log.json()["customer_id"] == user and log.json()["ids"] == sorted([anon, user])
    assert [m["id"] for m in log.json()["merges"]] == [merge["id"]]
    assert log.json()["merges"][0] == merge
    assert every.json()["merges"][0]["id"] == merge["id"]  # newest first


async def test_merging_into_an_absorbed_id_joins_the_customer_it_is_now(served):
    tag = uuid.uuid4().hex[:8]
    a, b, c = f"a-{tag}", f"b-{tag}", f"c-{tag}"
    await _seen(served, a, b, c)
    assert (await _merge(served, {"from": a, "into": b, "reason": "x"})).status_code == 200
    # a is b's now: merging a into c merges b's customer into c
    r = await _merge(served, {"from": a, "into": c, "reason": "the shop's import"})
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["merge"]["absorbed"], done["merge"]["survivor"]) == (b, c)
    assert done["ids"] == [a, b, c] and done["customer_id"] == c
    assert done["message"].startswith(f"merged {a} (customer {b}) into {c} (merge #")
    async with served.http() as http:
        log = await http.get("/v1/merges", params={"customer": b}, headers=served.admin())
    assert [(m["absorbed"], m["survivor"]) for m in log.json()["merges"]] == [(b, c), (a, b)]


@pytest.mark.parametrize("crossed", [False, True], ids=["same way", "opposite ways"])
async def test_two_admins_merging_the_same_pair_at_once_merge_once(served, crossed):
    anon, user = _ids()
    await _seen(served, anon, user)
    second = {"from": user, "into": anon} if crossed else {"from": anon, "into": user}
    answers = await asyncio.gather(
        *(
            _merge(served, {**body, "reason": "race"})
            for body in [{"from": anon, "into": user}, second] * 3
        )
    )
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    assert sorted(r.json()["merged"] for r in answers) == [False] * 5 + [True]
    async with served.db.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM merges WHERE absorbed = ANY(%s)", ([anon, user],)
        )
        assert (await cur.fetchone())[0] == 1


KNOWN = "known-one"
# (case, JSON body as text, status, error, words the sentence holds)
CASES = [
    ("the same id twice", {"from": KNOWN, "into": KNOWN, "reason": "x"}, 422, "same_customer",
     "the two ids are the same"),
    ("an id never seen", {"from": "nobody-x1", "into": KNOWN, "reason": "x"}, 404,
     "unknown_customer", "no customer 'nobody-x1' to absorb"),
    ("a survivor never seen", {"from": KNOWN, "into": "nobody-x2", "reason": "x"}, 404,
     "unknown_customer", "no customer 'nobody-x2' to merge into"),
    ("a contact-like id never seen is not echoed", {"from": EMAIL, "into": KNOWN, "reason": "x"},
     404, "unknown_customer", "no customer with this id to absorb"),
    ("no reason", {"from": KNOWN, "into": "nobody"}, 422, "invalid_request", "body.reason"),
    ("an empty reason", {"from": KNOWN, "into": "n", "reason": ""}, 422, "invalid_request",
     "body.reason"),
    ("a reason of blanks", {"from": KNOWN, "into": "n", "reason": " \n\t "}, 422, "bad_reason",
     "give the reason"),
    ("a reason over 500 characters", {"from": KNOWN, "into": "n", "reason": PII * 60}, 422,
     "invalid_request", "body.reason"),
    ("an id over 256 characters", {"from": PII * 30, "into": KNOWN, "reason": "x"}, 422,
     "invalid_request", "body.from"),
    ("an id of blanks", {"from": "   ", "into": KNOWN, "reason": "x"}, 422, "bad_id", "is empty"),
    ("an empty id", {"from": "", "into": KNOWN, "reason": "x"}, 422, "invalid_request",
     "body.from"),
    ("no from", {"into": KNOWN, "reason": "x"}, 422, "invalid_request", "body.from"),
    ("an id that is a list", {"from": [PII], "into": KNOWN, "reason": "x"}, 422,
     "invalid_request", "body.from"),
    ("an id that is an object", {"from": KNOWN, "into": {"id": PII}, "reason": "x"}, 422,
     "invalid_request", "body.into"),
    ("an id that is true", {"from": True, "into": KNOWN, "reason": "x"}, 422, "invalid_request",
     "body.from"),
    ("an id that is a fraction", {"from": 1.5, "into": KNOWN, "reason": "x"}, 422,
     "invalid_request", "body.from"),
    ("a reason that is a number", {"from": KNOWN, "into": "n", "reason": 5}, 422,
     "invalid_request", "body.reason"),
    ("a field that is not ours", {"from": KNOWN, "into": "n", "reason": "x", "by": PII}, 422,
     "invalid_request", "body.by"),
    ("a body that is a list", [KNOWN, "n"], 422, "invalid_request", "body"),
    ("a NUL in an id", {"from": "a\u0000" + PII, "into": KNOWN, "reason": "x"}, 400, "bad_text",
     "NUL"),
    ("a lone surrogate in a reason", {"from": KNOWN, "into": "n", "reason": "\ud800"}, 400,
     "bad_text", "surrogate"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "body", "status", "error", "words"), CASES, ids=[c[0] for c in CASES]
)
async def test_a_merge_asked_wrongly_is_refused_with_a_sentence_and_merges_nothing(
    served, case, body, status, error, words
):
    await _seen(served, KNOWN)
    before = (
        await served.stored(),
        await _count(served, "merges"),
        await _count(served, "customer_ids"),
    )
    async with served.http() as http:
        text = json.dumps(body, ensure_ascii=True)  # the lone surrogate as \ud800
        r = await http.post(
            "/v1/customers/merge",
            content=text.encode(),
            headers={**served.admin(), "Content-Type": "application/json"},
        )
    answer = refused(r, status, error)
    assert words in answer["message"], answer
    after = (
        await served.stored(),
        await _count(served, "merges"),
        await _count(served, "customer_ids"),
    )
    assert after == before
    await served.healthy()


async def test_numeric_ids_are_ids_as_ingestion_takes_them(served):
    await _seen(served, "4711", "4712")
    r = await _merge(served, {"from": 4711, "into": 4712, "reason": "same shopper"})
    assert r.status_code == 200, r.text
    assert r.json()["merge"]["absorbed"] == "4711" and r.json()["customer_id"] == "4712"


@pytest.mark.parametrize(
    ("query", "field"),
    [({"limit": 0}, "query.limit"), ({"limit": 5000}, "query.limit"),
     ({"customer": "x" * 257}, "query.customer")],
)  # fmt: skip
async def test_the_audit_log_refuses_bad_parameters(served, query, field):
    async with served.http() as http:
        r = await http.get("/v1/merges", params=query, headers=served.admin())
    assert field in refused(r, 422, "invalid_request")["message"]


async def test_merging_needs_an_admin_token(served):
    anon, user = _ids()
    await _seen(served, anon, user)
    body = {"from": anon, "into": user, "reason": "x"}
    async with served.http() as http:
        write = await http.post("/v1/customers/merge", json=body, headers=served.write())
        log = await http.get("/v1/merges", headers=served.write())
        nobody = await http.get("/v1/merges")
    refused(write, 403, "write_key")
    refused(log, 403, "write_key")
    refused(nobody, 401, "missing_token")
    async with served.db.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM merges WHERE absorbed = %s", (anon,))
        assert (await cur.fetchone())[0] == 0


def test_the_refusals_sit_under_their_concern():
    assert issubclass(BadMerge, InputError) and not issubclass(BadMerge, RefusedError)
    assert issubclass(UnknownCustomer, RefusedError) and not issubclass(UnknownCustomer, InputError)
    assert (BadMerge("same_customer", "x").status, UnknownCustomer("x").status) == (422, 404)

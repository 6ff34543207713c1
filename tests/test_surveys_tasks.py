"""Surveys, tasks, consent and the action HTTP routes against real PostgreSQL: the app
is the real one (``create_app``, run through its lifespan), driven in-process by httpx."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api import create_app
from api.action_routes import router as action_router
from ingest import keys
from settings import Settings
from store import consent, managers, offers, surveys, tasks
from store.db import pool as make_pool

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime.now(UTC)


@dataclass
class Http:
    client: httpx.AsyncClient
    db: Any
    admin: dict[str, str]
    settings: Settings

    async def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        async with self.db.connection() as conn:
            cur = await conn.execute(sql, args)
            return await cur.fetchall()


@pytest.fixture
async def http(db, db_url, tmp_path) -> AsyncIterator[Http]:
    (tmp_path / "umfrage.j2").write_text(
        "{% block lang %}de{% endblock %}"
        "{% block question %}Wie <b>wahrscheinlich</b> empfehlen Sie uns?{% endblock %}"
        "{% block submit %}Absenden{% endblock %}{% block thanks %}Danke!{% endblock %}"
        # a mistake and an attempt to exhaust the server: both fall back to English
        "{% block low_label %}{{ survey.nope }}{% endblock %}"
        "{% block high_label %}{{ 'x' * 10**9 }}{% endblock %}"
        "{% block comment_label %}Kommentar zu {{ survey.kind }}{% endblock %}"
    )
    async with db.connection() as conn:
        _, admin = await keys.create(conn, "admin", "test admin")
    settings = Settings.model_validate(
        {"DATABASE_URL": db_url, "JOURNEYS_DISPATCHER": "false", "JOURNEYS_TEMPLATES": tmp_path}
    )
    app = create_app(settings)
    if not any(getattr(r, "path", None) == "/s/{token}" for r in app.routes):
        app.include_router(action_router)  # until api/app.py includes it
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Http(client, db, {"Authorization": f"Bearer {admin}"}, settings)


async def _survey(db, key: str = "k1", *, kind: str = "nps", template: str = "nps_survey", **kw):
    args = {"expires_in": timedelta(days=14), "now": NOW, **kw}
    async with db.connection() as conn:
        return await surveys.create(
            conn,
            idempotency_key=key,
            customer_id="ann",
            journey="nps",
            template=template,
            kind=kind,
            **args,
        )


async def test_concurrent_answers_one_wins(db, db_url):
    survey = await _survey(db)
    wide = make_pool(db_url, min_size=8, max_size=8)
    await wide.open()
    try:
        barrier = asyncio.Barrier(8)

        async def one(score: int):
            async with wide.connection() as conn:
                await barrier.wait()  # all connections ready: a real race
                try:
                    return await surveys.answer(
                        conn, survey.token, score=score, comment=None, now=NOW
                    )
                except surveys.SurveyRefused as exc:
                    return exc.code

        results = await asyncio.gather(*(one(s) for s in range(8)))
    finally:
        await wide.close()
    won = [r for r in results if isinstance(r, surveys.Survey)]
    assert len(won) == 1 and results.count("answered") == 7
    async with db.connection() as conn:
        cur = await conn.execute("SELECT properties FROM events")
        (props,) = [r[0] for r in await cur.fetchall()]
    assert props["score"] == won[0].score


def test_categories():
    nps = [surveys.category("nps", s) for s in range(11)]
    assert nps == ["detractor"] * 7 + ["passive"] * 2 + ["promoter"] * 2
    csat = [surveys.category("csat", s) for s in range(1, 6)]
    assert csat == ["unsatisfied", "unsatisfied", "neutral", "satisfied", "satisfied"]
    with pytest.raises(ValueError, match="csat scores go from 1 to 5"):
        surveys.category("csat", 0)


async def test_survey_json_answer_records_the_event_once(http):
    survey = await _survey(http.db)
    assert await _survey(http.db) == survey  # idempotent
    assert survey.url("https://x.test/") == f"https://x.test/s/{survey.token}"
    url = f"/v1/surveys/{survey.token}"
    r = await http.client.post(url, json={"score": 3, "comment": "  too slow  "})
    assert r.status_code == 200, r.text
    assert r.json() | {"answered_at": None} == {
        "token": survey.token,
        "kind": "nps",
        "score": 3,
        "category": "detractor",
        "comment": "too slow",
        "answered_at": None,
    }
    r = await http.client.post(url, json={"score": 10})
    assert r.status_code == 409 and r.json()["error"] == "answered"
    assert "already answered on" in r.json()["message"]
    rows = await http.rows(
        "SELECT e.name, e.properties FROM events e JOIN outbox o ON o.event_id = e.id"
        " WHERE e.customer_id = 'ann'"
    )
    assert rows == [
        (
            "survey_answered",
            {
                "kind": "nps",
                "score": 3,
                "category": "detractor",
                "comment": "too slow",
                "token": survey.token,
                "journey": "nps",
            },
        )
    ]


async def test_survey_page_is_a_plain_accessible_form(http):
    survey = await _survey(http.db)
    r = await http.client.get(f"/s/{survey.token}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert (
        r.headers["referrer-policy"] == "no-referrer" and "no-store" in r.headers["cache-control"]
    )
    page = r.text
    assert '<html lang="en">' in page and "<script" not in page.lower()
    assert f'<form method="post" action="/v1/surveys/{survey.token}">' in page
    assert "<fieldset" in page and "<legend>How likely are you to recommend us" in page
    radios = re.findall(r'<input type="radio" id="score-(\d+)" name="score" value="(\d+)"', page)
    assert [int(a) for a, _ in radios] == list(range(11))
    assert all(f'<label for="score-{n}">' in page for n in range(11))
    assert '<label for="comment">' in page and '<textarea id="comment" name="comment"' in page
    assert "0 = Not at all likely, 10 = Extremely likely" in page
    # the browser's form post, without JavaScript
    r = await http.client.post(
        f"/v1/surveys/{survey.token}",
        content=b"score=9&comment=great+%3Cservice%3E",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and "Thank you! Your answer was recorded." in r.text
    (props,) = await http.rows("SELECT properties FROM events WHERE name = 'survey_answered'")
    assert (props[0]["category"], props[0]["comment"]) == ("promoter", "great <service>")
    r = await http.client.get(f"/s/{survey.token}")
    assert r.status_code == 409 and "already answered" in r.text


async def test_survey_page_is_localised_from_the_template_and_escaped(http):
    survey = await _survey(http.db, kind="csat", template="umfrage")
    page = (await http.client.get(f"/s/{survey.token}")).text
    assert '<html lang="de">' in page
    assert "<legend>Wie &lt;b&gt;wahrscheinlich&lt;/b&gt; empfehlen Sie uns?</legend>" in page
    assert ">Absenden</button>" in page and "1 = Very unsatisfied, 5 = Very satisfied" in page
    assert '<label for="comment">Kommentar zu csat</label>' in page
    assert re.findall(r'name="score" value="(\d)"', page) == ["1", "2", "3", "4", "5"]
    r = await http.client.post(
        f"/v1/surveys/{survey.token}",
        content=b"score=4",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and "Danke!" in r.text and 'lang="de"' in r.text


async def test_survey_refusals(http):
    nps = await _survey(http.db, "a")
    csat = await _survey(http.db, "b", kind="csat")
    old = await _survey(http.db, "c", now=NOW - timedelta(days=30))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert (await http.client.get("/s/nope")).status_code == 404
    r = await http.client.post("/v1/surveys/nope", json={"score": 5})
    assert (r.status_code, r.json()["error"]) == (404, "unknown")
    r = await http.client.get(f"/s/{old.token}")
    assert r.status_code == 410 and "this survey closed on" in r.text
    r = await http.client.post(f"/v1/surveys/{old.token}", json={"score": 5})
    assert (r.status_code, r.json()["error"]) == (410, "expired")
    for survey, score in ((nps, 11), (nps, -1), (csat, 0), (csat, "x"), (nps, True)):
        r = await http.client.post(f"/v1/surveys/{survey.token}", json={"score": score})
        assert (r.status_code, r.json()["error"]) == (422, "bad_score"), score
    r = await http.client.post(f"/v1/surveys/{csat.token}", content=b"comment=hi", headers=form)
    assert r.status_code == 422 and 'role="alert">choose a score from 1 to 5<' in r.text
    assert "<form" in r.text  # the form again, to try once more
    r = await http.client.post(f"/v1/surveys/{nps.token}", json={"score": 5, "comment": "x" * 2001})
    assert (r.status_code, r.json()["error"]) == (422, "bad_comment")
    assert await http.rows("SELECT 1 FROM events") == []
    assert await http.rows("SELECT 1 FROM surveys WHERE answered_at IS NOT NULL") == []


async def test_tasks_create_list_complete(http):
    async with http.db.connection() as conn:
        ann = await managers.add(conn, pool="vip", name="Ann", email="ann@x.test", capacity=5)
        await managers.assign(conn, customer_id="c1", pool="vip")

        async def make(key: str, customer: str, assignee: str) -> tasks.Task:
            return await tasks.create(
                conn,
                idempotency_key=key,
                customer_id=customer,
                journey="nps",
                title=f"Call {customer}",
                note="unhappy",
                assignee=assignee,
                due_at=NOW + timedelta(days=2),
            )

        mine = await make("t1", "c1", "manager")
        assert await make("t1", "c1", "vip") == mine  # idempotent
        queued = await make("t2", "c2", "vip")
        nobody = await make("t3", "c3", "manager")
        with pytest.raises(managers.UnknownPool, match="pool 'gold'"):
            await make("t4", "c4", "gold")
    assert (mine.manager_id, mine.assignee) == (ann.id, "ann@x.test")
    assert (queued.manager_id, queued.pool, queued.assignee) == (None, "vip", "vip")
    assert nobody.assignee == "unassigned"

    async def listed(**params: str) -> list[int]:
        r = await http.client.get("/v1/tasks", params=params, headers=http.admin)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["tasks"]]

    assert await listed(assignee="ANN@x.test", status="open") == [mine.id]
    assert await listed(assignee=str(ann.id)) == [mine.id]
    assert await listed(assignee="vip") == [queued.id]
    assert await listed(assignee="unassigned") == [nobody.id]
    assert sorted(await listed()) == sorted([mine.id, queued.id, nobody.id])
    url = f"/v1/tasks/{mine.id}/complete"
    r = await http.client.post(url, json={"by": "ann@x.test"}, headers=http.admin)
    assert r.status_code == 200 and r.json()["status"] == "done"
    r = await http.client.post(url, headers=http.admin)  # again: unchanged
    assert (r.json()["status"], r.json()["completed_by"]) == ("done", "ann@x.test")
    assert await listed(assignee="ann@x.test", status="open") == []
    assert await listed(status="done") == [mine.id]
    rows = await http.rows(
        "SELECT e.customer_id, e.properties FROM events e JOIN outbox o ON o.event_id = e.id"
        " WHERE e.name = 'task_completed'"
    )
    assert rows == [
        (
            "c1",
            {
                "task_id": mine.id,
                "title": "Call c1",
                "journey": "nps",
                "completed_by": "ann@x.test",
            },
        )
    ]
    r = await http.client.post("/v1/tasks/999/complete", headers=http.admin)
    assert (r.status_code, r.json()["error"]) == (404, "unknown_task")
    assert (await http.client.get("/v1/tasks")).status_code == 401


async def test_offer_and_manager_admin_routes(http):
    r = await http.client.put("/v1/offer-budgets/winback", json={"max_live": 1})
    assert r.status_code == 401
    r = await http.client.put("/v1/offer-budgets/winback", json={"max_live": 1}, headers=http.admin)
    assert r.json() == {"name": "winback", "max_live": 1}
    r = await http.client.put(
        "/v1/offer-budgets/Win-Back", json={"max_live": 1}, headers=http.admin
    )
    assert r.status_code == 422
    async with http.db.connection() as conn:
        coupon = await offers.issue(
            conn,
            idempotency_key="k",
            customer_id="ann",
            journey="lifecycle",
            template="reactivation_offer",
            percent_off=None,
            amount_off=10,
            valid_for=timedelta(days=1),
            budget="winback",
            now=NOW,
        )
    assert coupon is not None
    url = f"/v1/offers/{coupon.code.lower()}/redeem"
    r = await http.client.post(url, json={"customer_id": "bob"}, headers=http.admin)
    assert (r.status_code, r.json()["error"]) == (409, "other_customer")
    r = await http.client.post(url, json={"customer_id": "ann"}, headers=http.admin)
    assert r.status_code == 200 and (r.json()["code"], r.json()["discount"]) == (
        coupon.code,
        "10.00 off",
    )
    r = await http.client.post(url, headers=http.admin)
    assert r.status_code == 409 and "already redeemed" in r.json()["message"]
    r = await http.client.post("/v1/offers/JRN-2222-2222-2222/redeem", headers=http.admin)
    assert (r.status_code, r.json()["error"]) == (404, "unknown_code")

    body = {"pool": "vip", "name": "Ann", "email": "ann@x.test", "capacity": 2}
    r = await http.client.post("/v1/managers", json=body, headers=http.admin)
    assert r.status_code == 201 and r.json()["load"] == 0
    ann = r.json()["id"]
    r = await http.client.post("/v1/managers", json=body, headers=http.admin)
    assert (r.status_code, r.json()["error"]) == (409, "duplicate_manager")
    bob = {**body, "name": "Bob", "email": "bob@x.test"}
    bob_id = (await http.client.post("/v1/managers", json=bob, headers=http.admin)).json()["id"]
    async with http.db.connection() as conn:
        await managers.assign(conn, customer_id="c1", pool="vip")
    r = await http.client.get("/v1/managers", params={"pool": "vip"}, headers=http.admin)
    assert [(m["name"], m["load"]) for m in r.json()["managers"]] == [("Ann", 1), ("Bob", 0)]
    r = await http.client.post(f"/v1/managers/{ann}/deactivate", headers=http.admin)
    assert r.json()["reassigned"][0]["customer_id"] == "c1"
    assert r.json()["reassigned"][0]["manager"]["id"] == bob_id
    r = await http.client.post("/v1/managers/999/deactivate", headers=http.admin)
    assert r.status_code == 404


async def test_consent_and_unsubscribe_links(http):
    secret = http.settings.link_secret
    token = consent.unsubscribe_token(secret, "cust:42", "email")
    assert consent.check_unsubscribe_token(secret, token) == ("cust:42", "email")
    assert consent.check_unsubscribe_token("other secret", token) is None
    assert consent.check_unsubscribe_token(secret, token[:-2] + "AA") is None
    assert consent.check_unsubscribe_token(secret, "garbage") is None
    assert re.fullmatch(r"[A-Za-z0-9_\-.]+", token)
    async with http.db.connection() as conn:
        assert not await consent.opted_out(conn, "cust:42", "email")
    r = await http.client.get(f"/u/{token}")
    assert r.status_code == 200 and f'<form method="post" action="/u/{token}">' in r.text
    async with http.db.connection() as conn:
        assert not await consent.opted_out(conn, "cust:42", "email")  # GET changes nothing
    r = await http.client.post(
        f"/u/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and "You are unsubscribed" in r.text
    assert (await http.client.get("/u/forged.token")).status_code == 404
    assert (await http.client.post("/u/forged.token")).status_code == 404
    async with http.db.connection() as conn:
        assert await consent.opted_out(conn, "cust:42", "email")
        assert not await consent.opted_out(conn, "cust:42", "sms")
        # identify traits: opt out of everything, then a stale "false" only lifts their own
        await consent.sync_from_traits(conn, "cust:42", {"unsubscribed": True, "name": "x"})
        assert await consent.opted_out(conn, "cust:42", "sms")
        await consent.sync_from_traits(
            conn, "cust:42", {"unsubscribed": False, "email_opt_out": False}
        )
        assert not await consent.opted_out(conn, "cust:42", "sms")
        assert await consent.opted_out(conn, "cust:42", "email")  # the link's choice stands
        await consent.sync_from_traits(conn, "bob", {"smsOptOut": True, "email_opt_out": "yes"})
        assert await consent.opted_out(conn, "bob", "sms")
        assert not await consent.opted_out(conn, "bob", "email")
        await consent.set_opt_out(conn, "cust:42", "all", False, "admin")
        assert not await consent.opted_out(conn, "cust:42", "email")

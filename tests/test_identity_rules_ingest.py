"""Identity rules and hostile identity input at ingestion, through the real HTTP API on
real PostgreSQL: with the rules off no trait merges anyone, with a rule on a shared
verified value merges into the customer first seen, a bad rules/identity.yaml stops the
API at file:line:col, and hostile aliases are refused or bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from settings import Settings
from tests._identity_http import KEY_NAME, Served, serving, track


@pytest.fixture
async def served(db, db_url) -> AsyncIterator[Served]:
    async with serving(db, db_url) as s:
        yield s


def identify(user: str, **traits: Any) -> dict[str, Any]:
    return {"userId": user, "traits": traits}


RULES = """merge_on:
  - {name: verified_email, trait: email, verified_by: email_verified}
  - {name: verified_phone, trait: phone, verified_by: phone_verified}
  - {name: work_email, trait: work_email, verified_by: work_verified, kind: email, enabled: false}
"""


async def test_with_the_rules_off_no_trait_ever_merges(served: Served):
    """The shipped rules/identity.yaml: a verified email shared by two customers (any write
    key can set any trait) merges nobody."""
    for user in ("ann", "ann-2", "ann-3"):
        await served.ok(
            "identify",
            identify(user, email="ann@example.org", email_verified=True, phone="+4917012345"),
        )
    assert await served.canonical("ann", "ann-2", "ann-3") == ["ann", "ann-2", "ann-3"]
    assert await served.rows("SELECT count(*) FROM merges") == [(0,)]


async def test_with_a_rule_on_a_shared_verified_email_merges_into_the_oldest(
    db, db_url, tmp_path: Path
):
    (tmp_path / "identity.yaml").write_text(RULES)
    async with serving(db, db_url, rules=tmp_path) as served:
        await served.ok("identify", identify("early", plan="pro"))  # first seen first
        await served.ok("identify", identify("late", email="Ann@Example.org", email_verified=True))
        await served.ok("track", track("Order Completed", user="late"))
        assert await served.canonical("early", "late") == ["early", "late"]
        # the same address, trimmed and in another case, verified: one person
        await served.ok(
            "identify", identify("early", email="  ann@example.ORG ", email_verified=True)
        )
        assert await served.canonical("early", "late") == ["early", "early"]
        assert await served.rows("SELECT absorbed, survivor, via, actor FROM merges") == [
            ("late", "early", "rule:verified_email", f"write key {KEY_NAME}")
        ]
        assert await served.rows("SELECT DISTINCT customer_id FROM events") == [("early",)]
        # a newcomer is merged into the customer who had the address first
        await served.ok("identify", identify("newer", phone="+49 170 1234567", phone_verified=True))
        await served.ok("identify", identify("newest", phone="+491701234567", phone_verified=True))
        assert await served.canonical("newer", "newest") == ["newer", "newer"]

        # not verified by a JSON true, or the other profile's value not verified: no merge
        await served.ok("identify", identify("u1", email="bo@example.org"))
        await served.ok("identify", identify("u2", email="bo@example.org", email_verified=True))
        await served.ok("identify", identify("u3", email="bo@example.org", email_verified="true"))
        await served.ok("identify", identify("u4", work_email="w@x.org", work_verified=True))
        await served.ok("identify", identify("u5", work_email="w@x.org", work_verified=True))
        assert await served.canonical("u1", "u2", "u3", "u4", "u5") == [
            "u1",
            "u2",
            "u3",
            "u4",
            "u5",
        ]
        assert len(await served.rows("SELECT id FROM merges")) == 2


async def test_a_bad_identity_file_stops_the_api_with_its_place(tmp_path: Path):
    from api.state import AppState
    from engine import JourneyValidationError

    (tmp_path / "identity.yaml").write_text(
        "merge_on:\n  - {name: verified_email, trait: email, verifed_by: email_verified}\n"
    )
    settings = Settings.model_validate(
        {"DATABASE_URL": "postgresql://nowhere/x", "JOURNEYS_RULES": str(tmp_path)}
    )
    with pytest.raises(JourneyValidationError) as exc:
        AppState(settings)
    assert f"{tmp_path}/identity.yaml:2:5 merge_on[0]: missing required key 'verified_by'" in str(
        exc.value
    )
    assert "identity.yaml:2:42 merge_on[0].verifed_by: unknown key 'verifed_by'" in str(exc.value)


async def _stored(served: Served) -> list[int]:
    tables = ("events", "outbox", "customers", "customer_ids", "merges")
    return [(await served.rows(f"SELECT count(*) FROM {t}"))[0][0] for t in tables]


async def test_hostile_aliases_are_refused_or_bounded(served: Served):
    async with served.http() as http:
        for body, status, error in (
            ({"userId": "u", "previousId": "p" * 300}, 400, "bad_field"),
            ({"userId": "u", "previousId": {"id": "p"}}, 400, "bad_field"),
            ({"userId": "u"}, 400, "missing_previous_id"),
            ({"userId": "u", "previousId": ""}, 400, "missing_previous_id"),
        ):
            answer = await http.post("/v1/alias", json=body)
            assert (answer.status_code, answer.json()["error"]) == (status, error), answer.text
            assert "p" * 300 not in answer.text
        assert await _stored(served) == [0, 0, 0, 0, 0]

        # an alias to itself is stored and merges nothing
        assert (await http.post("/v1/alias", json={"userId": "me", "previousId": "me"})).is_success
        assert await served.rows("SELECT count(*) FROM merges") == [(0,)]
        assert await served.canonical("me") == ["me"]

        # one id aliased to many: refused past the bound, whole, before anything is stored
        many = [{"type": "alias", "previousId": "x", "userId": f"user-{i}"} for i in range(150)]
        before = await _stored(served)
        answer = await http.post("/v1/batch", json={"batch": many})
        assert (answer.status_code, answer.json()["error"]) == (413, "too_many_merges")
        assert "at most 100" in answer.json()["message"]
        assert await _stored(served) == before

        # within the bound it is applied in order: x joins the first; the others are
        # known customers of their own, so joining them to it is refused (and recorded)
        answer = await http.post("/v1/batch", json={"batch": many[:100]})
        assert answer.status_code == 200, answer.text
        assert await served.canonical("x", "user-0", "user-99") == ["user-0", "user-0", "user-99"]
        assert await served.rows("SELECT count(*), count(refused) FROM merges") == [(100, 99)]

        # identify calls that link ids already linked merge nothing and are not counted;
        # a refused merge asked for again and again is on record once (here: the alias
        # x -> user-99 above asked for the same pair, user-0 into user-99)
        linked = [{"type": "identify", "anonymousId": "x", "userId": "user-0"}] * 200
        apart = [{"type": "identify", "anonymousId": "x", "userId": "user-99"}] * 200
        for batch in (linked, apart):
            answer = await http.post("/v1/batch", json={"batch": batch})
            assert answer.status_code == 200, answer.text
        assert await served.rows("SELECT count(*), count(refused) FROM merges") == [(100, 99)]

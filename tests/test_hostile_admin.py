"""Hostile input to the admin routes and the public survey pages over real HTTP (issue #10,
sections 3 and 4): a 4xx in the ``{error, message}`` shape that echoes nothing, nothing
stored, the service still up. Bodies are bounded before auth and before parsing."""

from __future__ import annotations

import json

import pytest

from tests.hostile import PII, chunked, raw_request, refused, served_fixture  # noqa: F401

MANAGER = {"pool": "vip", "name": "Ann", "email": "ann@shop.example", "capacity": 5}
# (case, method, path, JSON body as text or None, status, error)
CASES = [
    ("NUL in a customer id", "GET", "/v1/customers/a%00b", None, 400, "bad_url"),
    ("NUL in a customer's events", "GET", "/v1/customers/a%00/events", None, 400, "bad_url"),
    ("NUL in a query", "GET", "/v1/managers?pool=vip%00", None, 400, "bad_url"),
    ("NUL in a task assignee", "GET", "/v1/tasks?assignee=%00", None, 400, "bad_url"),
    ("NUL in dev mail's to", "GET", "/v1/dev/mail?to=a%00@b", None, 400, "bad_url"),
    ("NUL in before", "GET", "/v1/customers/a/events?before=1%00", None, 400, "bad_url"),
    ("NUL in a coupon code", "POST", "/v1/offers/AB%00CD/redeem", None, 400, "bad_url"),
    ("NUL in a budget name", "PUT", "/v1/offer-budgets/x%00", '{"max_live": 1}', 400, "bad_url"),
    ("NUL in a journey name", "POST", "/v1/customers/a/journeys/j%00/move", None, 400, "bad_url"),
    ("NUL in a survey page token", "GET", "/s/tok%00en", None, 400, "bad_url"),
    ("NUL in a survey answer token", "POST", "/v1/surveys/t%00", '{"score": 9}', 400, "bad_url"),
    ("NUL in an unsubscribe token", "GET", "/u/a%00.b", None, 400, "bad_url"),
    (
        "NUL in a manager's name",
        "POST",
        "/v1/managers",
        json.dumps({**MANAGER, "name": "A\u0000" + PII}),
        400,
        "bad_text",
    ),
    (
        "NUL in a manager's email",
        "POST",
        "/v1/managers",
        json.dumps({**MANAGER, "email": "a\u0000@b.c"}),
        400,
        "bad_text",
    ),
    (
        "lone surrogate in a manager's name",
        "POST",
        "/v1/managers",
        json.dumps({**MANAGER, "name": "\ud800"}),
        400,
        "bad_text",
    ),
    (
        "NUL in a move reason",
        "POST",
        "/v1/customers/a/journeys/lifecycle/move",
        json.dumps({"state": "vip", "reason": "\u0000"}),
        400,
        "bad_text",
    ),
    (
        "NUL in a redeeming customer",
        "POST",
        "/v1/offers/ABCD/redeem",
        json.dumps({"customer_id": "\u0000"}),
        400,
        "bad_text",
    ),
    ("NUL in who completed", "POST", "/v1/tasks/1/complete", '{"by": "\\u0000"}', 400, "bad_text"),
    ("NaN budget", "PUT", "/v1/offer-budgets/winback", '{"max_live": NaN}', 400, "bad_number"),
    ("Infinity", "PUT", "/v1/offer-budgets/winback", '{"max_live": Infinity}', 400, "bad_number"),
    ("1e400", "PUT", "/v1/offer-budgets/winback", '{"max_live": 1e400}', 400, "bad_number"),
    (
        "an integer of 5,000 digits",
        "PUT",
        "/v1/offer-budgets/winback",
        '{"max_live": ' + "9" * 5000 + "}",
        400,
        "bad_number",
    ),
    (
        "nesting 1,000 deep",
        "POST",
        "/v1/managers",
        '{"pool": ' + "[" * 1000 + "]" * 1000 + "}",
        400,
        "too_deep",
    ),
    (
        "max_live past PostgreSQL's integer",
        "PUT",
        "/v1/offer-budgets/winback",
        '{"max_live": 2147483648}',
        422,
        "invalid_request",
    ),
    (
        "before past PostgreSQL's bigint",
        "GET",
        "/v1/customers/a/events?before=9223372036854775808",
        None,
        422,
        "invalid_request",
    ),
    (
        "a manager id past bigint",
        "POST",
        "/v1/managers/9223372036854775808/deactivate",
        None,
        422,
        "invalid_request",
    ),
    ("a task id past bigint", "POST", "/v1/tasks/99999999999999999999/complete", None, 422, None),
    (
        "an assignee of 5,000 digits",
        "GET",
        "/v1/tasks?assignee=" + "9" * 5000,
        None,
        422,
        "invalid_request",
    ),
    (
        "a blank manager name",
        "POST",
        "/v1/managers",
        json.dumps({**MANAGER, "name": "   "}),
        422,
        "bad_manager",
    ),
    (
        "an invalid email is not echoed",
        "POST",
        "/v1/managers",
        json.dumps({**MANAGER, "email": PII}),
        422,
        "invalid_request",
    ),
    (
        "bad JSON is not echoed",
        "POST",
        "/v1/managers",
        '{"name": "' + PII + '", ',
        422,
        "invalid_request",
    ),
]


@pytest.mark.parametrize(
    ("case", "method", "path", "body", "status", "error"), CASES, ids=[c[0] for c in CASES]
)
async def test_hostile_admin_request_is_refused_and_stores_nothing(
    served, case, method, path, body, status, error
):
    before = await served.stored()
    headers = {**served.admin(), "Content-Type": "application/json"}
    async with served.http() as http:
        r = await http.request(
            method, path, content=body.encode() if body else None, headers=headers
        )
    answer = refused(r, status, error)
    assert "\x00" not in answer["message"]
    assert await served.stored() == before
    await served.healthy()


async def test_validation_errors_say_where_without_the_value(served):
    async with served.http() as http:
        r = await http.post(
            "/v1/managers",
            json={"pool": "Not A Pool " + PII, "name": "", "email": PII, "capacity": 0},
            headers=served.admin(),
        )
    answer = refused(r, 422, "invalid_request")
    for field in ("body.pool", "body.name", "body.email"):
        assert field in answer["message"], answer
    assert "(and 1 more)" in answer["message"]


async def test_admin_body_without_credentials_is_refused_unread(served):
    """200 MB promised without credentials: 401 before one byte is read."""
    answer = await raw_request(
        served.port,
        "POST /v1/managers HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        f"Content-Length: {200 * 1024 * 1024}\n",
    )
    assert answer.status == 401
    assert json.loads(answer.body)["error"] == "missing_token"
    await served.healthy()


@pytest.mark.parametrize(
    ("path", "limit"), [("/v1/managers", 64 * 1024), ("/v1/offer-budgets/x", 64 * 1024)]
)
async def test_admin_bodies_are_bounded_declared_or_streamed(served, path, limit):
    method = "PUT" if "budgets" in path else "POST"
    before = await served.stored()
    declared = await raw_request(
        served.port,
        f"{method} {path} HTTP/1.1\nHost: x\nAuthorization: Bearer {served.admin_token}\n"
        f"Content-Type: application/json\nContent-Length: {limit + 1}\n",
    )
    streamed = await raw_request(
        served.port,
        f"{method} {path} HTTP/1.1\nHost: x\nAuthorization: Bearer {served.admin_token}\n"
        "Content-Type: application/json\nTransfer-Encoding: chunked\n",
        chunked(limit + 1),
    )
    for answer in (declared, streamed):
        assert answer.status == 413
        assert json.loads(answer.body) == {
            "error": "too_large",
            "message": f"the request body is over {limit} bytes",
        }
    assert await served.stored() == before
    await served.healthy()


async def test_survey_answers_are_bounded_before_buffering(served):
    """The answer route used to buffer 300 MB before its 16 KB check."""
    token = await served.survey()
    before = await served.stored()
    for head, body in [
        (f"Content-Length: {300 * 1024 * 1024}\n", b""),
        ("Transfer-Encoding: chunked\n", chunked(16 * 1024 + 1)),
    ]:
        for kind in ("application/json", "application/x-www-form-urlencoded"):
            answer = await raw_request(
                served.port,
                f"POST /v1/surveys/{token} HTTP/1.1\nHost: x\nContent-Type: {kind}\n{head}",
                body,
            )
            assert answer.status == 413, (head, kind, answer)
            assert json.loads(answer.body)["error"] == "too_large"
    assert await served.stored() == before
    await served.healthy()


SURVEY_CASES = [
    ("NUL in a JSON comment", "json", '{"score": 9, "comment": "\\u0000"}', 400, "bad_text"),
    ("lone surrogate comment", "json", '{"score": 9, "comment": "\\udc00"}', 400, "bad_text"),
    ("NUL in a form comment", "form", "score=9&comment=a%00b", 400, "bad_text"),
    ("NaN score", "json", '{"score": NaN}', 400, "bad_number"),
    ("1e400 score", "json", '{"score": 1e400}', 400, "bad_number"),
    ("a score of 5,000 digits", "json", '{"score": ' + "9" * 5000 + "}", 400, "bad_number"),
    ("a score string of 5,000 digits", "json", json.dumps({"score": "9" * 5000}), 422, "bad_score"),
    ("a form score of 5,000 digits", "form", "score=" + "9" * 5000, 422, None),
    ("a score past integer", "json", '{"score": 2147483648}', 422, "bad_score"),
    ("nesting 1,000 deep", "json", '{"score": ' + "[" * 1000 + "]" * 1000 + "}", 400, "too_deep"),
]


@pytest.mark.parametrize(
    ("case", "kind", "body", "status", "error"), SURVEY_CASES, ids=[c[0] for c in SURVEY_CASES]
)
async def test_hostile_survey_answer_is_refused(served, case, kind, body, status, error):
    token = await served.survey()
    before = await served.stored()
    content_type = "application/json" if kind == "json" else "application/x-www-form-urlencoded"
    async with served.http() as http:
        r = await http.post(
            f"/v1/surveys/{token}", content=body.encode(), headers={"Content-Type": content_type}
        )
        if kind == "form" and status == 422:  # a form gets its page back, with the reason
            assert r.status_code == 422 and "choose a score from 0 to 10" in r.text
        else:
            refused(r, status, error)
        page = await http.get(f"/s/{token}")  # still open for a real answer
    assert page.status_code == 200 and "<form" in page.text
    assert await served.stored() == before
    await served.healthy()

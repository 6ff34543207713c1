"""A customer is read and moved under any of their ids (issue #13, Admin): after a merge,
``GET /v1/customers/{absorbed}`` answers for the customer it joined (``merged_into``,
``ids``, ``merges``), from the read model and live from the survivor's workflow; its
events list shows the id each was sent under; a move on the absorbed id moves the
survivor's run. Real HTTP, real PostgreSQL, real workflows (time-skipping server)."""

from __future__ import annotations

import uuid

from orchestration import customers
from tests import test_api
from tests.test_api import Api, _state_is, eventually

api = test_api.api  # the fixture: the API on uvicorn, a worker, PostgreSQL, Temporal


async def test_an_absorbed_id_answers_for_the_customer_it_joined(api: Api):
    tag = uuid.uuid4().hex[:8]
    anon, user = f"anon-{tag}", f"user-{tag}"
    async with api.http() as http:
        for msg, path in [
            ({"anonymousId": anon, "event": "Signed Up"}, "/v1/track"),
            ({"userId": user, "traits": {"plan": "pro"}}, "/v1/identify"),
            ({"userId": user, "event": "Signed Up"}, "/v1/track"),
            ({"userId": user, "event": "Order Completed", "properties": {"revenue": 6000}},
             "/v1/track"),
        ]:  # fmt: skip
            assert (await http.post(path, json=msg, headers=api.auth())).status_code == 200
        await eventually(lambda: _state_is(api, anon, "lifecycle", "new"))
        await eventually(lambda: _state_is(api, user, "lifecycle", "vip"))
        unmerged = (await http.get(f"/v1/customers/{anon}", headers=api.admin())).json()
        r = await http.post(
            "/v1/customers/merge",
            json={"from": anon, "into": user, "reason": "signed up after browsing"},
            headers=api.admin(),
        )
        assert r.status_code == 200 and r.json()["merged"], r.text
        merge = r.json()["merge"]
        assert merge["actor"].startswith("admin key test admin (#")

        shown = (await http.get(f"/v1/customers/{anon}", headers=api.admin())).json()
        live = await http.get(f"/v1/customers/{anon}?live=true", headers=api.admin())
        survivor = (await http.get(f"/v1/customers/{user}", headers=api.admin())).json()
        listed = (await http.get(f"/v1/customers/{anon}/events", headers=api.admin())).json()
        moved = await http.post(
            f"/v1/customers/{anon}/journeys/lifecycle/move",
            json={"state": "active", "reason": "back to active by hand"},
            headers=api.admin(),
        )

    # before the merge the anonymous profile was a customer of its own
    assert (unmerged["customer_id"], unmerged["merged_into"]) == (anon, None)
    assert unmerged["ids"] == [anon] and unmerged["merges"] == []

    assert (shown["customer_id"], shown["merged_into"]) == (user, user)
    assert shown["ids"] == [anon, user]
    assert [(m["id"], m["via"], m["reason"]) for m in shown["merges"]] == [
        (merge["id"], "admin", "signed up after browsing")
    ]
    assert shown["traits"]["plan"] == "pro" and shown["events"] == 4
    assert shown["journeys"]["lifecycle"]["state"] == "vip"  # the survivor's run
    # live: the survivor's workflow answers, not the absorbed one's
    assert live.status_code == 200, live.text
    assert live.json()["read_from"] == "workflow" and live.json()["customer_id"] == user
    assert live.json()["journeys"]["lifecycle"]["state"] == "vip"
    assert (survivor["customer_id"], survivor["merged_into"]) == (user, None)
    assert survivor["ids"] == [anon, user]
    # the same merge; its delivery may complete between the two reads, so only the
    # fields fixed when it was recorded are compared
    fixed = ("id", "absorbed", "survivor", "via", "reason", "actor", "at")
    assert [{k: m[k] for k in fixed} for m in survivor["merges"]] == [
        {k: m[k] for k in fixed} for m in shown["merges"]
    ]

    assert (listed["customer_id"], listed["merged_into"]) == (user, user)
    sent = [(e["name"], e["sent_as"]) for e in reversed(listed["events"])]
    assert sent == [("signed_up", anon), (None, None), ("signed_up", None),
                    ("order_completed", None)]  # fmt: skip

    assert moved.status_code == 200, moved.text
    assert moved.json()["state"] == "active" and moved.json()["merged_into"] == user
    assert (
        moved.json()["message"]
        == f"{anon} was merged into {user}: {user}'s run of lifecycle was moved"
    )
    run = (await customers.state(api.client, user)).runs["lifecycle"]
    assert run.state == "active"
    assert run.history[-1].cause.endswith("back to active by hand")

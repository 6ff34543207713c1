"""Poison events and oversized signals (issue #10, section 2), over real HTTP, real
PostgreSQL and real workflows on the time-skipping server: what Temporal's converter or its
2 MB limit would refuse is refused at the door, split, or kept as a dead letter; never
acknowledged and then lost, never retried forever, never blocking another customer."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError, RPCStatusCode

from cli import run as cli_run
from engine.identity import workflow_id
from engine.model import Event
from ingest import _bounds
from ingest.dispatcher import Dispatcher
from tests import test_api
from tests.test_api import Api, eventually, journey

api = test_api.api  # the fixture: the API on uvicorn, a worker, PostgreSQL, Temporal

SECRET = "s3cr3t-pii"


def nest(levels: int, leaf: Any = SECRET) -> dict[str, Any]:
    """An object ``levels`` deep: {"a": {"a": ... {"leaf": leaf}}}."""
    out: dict[str, Any] = {"leaf": leaf}
    for _ in range(levels - 1):
        out = {"a": out}
    return out


def order(cid: str, i: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": cid,
        "event": "Order Completed",
        "properties": {"revenue": 10, **extra},
        "messageId": f"{cid}-order-{i}",
    }


async def orders_are(api: Api, cid: str, n: int) -> Any:
    run = await journey(api, cid, "lifecycle")
    return run if run is not None and run.context["orders"] == n else None


def test_bounds_name_the_path_and_allow_the_limits():
    assert _bounds.check_fields("message", {"properties": nest(_bounds.MAX_DEPTH)}) is None
    deep = _bounds.check_fields("message", {"properties": nest(_bounds.MAX_DEPTH + 1)})
    assert deep is not None and deep.reason == "too_deep"
    assert deep.message == "message.properties.a.a.a.a...: nested deeper than 32 levels"
    ok = {"traits": {"tags": list(range(_bounds.MAX_LIST_ITEMS))}}
    assert _bounds.check_fields("batch[2]", ok) is None
    long = {"context": {"x": [{"tags": [SECRET] * (_bounds.MAX_LIST_ITEMS + 1)}]}}
    refused = _bounds.check_fields("batch[2]", long)
    assert refused is not None and refused.reason == "too_many_items"
    assert refused.message == "batch[2].context.x[0].tags: a list may hold at most 1000 items"
    # 100,000 levels: no recursion here, so no RecursionError
    assert _bounds.check_fields("m", {"properties": nest(100_000)}) is not None


def test_a_failing_customer_backs_off_alone():
    d = Dispatcher(None, "", None, task_queue="tq", min_backoff=1.0, max_backoff=4.0)  # type: ignore[arg-type]
    d._rest("bad", failed=True)
    assert d._resting() == ["bad"]
    delays = [d._backoff["bad"][1]]
    for _ in range(3):
        d._rest("bad", failed=True)
        delays.append(d._backoff["bad"][1])
    assert delays == [1.0, 2.0, 4.0, 4.0]
    d._rest("bad", failed=False)
    assert d._resting() == [] and "bad" not in d._backoff


async def test_deep_identify_and_track_are_refused_and_later_orders_apply(api: Api):
    cid = f"deep-{uuid.uuid4().hex[:6]}"
    async with api.http() as http:
        r = await http.post(
            "/v1/identify", json={"userId": cid, "traits": nest(220)}, headers=api.auth()
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "too_deep"
        assert r.json()["message"] == "message.traits.a.a.a.a...: nested deeper than 32 levels"
        assert SECRET not in r.text
        for i in range(5):
            assert (await http.post("/v1/track", json=order(cid, i), headers=api.auth())).is_success
        await eventually(lambda: orders_are(api, cid, 5))
        bad = order(cid, 99, detail=nest(230))
        r = await http.post("/v1/batch", json={"batch": [order(cid, 98), bad]}, headers=api.auth())
        assert r.status_code == 400 and r.json()["error"] == "too_deep"
        assert r.json()["message"].startswith("batch[1].properties.detail.a.a.a...")
        assert SECRET not in r.text
        batch = [order(cid, 5 + i) for i in range(6)]
        assert (await http.post("/v1/batch", json={"batch": batch}, headers=api.auth())).is_success
    await eventually(lambda: orders_are(api, cid, 11))
    assert await api.count("SELECT count(*) FROM events WHERE customer_id = %s", cid) == 11


async def test_stored_traits_are_capped(api: Api):
    cid = f"grow-{uuid.uuid4().hex[:6]}"
    chunk = "x" * 1000
    async with api.http() as http:
        for n in range(2):  # 2 x 28 KB of traits: under the 64 KB cap
            traits = {f"t{n}_{k}": chunk for k in range(28)}
            r = await http.post(
                "/v1/identify", json={"userId": cid, "traits": traits}, headers=api.auth()
            )
            assert r.status_code == 200, r.text
        traits = {f"t2_{k}": SECRET * 100 for k in range(28)}
        r = await http.post(
            "/v1/identify", json={"userId": cid, "traits": traits}, headers=api.auth()
        )
        assert r.status_code == 413 and r.json()["error"] == "traits_too_large"
        assert "64 KB" in r.json()["message"] and SECRET not in r.text
        many = {f"k{k}": 1 for k in range(_bounds.MAX_TRAIT_KEYS)}
        r = await http.post(
            "/v1/identify", json={"userId": cid, "traits": many}, headers=api.auth()
        )
        assert r.status_code == 413 and r.json()["error"] == "traits_too_large"
        assert (await http.post("/v1/track", json=order(cid, 0), headers=api.auth())).is_success
    await eventually(lambda: orders_are(api, cid, 1))
    async with api.db.connection() as conn:
        cur = await conn.execute("SELECT traits FROM customers WHERE customer_id = %s", (cid,))
        (stored,) = await cur.fetchone()
    assert len(stored) == 56  # the refused identifies changed nothing
    assert await api.count("SELECT count(*) FROM events WHERE customer_id = %s", cid) == 3


async def test_a_large_backlog_of_one_customer_goes_in_several_signals(api: Api):
    cid = f"big-{uuid.uuid4().hex[:6]}"
    msgs = [order(cid, i, note="y" * 30_000) for i in range(101)]
    async with api.http() as http:
        for start in range(0, 101, 15):  # ~450 KB a request, under the 500 KB limit
            r = await http.post(
                "/v1/batch", json={"batch": msgs[start : start + 15]}, headers=api.auth()
            )
            assert r.status_code == 200, r.text
    await eventually(lambda: orders_are(api, cid, 101), timeout=60)
    history = await api.client.get_workflow_handle(workflow_id(cid)).fetch_history()
    signals = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert len(signals) >= 6  # 3 MB in signals of at most 512 KB
    assert all(e.ByteSize() < 600 * 1024 for e in signals)
    assert await api.count("SELECT count(*) FROM outbox WHERE customer_id = %s", cid) == 0
    assert await api.count("SELECT count(*) FROM dead_letters") == 0


async def _poison(api: Api, cid: str, n: int, properties: dict[str, Any]) -> int:
    """An event stored by an older version, before the bounds: straight into the outbox."""
    now = datetime.now(UTC)
    async with api.db.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO events (source, message_id, type, customer_id, name, properties,"
            " event_time, received_at) VALUES (0, %s, 'track', %s, 'order_completed', %s, %s, %s)"
            " RETURNING id",
            (f"{cid}-poison-{n}", cid, Jsonb(properties), now, now),
        )
        (event_id,) = await cur.fetchone()
        await conn.execute(
            "INSERT INTO outbox (event_id, customer_id) VALUES (%s, %s)", (event_id, cid)
        )
        await conn.execute("NOTIFY journeys_outbox")
    return int(event_id)


async def test_poison_rows_become_dead_letters_and_can_be_retried_or_dropped(
    api: Api, db_url, monkeypatch, capsys
):
    from reports import build_report, render_html, render_text

    victim, other = f"psn-{uuid.uuid4().hex[:6]}", f"ok-{uuid.uuid4().hex[:6]}"
    undecodable = await _poison(api, victim, 1, {"revenue": 10, "x": nest(230)})
    unencodable = await _poison(api, victim, 2, {"revenue": 10, "x": nest(300)})
    oversized = await _poison(api, victim, 3, {"revenue": 10, "x": "z" * 600_000})
    async with api.db.connection() as conn:  # traits an older version let through
        await conn.execute(
            "INSERT INTO customers (customer_id, traits) VALUES (%s, %s)",
            (victim, Jsonb({"deep": nest(240)})),
        )
    async with api.http() as http:
        for cid in (victim, other):
            for i in range(3):
                assert (
                    await http.post("/v1/track", json=order(cid, i), headers=api.auth())
                ).is_success
        await eventually(lambda: orders_are(api, other, 3))
        await eventually(lambda: orders_are(api, victim, 3))
        listing = (await http.get("/v1/dead-letters", headers=api.admin())).json()
        assert listing["total"] == 3
        letters = {d["event_id"]: d for d in listing["dead_letters"]}
        assert set(letters) == {undecodable, unencodable, oversized}
        assert "recursion limit" in letters[undecodable]["reason"]
        assert "serialis" in letters[unencodable]["reason"]
        assert "even alone" in letters[oversized]["reason"]
        assert all(
            d["customer_id"] == victim and d["name"] == "order_completed" for d in letters.values()
        )
        assert SECRET not in str(listing)
        metrics = (await http.get("/metrics")).text
        assert (
            "journeys_dead_letters_total 3.0" in metrics
            and "journeys_dead_letters_waiting 3.0" in metrics
        )

        # the dispatcher deletes its rows once the round's signals are accepted, which may
        # be a moment after the workflow applied them
        async def outbox_empty() -> bool:
            return await api.count("SELECT count(*) FROM outbox") == 0

        await eventually(outbox_empty)
        async with api.db.connection() as conn:
            report = await build_report(conn)
        assert "dead letters: 3" in render_text(report)
        assert "Dead letters: 3" in render_html(report)
        r = await http.get("/v1/dead-letters?customer_id=a%00b", headers=api.admin())
        # refused before any route runs (api/_guard.py: a NUL anywhere in the URL)
        assert r.status_code == 400 and r.json()["error"] == "bad_url"

        # an admin repairs the event and retries it: it applies
        async with api.db.connection() as conn:
            await conn.execute(
                "UPDATE events SET properties = '{\"revenue\": 10}' WHERE id = %s", (undecodable,)
            )
        r = await http.post(
            f"/v1/dead-letters/{letters[undecodable]['id']}/retry", headers=api.admin()
        )
        assert r.status_code == 200
        await eventually(lambda: orders_are(api, victim, 4))
        # retried unrepaired, it fails again and is a dead letter again
        monkeypatch.setenv("DATABASE_URL", db_url)
        from settings import get_settings

        get_settings.cache_clear()  # the CLI reads the environment anew
        assert (
            await asyncio.to_thread(
                cli_run, ["dead-letters", "retry", str(letters[unencodable]["id"])]
            )
            == 0
        )
        await eventually(
            lambda: api.count("SELECT count(*) FROM dead_letters WHERE event_id = %s", unencodable)
        )
        r = await http.delete(f"/v1/dead-letters/{letters[oversized]['id']}", headers=api.admin())
        assert r.status_code == 200
        r = await http.delete(f"/v1/dead-letters/{letters[oversized]['id']}", headers=api.admin())
        assert r.status_code == 404 and r.json()["error"] == "unknown_dead_letter"
        assert (await http.get("/v1/dead-letters", headers=api.auth())).status_code == 403
        assert (await http.delete("/v1/dead-letters/1")).status_code == 401
    capsys.readouterr()
    assert await asyncio.to_thread(cli_run, ["dead-letters", "list"]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 dead letter(s)" in out and str(unencodable) in out
    (again,) = [line.split()[0] for line in out.splitlines() if str(unencodable) in line]
    for argv, code in (
        (["drop", again], 0),
        (["drop", again], 1),  # no such dead letter any more
        (["retry"], 1),  # neither ids nor --all
    ):
        assert await asyncio.to_thread(cli_run, ["dead-letters", *argv]) == code
    assert await api.count("SELECT count(*) FROM dead_letters") == 0
    assert await api.count("SELECT count(*) FROM events WHERE customer_id = %s", victim) == 6


def _event(n: int, **properties: Any) -> tuple[int, Event]:
    at = datetime.now(UTC)
    return n, Event(name="order_completed", id=f"event-{n}", timestamp=at, properties=properties)


async def test_a_refused_signal_is_halved_until_the_poison_is_alone(time_env, task_queue):
    d = Dispatcher(None, "", None, task_queue=task_queue)  # type: ignore[arg-type]
    items = [_event(1), _event(2), _event(3, x=nest(230)), _event(4)]
    rpc: list[float] = []
    out = await d._deliver(time_env.client, "halves", items, None, 0, rpc)
    assert out.delivered == [1, 2, 4] and list(out.dead) == [3] and not out.failed
    assert "recursion limit" in out.dead[3]
    assert len(rpc) == 2  # [1, 2] and [4]: the poison never reached Temporal
    history = await time_env.client.get_workflow_handle(workflow_id("halves")).fetch_history()
    signalled = [
        e.workflow_execution_signaled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert len(signalled) == 2


async def test_a_passing_failure_stops_the_customer_there_keeping_order(time_env, task_queue):
    # the test server refuses a 4.5 MB signal with UNKNOWN: not "for good", so retried later.
    # The budget counts JSON bytes; event 2's random text stays 4.5 MB once compressed.
    mb = 1024 * 1024
    budget = int(6.2 * mb)  # signals [1] and [2, 3]
    d = Dispatcher(None, "", None, task_queue=task_queue, signal_budget=budget)  # type: ignore[arg-type]
    items = [
        _event(1, x="z" * (mb // 2)),
        _event(2, x=secrets.token_urlsafe(int(4.5 * mb))),
        _event(3),
    ]
    out = await d._deliver(time_env.client, "stops", items, None, 0, [])
    assert out.delivered == [1] and out.failed == [2, 3] and not out.dead and out.error


def test_only_invalid_argument_is_for_good():
    from ingest.dispatcher import _for_good

    assert _for_good(RPCError("Blob data size exceeds limit.", RPCStatusCode.INVALID_ARGUMENT, b""))
    assert not _for_good(RPCError("unreachable", RPCStatusCode.UNAVAILABLE, b""))
    assert not _for_good(TimeoutError())

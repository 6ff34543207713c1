"""Exactly once, with real processes: worker processes on the real Temporal dev server,
SIGKILLed between an action's side effect and the activity's completion; two workers
assigning account managers and issuing budgeted coupons to 200 customers at once.

The outside world is stood in for by real local servers that record what they received
(SMTP relay, SMS provider, webhook endpoint)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from devstack.stack import Stack, free_port
from engine.model import Event
from orchestration import customers
from orchestration.temporal import connect
from settings import Settings
from store import managers, offers
from tests.conftest import create_database, with_db
from tests.standins import RecordingHTTPServer, RecordingSMTPServer

pytestmark = pytest.mark.timeout(300)

EFFECTS = """
journey: effects
enroll: {{on: [go]}}
start: idle
states:
  idle:
    on:
      send_email: {{do: [{{send: {{template: welcome}}}}]}}
      send_sms: {{do: [{{send: {{template: lead_care, channel: sms}}}}]}}
      send_webhook:
        do: [{{send: {{template: lead_care, channel: webhook, url: "{hook}"}}}}]
      offer: {{do: [{{offer: {{template: reactivation_offer, percent_off: 10}}}}]}}
      survey: {{do: [{{survey: {{kind: nps, template: nps_survey}}}}]}}
      task: {{do: [{{task: {{title: Call them, assignee: vip, due_in: 1d}}}}]}}
      manager: {{do: [{{assign_manager: {{pool: vip}}}}]}}
      stop: done
  done: {{final: true}}
"""

VIP = """
journey: vip_rush
enroll: {on: [promoted]}
start: vip
states:
  vip:
    enter:
      - assign_manager: {pool: vip}
      - offer: {template: reactivation_offer, percent_off: 20, budget: vip_gift}
    on: {never: done}
  done: {final: true}
"""


def rules_dir(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / f"{name}.yaml").write_text(text)
    (folder / "policy.yaml").write_text("frequency_caps: []\n")  # no time-of-day effects
    return folder


@pytest.fixture
def database(pg_server: str) -> str:
    return with_db(pg_server, create_database(pg_server, "journeys_actions"))


def make_stack(tmp_path: Path, database: str, rules: Path, env: dict[str, str]) -> Stack:
    return Stack(
        data_dir=tmp_path / "data",
        temporal_port=free_port(),
        ui_port=free_port(),
        api_port=free_port(),
        database_url=database,
        rules_dir=rules,
        log_dir=tmp_path / "logs",
        task_queue=f"actions-{tmp_path.name[-6:]}",
        extra_env={"JOURNEYS_STICKY_TIMEOUT_SECONDS": "2", **env},
    )


@pytest.fixture
def standins() -> Iterator[tuple[RecordingSMTPServer, RecordingHTTPServer]]:
    with RecordingSMTPServer() as smtp, RecordingHTTPServer() as http:
        yield smtp, http


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def sql(url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(query, args)
        return list(await cur.fetchall()) if cur.description else []


async def send(stack: Stack, customer: str, *names: str, timeout: int = 4) -> None:
    client = await connect(Settings.model_validate(stack.env()))
    await customers.send_events(
        client,
        customer,
        [Event(name=n, id=f"{customer}-{n}", timestamp=datetime.now(UTC)) for n in names],
        task_queue=stack.task_queue,
        catalog_seq=0,
        action_timeout_seconds=timeout,
    )


def wait(check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"not true within {timeout}s")


# each point: the event that runs the action, where the worker dies, how to count effects
CRASHES = [
    ("send_email", "send_done"),  # email sent and recorded; Temporal never heard
    ("send_email", "message_delivered"),  # the relay took it; the row is not 'sent' yet
    ("send_sms", "message_delivered"),
    ("send_webhook", "send_done"),
    ("offer", "offer_done"),
    ("survey", "survey_done"),
    ("task", "task_done"),
    ("manager", "assign_manager_done"),
]


def test_worker_killed_between_effect_and_completion_duplicates_nothing(
    tmp_path: Path, database: str, standins: tuple[RecordingSMTPServer, RecordingHTTPServer]
):
    smtp, http = standins
    rules = rules_dir(tmp_path, "effects", EFFECTS.format(hook=f"{http.url}/hook"))
    env = {
        **smtp.env(),
        "JOURNEYS_SMS_URL": f"{http.url}/sms",
        "JOURNEYS_WEBHOOK_SECRET": "whsec_test",
        "JOURNEYS_OUTBOUND_ALLOW": "127.0.0.1",
        "JOURNEYS_FAULT_KILL_AT": "",
    }
    stack = make_stack(tmp_path, database, rules, env)
    with stack.running():
        stack.prepare_database()
        run(_seed(database))
        for i, (event, point) in enumerate(CRASHES):
            cid = f"crash-{i}"
            run(_customer(database, cid))
            stack.extra_env["JOURNEYS_FAULT_KILL_AT"] = point
            stack.extra_env["JOURNEYS_FAULT_MARKER"] = str(tmp_path / f"marker-{i}")
            worker = stack.start_worker()
            run(send(stack, cid, "go", event))
            assert worker.wait(timeout=60) == -signal.SIGKILL, f"{point} was not reached"
            again = stack.start_worker()  # the marker exists: this one runs through
            wait(lambda cid=cid: run(_logged(database, cid)))
            again.terminate()
            again.wait(timeout=15)
    # every effect exactly once, though each worker died after making it
    per_key = Counter(m.message["X-Journeys-Idempotency-Key"] for m in smtp.mail)
    resent = [k for k, n in per_key.items() if n > 1]
    # the one crash an SMTP relay cannot absorb: it took the message, the worker died
    # before recording that. The resend is the same message, Message-ID included, so
    # receivers drop it; everything else arrived once.
    assert [k.strip().split("/")[0] for k in resent] == ["crash-1"]
    assert (
        len(
            {
                m.message["Message-ID"]
                for m in smtp.mail
                if m.message["X-Journeys-Idempotency-Key"] == resent[0]
            }
        )
        == 1
    )
    assert len(per_key) == 5  # 2 welcomes, the offer, the survey, the note to the manager
    # HTTP providers get the same Idempotency-Key again and answer without acting twice
    assert sorted(Counter(r.header("Idempotency-Key") for r in http.deliveries).values()) == [1, 1]
    sms_key = next(r.header("Idempotency-Key") for r in http.deliveries if r.path == "/sms")
    assert [r.header("Idempotency-Key") for r in http.requests].count(sms_key) == 2
    counts = run(_effect_counts(database))
    assert counts == {
        "messages": (6, 6),  # 2 welcomes, sms, webhook, offer mail, survey mail
        "offers": 1,
        "surveys": 1,
        "tasks": 2,  # 'Call them' and the manager's introduction
        "assignments": 1,
    }


async def _seed(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await managers.add(conn, pool="vip", name="Ann", email="ann@shop.test", capacity=10)


async def _customer(url: str, cid: str) -> None:
    traits = {"email": f"{cid}@x.test", "phone": "+15550100"}
    await sql(
        url,
        "INSERT INTO customers (customer_id, traits) VALUES (%s, %s)",
        cid,
        Jsonb(traits),
    )


async def _logged(url: str, cid: str) -> bool:
    rows = await sql(url, "SELECT status FROM action_log WHERE customer_id = %s", cid)
    return bool(rows) and all(r[0] == "done" for r in rows)


async def _effect_counts(url: str) -> dict[str, Any]:
    sent = await sql(
        url,
        "SELECT count(*), count(DISTINCT idempotency_key) FROM messages"
        " WHERE template <> 'manager_assigned'",
    )
    one = {
        t: (await sql(url, f"SELECT count(*) FROM {t}"))[0][0]
        for t in ("offers", "surveys", "tasks")
    }
    assigned = (await sql(url, "SELECT count(*) FROM manager_assignments"))[0][0]
    return {"messages": tuple(sent[0]), **one, "assignments": assigned}


def test_two_workers_200_customers_turn_vip_at_once(
    tmp_path: Path, database: str, standins: tuple[RecordingSMTPServer, RecordingHTTPServer]
):
    smtp, _ = standins
    stack = make_stack(tmp_path, database, rules_dir(tmp_path, "vip_rush", VIP), smtp.env())
    capacities = [30] * 7  # 210 places for 200 customers
    with stack.running():
        stack.prepare_database()
        run(_managers_and_budget(database, capacities, budget=50))
        workers = [stack.start_worker(), stack.start_worker()]
        ids = [f"vip-{i}" for i in range(200)]
        for c in ids:  # reachable: an undeliverable coupon is voided and frees its place
            run(_customer(database, c))

        async def everyone() -> None:
            await asyncio.gather(*(send(stack, c, "promoted", timeout=30) for c in ids))

        run(everyone())
        wait(lambda: run(_count(database, "action_log")) == 400, timeout=120)
        for w in workers:
            w.terminate()
            w.wait(timeout=15)
    loads = run(_loads(database))
    assert sum(loads.values()) == 200
    assert max(loads.values()) - min(loads.values()) <= 1, loads  # least-loaded, atomically
    assert max(loads.values()) <= 30
    assert run(_count(database, "offers")) == 50  # the budget, exactly
    skipped = run(
        sql(
            database,
            "SELECT count(*) FROM action_log WHERE action = 'offer' AND status = 'skipped'",
        )
    )
    assert skipped[0][0] == 150
    assert len([m for m in smtp.mail if m.rcpt_tos[0].endswith("@shop.test")]) == 200
    assert len([m for m in smtp.mail if m.rcpt_tos[0].endswith("@x.test")]) == 50  # coupons


async def _managers_and_budget(url: str, capacities: list[int], budget: int) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for i, cap in enumerate(capacities):
            await managers.add(
                conn, pool="vip", name=f"M{i}", email=f"m{i}@shop.test", capacity=cap
            )
        await offers.set_budget(conn, "vip_gift", budget)


async def _count(url: str, table: str) -> int:
    return int((await sql(url, f"SELECT count(*) FROM {table}"))[0][0])


async def _loads(url: str) -> dict[int, int]:
    rows = await sql(
        url,
        "SELECT m.id, count(a.customer_id) FROM managers m"
        " LEFT JOIN manager_assignments a ON a.manager_id = m.id GROUP BY m.id",
    )
    return {r[0]: r[1] for r in rows}

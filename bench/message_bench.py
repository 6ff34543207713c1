"""One message through the messaging policy, as a new customer's welcome goes: PostgreSQL
statements, transactions, pool checkouts and worker CPU per message; the same welcome to
customers without an email yet, which waits for it; then the step's log
(``record_transitions``: the transition and the customer's admin snapshot) likewise.

    python -m bench.message_bench [--messages 2000] [--concurrency 20]

Runs the real ``send_message`` activity (temporalio's ``ActivityEnvironment``, as the
workflow's local activity runs it, without a Temporal server) against an embedded
PostgreSQL with the schema and the shipped journeys, to an SMTP sink on 127.0.0.1. Every
customer has an email and gets the lifecycle welcome, a marketing message, so consent and
the frequency caps are read too. Statements are counted on the pool's connections (each
``execute``); BEGIN and COMMIT are the transactions, each one more round trip. A round
trip is what a message waits for PostgreSQL, and each costs the worker CPU in psycopg and
the event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection, AsyncCursor

from activities.actions import ActionActivities
from activities.journeys import JourneyActivities
from bench._common import local_activity_env, print_table, process_cpu
from engine.machine import TransitionRecord
from engine.model import ActionCommand
from engine.rule_files import load_rule_files
from orchestration._test_stack import MailSink, embedded_postgres, scratch_database
from settings import Settings
from store import customers
from store.db import pool
from workflows.io import ActionInput, CustomerSnapshot, JourneySnapshot, RecordTransitionsInput

ROOT = Path(__file__).resolve().parents[1]
NOON = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)  # a Wednesday: no quiet hours in the policy


class Counted:
    """Statements and transactions run on the counted pool's connections."""

    statements = 0
    transactions = 0


class _CountingCursor(AsyncCursor[Any]):
    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        Counted.statements += 1
        return await super().execute(*args, **kwargs)

    async def executemany(self, *args: Any, **kwargs: Any) -> Any:
        Counted.statements += 1  # one round trip (psycopg pipelines the rows)
        return await super().executemany(*args, **kwargs)


class _CountingConnection(AsyncConnection[Any]):
    def transaction(self, *args: Any, **kwargs: Any) -> Any:
        Counted.transactions += 1
        return super().transaction(*args, **kwargs)


async def _count(conn: AsyncConnection[Any]) -> None:
    conn.cursor_factory = _CountingCursor


def _welcome(customer_id: str) -> ActionInput:
    return ActionInput(
        customer_id=customer_id,
        command=ActionCommand(
            kind="send",
            args={"template": "welcome", "channel": "email"},
            journey="lifecycle",
            version=1,
            state="new",
            idempotency_key=f"welcome:{customer_id}",
            summary="send welcome",
        ),
        now=NOON,
    )


def _step_log(customer_id: str, journeys: list[str]) -> RecordTransitionsInput:
    """The welcome's step: the customer entered the lifecycle's ``new``; the snapshot shows
    every journey they are in (a customer of the shipped rules is in several)."""
    runs = [
        JourneySnapshot(
            journey=name,
            version=1,
            state="new" if name == "lifecycle" else "waiting",
            status="active",
            context={"orders": 0, "spent": 0.0} if name == "lifecycle" else {},
            since=NOON,
            enrolled_at=NOON,
            next_timer_due=NOON + timedelta(days=14),
            next_timer_label="14d",
            next_timer_target="dormant",
        )
        for name in journeys
    ]
    entered = TransitionRecord(
        journey="lifecycle",
        version=1,
        from_state=None,
        to_state="new",
        cause="enroll:signed_up",
        at=NOON,
        key=f"{customer_id}/lifecycle/1/0",
    )
    snap = CustomerSnapshot(seq=1, at=NOON, journeys=runs, tier="C", segment="new")
    return RecordTransitionsInput(customer_id=customer_id, transitions=[entered], snapshot=snap)


async def measure(messages: int, concurrency: int) -> list[tuple[str, str]]:
    rules = load_rule_files(ROOT / "rules", ROOT / "templates")
    async with contextlib.AsyncExitStack() as stack:
        server = await asyncio.to_thread(embedded_postgres, stack)
        url, _ = await scratch_database(stack, server, rules)
        sink = MailSink()
        port = await sink.start(stack)
        settings = Settings.model_validate(
            {"DATABASE_URL": url, "JOURNEYS_TEMPLATES": str(ROOT / "templates")}
        ).model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": False}
            | {"smtp_tls": False, "smtp_username": None, "smtp_password": None}
        )
        db = pool(
            url,
            min_size=concurrency,
            max_size=concurrency,
            connection_class=_CountingConnection,
            configure=_count,
        )
        await db.open()
        stack.push_async_callback(db.close)
        ids = [f"m{i}" for i in range(messages)]
        async with db.connection() as conn:
            await customers.merge_traits(
                conn, [customers.TraitsUpdate(c, {"email": f"{c}@example.com"}, None) for c in ids]
            )
        send = ActionActivities(db, settings, policy=rules.policy).send_message
        gate = asyncio.Semaphore(concurrency)

        async def one(c: str) -> None:
            async with gate:
                result = await local_activity_env().run(send, _welcome(c))
                assert result.status == "done", result

        before = Counted.statements, Counted.transactions, db.get_stats().get("requests_num", 0)
        cpu = process_cpu()
        started = time.perf_counter()
        await asyncio.gather(*(one(c) for c in ids))
        took = time.perf_counter() - started
        cpu = process_cpu() - cpu
        statements = Counted.statements - before[0]
        transactions = Counted.transactions - before[1]
        checkouts = db.get_stats().get("requests_num", 0) - before[2]
        assert sink.caught == messages, (sink.caught, messages)
        async with db.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FROM messages"
            )
            sent, rows = await cur.fetchone() or (0, 0)
            cur = await conn.execute("SELECT count(*) FROM action_log WHERE status = 'done'")
            logged = (await cur.fetchone() or (0,))[0]
        assert sent == rows == logged == messages, (sent, rows, logged)
        log_rows = await _measure_logs(db, ids, [j.journey for j in rules.journeys], concurrency)
        wait_rows = await _measure_waits(db, send, messages, concurrency)
    return [
        ("messages sent (each once, each logged)", f"{messages:,}"),
        ("messages/s", f"{messages / took:,.0f}"),
        ("PostgreSQL statements per message", f"{statements / messages:.1f}"),
        ("transactions per message (each adds BEGIN and COMMIT)", f"{transactions / messages:.1f}"),
        ("round trips per message", f"{(statements + 2 * transactions) / messages:.1f}"),
        ("pool checkouts per message", f"{checkouts / messages:.1f}"),
        (
            "CPU per message (activity, psycopg, SMTP client and the sink)",
            f"{cpu / messages * 1000:.2f} ms",
        ),
        *wait_rows,
        *log_rows,
    ]


async def _measure_waits(db: Any, send: Any, n: int, concurrency: int) -> list[tuple[str, str]]:
    """The welcome to customers without an email yet (a first order before the identify,
    as every new customer of ``bench.ingest_bench``): it waits for the address."""
    gate = asyncio.Semaphore(concurrency)

    async def one(c: str) -> None:
        async with gate:
            result = await local_activity_env().run(send, _welcome(c))
            assert (result.status, result.wake_on) == ("deferred", "contact_added"), result

    before = Counted.statements, Counted.transactions, db.get_stats().get("requests_num", 0)
    cpu = process_cpu()
    await asyncio.gather(*(one(f"w{i}") for i in range(n)))
    cpu = process_cpu() - cpu
    statements = Counted.statements - before[0]
    transactions = Counted.transactions - before[1]
    checkouts = db.get_stats().get("requests_num", 0) - before[2]
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM messages m JOIN action_log a USING (idempotency_key)"
            " WHERE m.status = 'deferred' AND m.awaits = 'email' AND a.status = 'deferred'"
        )
        waiting = (await cur.fetchone() or (0,))[0]
    assert waiting == n, (waiting, n)
    return [
        ("waiting for the email: statements per message", f"{statements / n:.1f}"),
        (
            "waiting for the email: round trips per message",
            f"{(statements + 2 * transactions) / n:.1f}",
        ),
        ("waiting for the email: pool checkouts per message", f"{checkouts / n:.1f}"),
        ("waiting for the email: CPU per message", f"{cpu / n * 1000:.2f} ms"),
    ]


async def _measure_logs(
    db: Any, ids: list[str], journeys: list[str], concurrency: int
) -> list[tuple[str, str]]:
    """The step's log for each customer, as the workflow's local activity writes it."""
    record = JourneyActivities(db).record_transitions
    logs = [_step_log(c, journeys) for c in ids]
    gate = asyncio.Semaphore(concurrency)

    async def one(log: RecordTransitionsInput) -> None:
        async with gate:
            assert await record(log) == 1

    before = Counted.statements, Counted.transactions
    cpu = process_cpu()
    await asyncio.gather(*(one(log) for log in logs))
    cpu = process_cpu() - cpu
    statements, transactions = (Counted.statements - before[0], Counted.transactions - before[1])
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM journey_transitions),"
            " (SELECT count(*) FROM customer_snapshots),"
            " (SELECT count(*) FROM customer_journeys)"
        )
        counts = await cur.fetchone()
    assert counts == (len(ids), len(ids), len(ids) * len(journeys)), counts
    n = len(ids)
    return [
        (
            f"step log: PostgreSQL statements per log ({len(journeys)} journeys)",
            f"{statements / n:.1f}",
        ),
        ("step log: round trips per log", f"{(statements + 2 * transactions) / n:.1f}"),
        ("step log: CPU per log (activity, psycopg)", f"{cpu / n * 1000:.2f} ms"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.messages, args.concurrency))
    print_table(f"One message: the welcome, {args.messages:,} customers", rows)


if __name__ == "__main__":
    main()

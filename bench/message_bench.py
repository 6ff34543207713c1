"""One message through the messaging policy, as a new customer's welcome goes: PostgreSQL
statements, transactions, pool checkouts and worker CPU per message.

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
import dataclasses
import resource
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from temporalio.testing import ActivityEnvironment

from activities.actions import ActionActivities
from bench._common import print_table
from engine.model import ActionCommand
from engine.rule_files import load_rule_files
from orchestration._test_stack import MailSink, embedded_postgres, scratch_database
from settings import Settings
from store import customers
from store.db import pool
from workflows.io import ActionInput

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
                env = ActivityEnvironment()  # as the workflow runs it: local, 10 s
                env.info = dataclasses.replace(
                    env.info,
                    is_local=True,
                    start_to_close_timeout=timedelta(seconds=10),
                    started_time=datetime.now(UTC),
                )
                result = await env.run(send, _welcome(c))
                assert result.status == "done", result

        before = Counted.statements, Counted.transactions, db.get_stats().get("requests_num", 0)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        await asyncio.gather(*(one(c) for c in ids))
        took = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
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

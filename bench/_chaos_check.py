"""The chaos run's accounting: wait until the load is applied, then count what was lost,
doubled, done twice, sent twice, dead-lettered or leaked."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from temporalio.client import Client

from bench._chaos_load import EMAIL_DOMAIN, Load
from orchestration import customers as customer_workflows

QUERY_CONCURRENCY = 16


async def _sql(url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(query, args)
        return list(await cur.fetchall())


async def workflow_orders(client: Client, ids: list[str]) -> dict[str, int | None]:
    """Each customer's ``lifecycle`` orders count from their workflow (None: no answer)."""
    gate = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def one(cid: str) -> int | None:
        async with gate:
            try:
                state = await asyncio.wait_for(customer_workflows.state(client, cid), 10)
            except Exception:  # not started yet, its worker just died, Temporal restarting
                return None
        run = state.runs.get("lifecycle")
        return int(run.context.get("orders", 0)) if run else 0

    got = await asyncio.gather(*(one(c) for c in ids))
    return dict(zip(ids, got, strict=True))


async def wait_applied(client: Client, db_url: str, load: Load, *, deadline: float) -> bool:
    """Until every customer's workflow counts all their orders, the outbox is empty and no
    welcome is in flight, or ``deadline`` (monotonic) passes; True when settled."""
    expected = {c.id: len(c.orders) for c in load.customers}
    pending = set(expected)
    while time.monotonic() < deadline:
        # PostgreSQL first: querying thousands of workflows while the outbox still drains
        # would only add workflow tasks to the load being measured
        (outbox,) = (await _sql(db_url, "SELECT count(*) FROM outbox"))[0]
        if outbox == 0:
            got = await workflow_orders(client, sorted(pending))
            pending = {c for c, n in got.items() if n is None or n < expected[c]}
        if outbox == 0 and not pending:
            (busy,) = (
                await _sql(
                    db_url,
                    "SELECT count(*) FROM messages WHERE template = 'welcome'"
                    " AND status IN ('sending', 'deferred')",
                )
            )[0]
            if busy == 0:
                return True
        await asyncio.sleep(1.0)
    return False


@dataclass
class Counts:
    """Everything the table shows, per measure."""

    sent: int = 0
    stored: int = 0
    stored_lost: list[str] = field(default_factory=list)  # messageIds not in events
    stored_doubled: int = 0
    orders_sent: int = 0
    orders_applied: int = 0
    applied_lost: dict[str, int] = field(default_factory=dict)  # customer -> orders missing
    applied_doubled: dict[str, int] = field(default_factory=dict)  # customer -> orders extra
    unanswered: list[str] = field(default_factory=list)  # workflows that did not answer
    welcome_rows: Counter[str] = field(default_factory=Counter)  # status -> rows
    welcome_not_once: dict[str, int] = field(default_factory=dict)  # customer -> rows
    actions_not_once: dict[str, int] = field(default_factory=dict)  # customer -> send actions
    emails: int = 0
    duplicate_emails: dict[str, int] = field(default_factory=dict)  # Message-ID -> copies
    duplicate_detail: list[str] = field(default_factory=list)  # customer, attempts, when
    dead_letters: int | None = None  # None: no dead_letters table in this version
    outbox_left: int = 0


async def count(client: Client, db_url: str, load: Load, mail: list[Any]) -> Counts:
    """Compare what was sent with PostgreSQL, the workflows and the mail received."""
    c = Counts(sent=len(load.messages))
    ids = [p.id for p in load.customers]
    rows = await _sql(
        db_url,
        "SELECT message_id, count(*) FROM events WHERE customer_id = ANY(%s) GROUP BY 1",
        ids,
    )
    stored = {mid: n for mid, n in rows}
    c.stored = sum(1 for mid in load.messages if mid in stored)
    c.stored_lost = sorted(mid for mid in load.messages if mid not in stored)
    c.stored_doubled = sum(n - 1 for n in stored.values() if n > 1)

    orders = await workflow_orders(client, ids)
    for p in load.customers:
        want, got = len(p.orders), orders[p.id]
        c.orders_sent += want
        if got is None:
            c.unanswered.append(p.id)
            continue
        c.orders_applied += min(got, want)
        if got < want:
            c.applied_lost[p.id] = want - got
        elif got > want:
            c.applied_doubled[p.id] = got - want

    welcomes = await _sql(
        db_url,
        "SELECT customer_id, status, reason FROM messages WHERE template = 'welcome'"
        " AND customer_id = ANY(%s)",
        ids,
    )
    c.welcome_rows = Counter(f"{st} ({why})" if why else st for _, st, why in welcomes)
    per_customer = Counter(cid for cid, _, _ in welcomes)
    c.welcome_not_once = {i: per_customer[i] for i in ids if per_customer[i] != 1}
    sends = dict(
        await _sql(
            db_url,
            "SELECT customer_id, count(*) FROM action_log WHERE action = 'send'"
            " AND customer_id = ANY(%s) GROUP BY 1",
            ids,
        )
    )
    c.actions_not_once = {i: sends.get(i, 0) for i in ids if sends.get(i, 0) != 1}

    c.emails = len(mail)
    copies = Counter(str(m.message["Message-ID"]) for m in mail)
    c.duplicate_emails = {mid: n for mid, n in copies.items() if n > 1}
    if c.duplicate_emails:
        # the messages row says whose it was and how many attempts delivered it
        for cid, mid, attempts, created in await _sql(
            db_url,
            "SELECT customer_id, provider_id, attempts, created_at FROM messages"
            " WHERE provider_id = ANY(%s) ORDER BY created_at",
            list(c.duplicate_emails),
        ):
            made = created.strftime("%H:%M:%S.%f")[:-3]
            c.duplicate_detail.append(
                f"{cid} x{c.duplicate_emails[mid]} ({attempts} attempts, row made {made})"
            )

    (table,) = (await _sql(db_url, "SELECT to_regclass('dead_letters') IS NOT NULL"))[0]
    if table:
        c.dead_letters = (await _sql(db_url, "SELECT count(*) FROM dead_letters"))[0][0]
    c.outbox_left = (await _sql(db_url, "SELECT count(*) FROM outbox"))[0][0]
    return c


_EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@" + re.escape(EMAIL_DOMAIN.encode()))
CHUNK = 8 * 1024 * 1024


def pii_hits(files: list[Path], emails: set[str]) -> dict[str, set[str]]:
    """Which of ``emails`` each file holds (files with none left out), read in chunks so
    a large Temporal database is scanned in one pass."""
    hits: dict[str, set[str]] = {}
    wanted = {e.encode() for e in emails}
    for path in files:
        found: set[str] = set()
        tail = b""
        try:
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    data = tail + chunk
                    found |= {m.decode() for m in _EMAIL.findall(data) if m in wanted}
                    tail = data[-256:]
        except OSError:
            continue
        if found:
            hits[str(path)] = found
    return hits


def evidence_files(data_dir: Path) -> list[Path]:
    """The Temporal dev server's SQLite files and every log under the run's directory."""
    files = sorted(data_dir.glob("temporal.db*"))
    files += sorted(p for p in data_dir.rglob("*") if p.is_file() and _is_log(p))
    return files


def _is_log(path: Path) -> bool:
    return path.suffix == ".log" or path.name == "log"  # "log": the embedded PostgreSQL's

"""The chaos run's table, and the evidence behind any count that is not 0."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from bench._chaos_check import Counts
from bench._chaos_faults import FaultLog
from bench._chaos_load import Load, SendStats
from orchestration.replay import ReplayFailure

EXAMPLES = 5  # customers (or ids) named under the table per count that is not 0


@dataclass
class Outcome:
    args: argparse.Namespace
    load: Load
    stats: SendStats
    faults: FaultLog
    settled: bool
    counts: Counts
    replayed: int
    replay_failures: list[ReplayFailure]
    send_seconds: float
    apply_seconds: float
    replay_seconds: float
    total_seconds: float = 0.0
    data_dir: Path | None = None
    pii: dict[str, set[str]] = field(default_factory=dict)  # file -> emails found in it
    pii_files: int = 0  # files scanned


def _n(value: int) -> str:
    return f"{value:,}"


def rows(o: Outcome) -> list[tuple[str, str]]:
    c, s, f = o.counts, o.stats, o.faults
    kills = sum(1 for d in f.done if " worker " in d)
    servers = [k for k in ("temporal", "postgres", "api") if any(f" {k} " in d for d in f.done)]
    retries = ", ".join(f"{cause} x{n}" for cause, n in s.retries.most_common()) or "none"
    welcome = ", ".join(f"{st} {n}" for st, n in sorted(c.welcome_rows.items())) or "none"
    pii_emails = set().union(*o.pii.values()) if o.pii else set()
    lost, doubled = sum(c.applied_lost.values()), sum(c.applied_doubled.values())
    twice = sum(n - 1 for n in c.duplicate_emails.values())
    dead = "n/a" if c.dead_letters is None else _n(c.dead_letters)
    took = (o.send_seconds, o.apply_seconds, o.replay_seconds, o.total_seconds)
    return [
        ("events sent (distinct; each twice, shuffled)", _n(c.sent)),
        (
            "  HTTP requests / refused (4xx) / given up",
            f"{_n(s.requests)} / {len(s.refused)} / {s.unsent}",
        ),
        ("  retried", retries),
        ("stored in PostgreSQL events", _n(c.stored)),
        ("  lost / doubled", f"{len(c.stored_lost)} / {c.stored_doubled}"),
        (
            "orders applied in workflows (lifecycle orders)",
            f"{_n(c.orders_applied)} of {_n(c.orders_sent)}",
        ),
        ("  lost / doubled / no answer", f"{lost} / {doubled} / {len(c.unanswered)}"),
        (
            "side effects not once: welcome rows / action_log",
            f"{len(c.welcome_not_once)} / {len(c.actions_not_once)}",
        ),
        ("  welcome messages by status", welcome),
        ("emails received / duplicate (same Message-ID)", f"{_n(c.emails)} / {twice}"),
        ("dead letters", dead),
        ("outbox rows left", _n(c.outbox_left)),
        ("replay failures (runs replayed)", f"{len(o.replay_failures)} ({_n(o.replayed)})"),
        (
            "PII hits: emails in Temporal's db or logs",
            f"{len(pii_emails)} (in {len(o.pii)} of {o.pii_files} files)",
        ),
        ("faults: worker kills / restarted", f"{kills} / {', '.join(servers) or 'none'}"),
        ("  exits on their own / failed restarts", f"{len(f.self_exits)} / {len(f.errors)}"),
        ("settled within the deadline", "yes" if o.settled else f"NO ({o.args.deadline:.0f} s)"),
        (
            "time: load / until applied / replay / total",
            " / ".join(f"{t:.0f}" for t in took) + " s",
        ),
    ]


def evidence(o: Outcome) -> list[str]:
    """One line per count that is not 0, naming a few of the customers or ids behind it."""
    c, lines = o.counts, []

    def some(items: list[str]) -> str:
        more = [f"(+{len(items) - EXAMPLES} more)"] if len(items) > EXAMPLES else []
        return "".join(f"\n    {x}" for x in [*items[:EXAMPLES], *more])

    def pairs(d: dict[str, int]) -> list[str]:
        return [f"{k}: {v}" for k, v in d.items()]

    checks: list[tuple[str, list[str]]] = [
        ("refused", o.stats.refused),
        ("not stored", c.stored_lost),
        ("orders lost (customer: missing)", pairs(c.applied_lost)),
        ("orders doubled (customer: extra)", pairs(c.applied_doubled)),
        ("workflow did not answer", c.unanswered),
        ("welcome rows not 1 (customer: rows)", pairs(c.welcome_not_once)),
        ("send actions not 1 (customer: rows)", pairs(c.actions_not_once)),
        ("emails twice (customer, copies, attempts, UTC)", c.duplicate_detail),
        ("replay failed", [f"{f.workflow_id}: {f.reason}" for f in o.replay_failures]),
        ("PII found (file: emails)", [f"{k}: {len(v)}" for k, v in o.pii.items()]),
        ("exited on their own", o.faults.self_exits),
        ("failed restarts", o.faults.errors),
    ]
    for label, items in checks:
        if items:
            lines.append(f"{label}:{some(items)}")
    return lines


def print_report(o: Outcome) -> None:
    a = o.args
    print(
        f"\ncustomers={a.customers} events={a.events} kills={a.kills} workers={a.workers} "
        f"seed={a.seed} seconds={a.seconds:.0f} batch={a.batch}"
    )
    table = rows(o)
    width = max(len(name) for name, _ in table)
    for name, value in table:
        print(f"{name:<{width}}  {value}")
    notes = evidence(o)
    if notes:
        print("\nbehind the counts:")
        for line in notes:
            print(f"  {line}")
    print("\nfaults:")
    for line in o.faults.done:
        print(f"  {line}")
    print(f"\nlogs and data: {o.data_dir}")

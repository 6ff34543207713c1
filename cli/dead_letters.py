"""``journeys dead-letters list|retry|drop``: events whose delivery failed for good."""

from __future__ import annotations

import argparse
from typing import Any

from .commands import Command, UserError, with_database


def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = sub.add_parser("list", help="list dead letters, newest first, with their reason")
    ls.add_argument("--customer", metavar="ID", help="only this customer's")
    ls.add_argument("--limit", type=int, default=100, metavar="N", help="at most N (100)")
    retry = sub.add_parser("retry", help="put dead letters back into the outbox")
    retry.add_argument("ids", type=int, nargs="*", metavar="ID", help="dead letter ids")
    retry.add_argument("--all", action="store_true", help="every dead letter")
    drop = sub.add_parser("drop", help="forget dead letters (their events stay in the history)")
    drop.add_argument("ids", type=int, nargs="+", metavar="ID", help="dead letter ids")


def _table(found: list[Any]) -> None:
    print(f"{'id':>6}  {'event':>8}  {'dead at':<16}  {'customer':<20}  {'name':<20}  reason")
    for d in found:
        print(
            f"{d.id:>6}  {d.event_id:>8}  {d.dead_at:%Y-%m-%d %H:%M}  {d.customer_id[:20]:<20}"
            f"  {(d.name or '')[:20]:<20}  {d.reason}"
        )


def _report(done: list[int], asked: list[int], verb: str) -> None:
    print(f"{verb} {len(done)} dead letter(s){': ' if done else ''}{', '.join(map(str, done))}")
    missing = sorted(set(asked) - set(done))
    if missing:
        raise UserError(f"no dead letter {', '.join(map(str, missing))}")


async def _run(url: str, args: argparse.Namespace) -> None:
    import psycopg

    from store import dead_letters
    from store.db import migrate

    await migrate(url)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        if args.action == "list":
            found = await dead_letters.listing(conn, customer_id=args.customer, limit=args.limit)
            total = await dead_letters.count(conn)
            if not found:
                print("no dead letters")
                return
            _table(found)
            print(f"{len(found)} of {total} dead letter(s)")
        elif args.action == "retry":
            if bool(args.ids) == bool(args.all):
                raise UserError("give the ids of the dead letters to retry, or --all")
            done = await dead_letters.retry(conn, None if args.all else args.ids)
            _report(done, args.ids, "put back into the outbox")
        else:
            _report(await dead_letters.drop(conn, args.ids), args.ids, "dropped")


def dead_letters_command(args: argparse.Namespace) -> int:
    if getattr(args, "limit", 1) < 1:
        raise UserError("--limit takes a number, 1 or more")
    return with_database(_run, args)


DEAD_LETTERS: dict[str, Command] = {
    "dead-letters": (
        "events whose delivery failed for good: list, retry, drop",
        _args,
        dead_letters_command,
    ),
}

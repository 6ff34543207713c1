"""``journeys customers merge|ids|merges``: one person, one customer (docs/merging.md).

``merge A B --reason TEXT`` absorbs A into B (as ``alias`` merges ``previousId`` into
``userId``); ``ids A`` prints A's customer, every id it has and the merges that made it;
``merges`` prints the audit log. The same as ``POST /v1/customers/merge`` and ``GET
/v1/merges``."""

from __future__ import annotations

import argparse
import getpass
import os
from datetime import UTC
from typing import Any

from .commands import Command, UserError, with_database


def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    merge = sub.add_parser(
        "merge",
        help="merge customer A into customer B: A is absorbed, B's workflow takes over A's "
        "journeys",
    )
    merge.add_argument("absorbed", metavar="A", help="an id of the customer to absorb")
    merge.add_argument("survivor", metavar="B", help="an id of the customer that takes A over")
    merge.add_argument("--reason", required=True, help="why: kept in the audit log")
    ids = sub.add_parser("ids", help="a customer's id now, every id it has, and its merges")
    ids.add_argument("customer", metavar="A", help="any id of the customer")
    log = sub.add_parser("merges", help="the audit log of merges, newest first")
    log.add_argument("--customer", metavar="ID", help="only the merges that made this customer")
    log.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (20)")


def _who() -> str:
    """The actor of a merge from the CLI: ``cli <user>``."""
    try:
        user = os.environ.get("USER") or getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment or the password file
        user = "unknown"
    return f"cli {user}"


def _log(found: list[Any]) -> None:
    """Merges as lines: which, when, via what, who, what became what, why, delivered (or
    refused: a write key's merge of two known people that was not made)."""
    for m in found:
        if m.refused:
            told = f"REFUSED, not merged: {m.refused}"
        elif m.delivered_at:
            told = "delivered"
        else:
            told = f"waiting for delivery ({m.attempts} attempt(s)" + (
                f": {m.last_error})" if m.last_error else ")"
            )
        print(
            f"  #{m.id}  {m.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC  via {m.via}  by {m.actor}:"
            f" {m.absorbed} into {m.survivor}, {m.reason or '(no reason given)'}; {told}"
        )


async def _run(url: str, args: argparse.Namespace) -> None:
    import psycopg

    from orchestration import merging
    from store import identity
    from store.db import migrate

    await migrate(url)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        if args.action == "merge":
            done = await merging.merge_by_hand(
                conn, args.absorbed, args.survivor, reason=args.reason, actor=_who()
            )
            print(done.sentence())
            if done.merge is not None:
                print(f"{done.customer_id}'s ids: {', '.join(done.ids)}")
        elif args.action == "ids":
            asked = args.customer
            if not await identity.known(conn, [asked]):
                raise UserError(f"no customer {merging.shown(asked)}: Journeys never saw this id")
            root = await identity.canonical(conn, asked)
            joined = f" ({asked} was merged into it)" if root != asked else ""
            print(f"customer {root}{joined}")
            print(f"ids: {', '.join(await identity.ids_of(conn, root))}")
            found = await identity.merges_of(conn, root)
            print("merges, newest first:" if found else "merges: none")
            _log(found)
        else:
            if args.customer is None:
                found = await identity.recent_merges(conn, args.limit)
            else:
                root = await identity.canonical(conn, args.customer)
                found = await identity.merges_of(conn, root, args.limit)
            if not found:
                print("no merges" + (f" of customer {args.customer}" if args.customer else ""))
                return
            print("merges, newest first:")
            _log(found)


def customers_command(args: argparse.Namespace) -> int:
    if getattr(args, "limit", 1) < 1:
        raise UserError("--limit takes a number, 1 or more")
    if args.action == "merge":
        from orchestration.merging import check

        check(args.absorbed, args.survivor, args.reason)  # before connecting
    return with_database(_run, args)


CUSTOMERS: dict[str, Command] = {
    "customers": (
        "one person, one customer: merge two customers, list a customer's ids and merges",
        _args,
        customers_command,
    ),
}

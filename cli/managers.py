"""``journeys managers add|list|deactivate``: account manager pools in PostgreSQL."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from .commands import Command, UserError, with_database


def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="add a manager to a pool (or bring a deactivated one back)")
    add.add_argument("--pool", required=True, help="pool name, e.g. vip")
    add.add_argument("--name", required=True)
    add.add_argument("--email", required=True)
    add.add_argument("--capacity", type=int, required=True, help="most customers at once")
    ls = sub.add_parser("list", help="list managers with their load and capacity")
    ls.add_argument("--pool", help="only this pool")
    off = sub.add_parser("deactivate", help="deactivate a manager and reassign their customers")
    off.add_argument("id", type=int, help="manager id (see 'journeys managers list')")


def _table(found: list[Any]) -> None:
    print(f"{'id':>4}  {'pool':<10} {'load':>9}  {'active':<6}  name <email>")
    for m in found:
        load = f"{m.load}/{m.capacity}"
        print(
            f"{m.id:>4}  {m.pool:<10} {load:>9}  {'yes' if m.active else 'no':<6}  "
            f"{m.name} <{m.email}>"
        )


async def _run(url: str, args: argparse.Namespace) -> None:
    import psycopg

    from store import managers, waitlist
    from store.db import migrate

    await migrate(url)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        try:
            if args.action == "add":
                m = await managers.add(
                    conn,
                    pool=args.pool,
                    name=args.name,
                    email=args.email,
                    capacity=args.capacity,
                )
                print(f"added manager {m.id}: {m.name} <{m.email}> to pool {m.pool}")
                assigned = await waitlist.assign_waiting(conn, m.pool, now=datetime.now(UTC))
                if assigned:
                    print(
                        f"assigned {len(assigned)} customer(s) waiting in pool {m.pool}'s "
                        "queue; the worker sends their managers' notes"
                    )
                    for a in assigned:
                        print(f"  {a.waiting.customer_id} -> {a.manager.name} (id {a.manager.id})")
            elif args.action == "list":
                found = await managers.list_managers(conn, args.pool)
                if not found:
                    where = f" in pool '{args.pool}'" if args.pool else ""
                    print(f"no managers{where}; add one with 'journeys managers add'")
                else:
                    _table(found)
            else:
                before = await managers.get(conn, args.id)
                moves = await managers.deactivate(conn, args.id)
                name = f"{before.name} <{before.email}>" if before else str(args.id)
                print(f"deactivated manager {args.id} ({name}); {len(moves)} customer(s)")
                for customer, new in moves:
                    to = f"{new.name} (id {new.id})" if new else "nobody: the pool is full"
                    print(f"  {customer} -> {to}")
        except managers.ManagerError as exc:
            raise UserError(str(exc)) from None


def manage(args: argparse.Namespace) -> int:
    return with_database(_run, args)


MANAGERS: dict[str, Command] = {
    "managers": (
        "manage account manager pools: add, list, deactivate",
        _args,
        manage,
    ),
}

"""Commands that talk to a running system: send, show, move, upgrade, keys."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from engine import JourneyValidationError

from .commands import Command, UserError, _known, _load, _rules_args

if TYPE_CHECKING:
    from orchestration.upgrade import Upgraded

# --- against a running system -------------------------------------------------------------


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _pairs(items: list[str], flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"{flag} takes key=value, got '{item}'")
        out[key] = _value(value)
    return out


def _send_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("customer", help="customer id (Segment userId)")
    p.add_argument("event", help="event name, e.g. 'Order Completed'")
    p.add_argument(
        "--prop",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='event property; VALUE is JSON if it parses (120, true, "x"), else text',
    )
    p.add_argument(
        "--trait",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="customer trait to record with the event (contact details are dropped)",
    )
    p.add_argument("--id", help="event id (default: a new UUID); resending an id is a no-op")


def send(args: argparse.Namespace) -> int:
    from engine.identity import redact_properties, redact_traits
    from engine.model import Event
    from workflows.io import CustomerPatch

    props = _pairs(args.prop, "--prop")
    traits = _pairs(args.trait, "--trait")
    event = Event(
        name=args.event,
        id=args.id or str(uuid.uuid4()),
        timestamp=datetime.now(UTC),
        properties=redact_properties(args.event, props),
    )

    async def go() -> None:
        from orchestration import customers

        settings, client, seq = await _connect()
        patch = CustomerPatch(traits=redact_traits(traits)) if traits else None
        await customers.send_events(
            client,
            args.customer,
            [event],
            task_queue=settings.task_queue,
            catalog_seq=seq,
            customer=patch,
        )

    asyncio.run(go())
    print(f"sent {event.name} ({event.id}) to customer {args.customer}")
    return 0


def _show_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("customer", help="customer id")
    p.add_argument("--json", action="store_true", help="print the full state as JSON")


def show(args: argparse.Namespace) -> int:
    from engine.ui_summary import markdown

    async def go() -> Any:
        from temporalio.service import RPCError

        from orchestration import customers

        _, client, _ = await _connect(need_db=False)
        try:
            return await customers.state(client, await _canonical(args.customer))
        except RPCError as exc:
            if "not found" in str(exc).lower():
                raise UserError(
                    f"no customer '{args.customer}': nothing was sent for them yet"
                ) from None
            raise

    state = asyncio.run(go())
    if args.json:
        print(state.model_dump_json(indent=2))
    else:
        print(markdown(state).replace("**", "").replace("`", ""))
    return 0


def _move_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("customer")
    p.add_argument("journey")
    p.add_argument("state")
    p.add_argument("--reason", required=True, help="why; recorded in the journey's history")


def move_customer(args: argparse.Namespace) -> int:
    async def go() -> Any:
        from temporalio.client import WorkflowUpdateFailedError

        from orchestration import customers

        _, client, _ = await _connect(need_db=False)
        try:
            return await customers.move(
                client, await _canonical(args.customer), args.journey, args.state, args.reason
            )
        except WorkflowUpdateFailedError as exc:
            raise UserError(str(exc.cause or exc)) from None

    result = asyncio.run(go())
    print(f"customer {args.customer} is now in {result.journey}:{result.state} (v{result.version})")
    return 0


def _upgrade_args(p: argparse.ArgumentParser) -> None:
    _rules_args(p)
    p.add_argument("journey", help="journey whose in-flight customers move to its newest version")


def upgrade(args: argparse.Namespace) -> int:
    catalog = _load(args)
    _known(catalog, args.journey)

    async def go() -> Upgraded:
        import psycopg

        from orchestration.upgrade import upgrade_journey

        settings, client, _ = await _connect()
        async with await psycopg.AsyncConnection.connect(
            settings.require_database_url(), autocommit=True
        ) as conn:
            try:
                return await upgrade_journey(conn, client, catalog.journeys(), args.journey)
            except JourneyValidationError as exc:
                print(str(exc), file=sys.stderr)
                raise UserError("fix migrate: and run again; nobody was moved") from None

    done = asyncio.run(go())
    print(
        f"{args.journey}: customers move to v{done.version} at their next step "
        f"(catalog {done.seq}); {done.notified} in-flight customer(s) notified"
    )
    return 0


def _keys_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="create a write key or an admin token; printed once")
    create.add_argument("--kind", choices=("write", "admin"), default="write")
    create.add_argument("--name", required=True, help="what it is for, e.g. 'web shop'")
    sub.add_parser("list", help="list keys (never the secrets)")
    revoke = sub.add_parser("revoke", help="revoke a key by id; it stops working within 5 s")
    revoke.add_argument("id", type=int)


def manage_keys(args: argparse.Namespace) -> int:
    import psycopg

    from ingest import keys
    from settings import get_settings
    from store.db import migrate

    url = get_settings().require_database_url()

    async def go() -> int:
        await migrate(url)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            if args.action == "create":
                info, secret = await keys.create(conn, args.kind, args.name)
                print(
                    f"created {info.kind} key {info.id} ({info.name}):\n{secret}\n"
                    "store it now: it is not shown again"
                )
            elif args.action == "list":
                print(f"{'id':>4}  {'kind':<6} {'prefix':<8} {'created':<20} {'status':<8} name")
                for k in await keys.listing(conn):
                    status = "revoked" if k.revoked_at else "active"
                    print(
                        f"{k.id:>4}  {k.kind:<6} {k.prefix:<8} "
                        f"{k.created_at:%Y-%m-%d %H:%M:%S} {status:<8} {k.name}"
                    )
            elif not await keys.revoke(conn, args.id):
                raise UserError(f"no active key with id {args.id} (see 'journeys keys list')")
            else:
                print(f"revoked key {args.id}")
        return 0

    try:
        return asyncio.run(go())
    except psycopg.OperationalError as exc:
        raise UserError(f"cannot reach PostgreSQL ({str(exc).strip()})") from None


async def _canonical(customer_id: str) -> str:
    """The customer's id now: an id merged into another customer (docs/identity.md) is
    the survivor's, whose workflow holds their journeys. Said on stderr; without a database
    configured, the id as given."""
    import psycopg

    from settings import get_settings
    from store import identity

    url = get_settings().database_url
    if not url:
        return customer_id
    try:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            now = await identity.canonical(conn, customer_id)
    except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
        return customer_id
    if now != customer_id:
        print(f"{customer_id} was merged into {now}: their journeys are {now}'s", file=sys.stderr)
    return now


async def _connect(*, need_db: bool = True) -> tuple[Any, Any, int]:
    from orchestration.temporal import connect
    from settings import check_settings, get_settings

    settings = get_settings()
    check_settings(settings)  # the same refusal as the worker and the API
    try:
        client = await connect(settings)
    except Exception as exc:
        raise UserError(
            f"cannot reach Temporal at {settings.temporal_address} ({exc}); is "
            "'make run' running? (or set TEMPORAL_ADDRESS)"
        ) from None
    seq = 0
    if need_db:
        url = settings.require_database_url()
        import psycopg

        from store import catalog as store

        try:
            async with await psycopg.AsyncConnection.connect(url) as conn:
                seq, _, _ = await store.head(conn)
        except psycopg.OperationalError as exc:
            raise UserError(f"cannot reach PostgreSQL ({str(exc).strip()})") from None
        except psycopg.errors.UndefinedTable:
            raise UserError(
                "the database has no Journeys schema yet: start the worker "
                "('make run' or 'python worker.py') once to create it"
            ) from None
    return settings, client, seq


LIVE: dict[str, Command] = {
    "send": ("send an event to a customer of the running system", _send_args, send),
    "show": ("print a customer's journeys from the running system", _show_args, show),
    "move": (
        "move a customer to a state (admin override, reason recorded)",
        _move_args,
        move_customer,
    ),
    "upgrade": (
        "move in-flight customers of a journey to its newest version",
        _upgrade_args,
        upgrade,
    ),
    "keys": ("manage write keys and admin tokens: create, list, revoke", _keys_args, manage_keys),
}

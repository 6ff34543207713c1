"""The commands behind ``journeys``; each is a configure(parser) and a run(args)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import Catalog, JourneyValidationError, load_rules
from engine.graph import mermaid
from engine.simulate import SimulationInputError, parse_messages, parse_time, simulate


class UserError(Exception):
    """A mistake of the caller; the message says how to fix it."""


def _rules_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rules",
        type=Path,
        default=Path("rules"),
        metavar="DIR",
        help="directory of journey YAML files (default: rules/)",
    )
    p.add_argument(
        "--templates",
        type=Path,
        default=Path("templates"),
        metavar="DIR",
        help="directory of message templates (default: templates/)",
    )


def _load(args: argparse.Namespace, paths: list[Path] | None = None) -> Catalog:
    try:
        return Catalog.of(load_rules(args.rules, args.templates, paths=paths))
    except JourneyValidationError as exc:
        print(str(exc), file=sys.stderr)
        n = len(exc.problems)
        raise UserError(f"{n} problem{'s' if n != 1 else ''} found") from None


# --- offline ------------------------------------------------------------------------------


def _validate_args(p: argparse.ArgumentParser) -> None:
    _rules_args(p)
    p.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="journey files to check (default: every journey in --rules)",
    )


def validate(args: argparse.Namespace) -> int:
    for path in args.paths:
        if not path.is_file():
            raise UserError(f"{path}: no such file")
    catalog = _load(args, args.paths or None)
    names = ", ".join(j.journey for j in catalog.journeys())
    print(f"ok: {len(catalog.latest)} journey(s) valid: {names}")
    return 0


def _graph_args(p: argparse.ArgumentParser) -> None:
    _rules_args(p)
    p.add_argument("journey", help="journey id, e.g. lifecycle")


def _known(catalog: Catalog, journey: str) -> None:
    if journey not in catalog.latest:
        raise UserError(f"no journey '{journey}'; journeys: {', '.join(sorted(catalog.latest))}")


def graph(args: argparse.Namespace) -> int:
    catalog = _load(args)
    _known(catalog, args.journey)
    sys.stdout.write(mermaid(catalog.current(args.journey)))
    return 0


def _simulate_args(p: argparse.ArgumentParser) -> None:
    _rules_args(p)
    p.add_argument(
        "--events",
        type=Path,
        required=True,
        metavar="FILE.jsonl",
        help="Segment track/identify messages, one JSON object per line",
    )
    p.add_argument(
        "--until",
        metavar="TIMESTAMP",
        help="run timers up to this ISO-8601 time (default: the last event's time)",
    )
    p.add_argument("--format", choices=("json", "table"), default="json")


def run_simulation(args: argparse.Namespace) -> int:
    catalog = _load(args)
    try:
        with args.events.open(encoding="utf-8") as f:
            messages = parse_messages(f, str(args.events))
        until = parse_time(args.until, "--until") if args.until else None
    except OSError as exc:
        raise UserError(f"cannot read {args.events}: {exc.strerror}") from None
    except SimulationInputError as exc:
        raise UserError(str(exc)) from None
    results = simulate(catalog, messages, until=until)
    if args.format == "json":
        for r in results:
            print(json.dumps(r.as_json(), sort_keys=True, default=str))
        return 0
    rows = [("customer", "journey", "state", "version", "context", "actions")]
    for r in results:
        for name, run in sorted(r.state.runs.items()):
            acts = ", ".join(a.kind for a in r.actions if a.journey == name)
            status = run.state + ("" if run.status == "active" else f" ({run.status})")
            rows.append(
                (
                    r.customer_id,
                    name,
                    status,
                    str(run.version),
                    json.dumps(run.context, sort_keys=True),
                    acts,
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


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
    from engine.identity import redact_traits
    from engine.model import Event
    from workflows.io import CustomerPatch

    props = _pairs(args.prop, "--prop")
    traits = _pairs(args.trait, "--trait")
    event = Event(
        name=args.event,
        id=args.id or str(uuid.uuid4()),
        timestamp=datetime.now(UTC),
        properties=props,
    )

    async def go() -> None:
        from runtime import customers

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
    from engine.details import markdown

    async def go() -> Any:
        from temporalio.service import RPCError

        from runtime import customers

        _, client, _ = await _connect(need_db=False)
        try:
            return await customers.state(client, args.customer)
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

        from runtime import customers

        _, client, _ = await _connect(need_db=False)
        try:
            return await customers.move(
                client, args.customer, args.journey, args.state, args.reason
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

    async def go() -> tuple[int, int, int]:
        import psycopg

        from store import catalog as store
        from workflows.io import SIGNAL_CATALOG, CatalogChanged

        settings, client, _ = await _connect()
        assert settings.database_url
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, autocommit=True
        ) as conn:
            await store.publish(conn, catalog.journeys(), reason=f"upgrade {args.journey}")
            try:
                seq, version = await store.raise_floor(conn, args.journey)
            except JourneyValidationError as exc:
                print(str(exc), file=sys.stderr)
                raise UserError("fix migrate: and run again; nobody was moved") from None
        older = ", ".join(f"'{args.journey}@{v}'" for v in range(1, version))
        if not older:
            return seq, version, 0
        query = (
            f"WorkflowType = 'CustomerWorkflow' AND ExecutionStatus = 'Running' AND "
            f"JourneyVersions IN ({older})"
        )
        count = 0
        async for wf in client.list_workflows(query):
            await client.get_workflow_handle(wf.id).signal(SIGNAL_CATALOG, CatalogChanged(seq=seq))
            count += 1
        return seq, version, count

    seq, version, count = asyncio.run(go())
    print(
        f"{args.journey}: customers move to v{version} at their next step "
        f"(catalog {seq}); {count} in-flight customer(s) notified"
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

    settings = get_settings()
    if not settings.database_url:
        raise UserError(
            "DATABASE_URL is not set and no stack is running ('make run' writes .data/stack.env)"
        )
    url = settings.database_url

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


async def _connect(*, need_db: bool = True) -> tuple[Any, Any, int]:
    from runtime.temporal import connect
    from settings import get_settings

    settings = get_settings()
    try:
        client = await connect(settings)
    except Exception as exc:
        raise UserError(
            f"cannot reach Temporal at {settings.temporal_address} ({exc}); is "
            "'make run' running? (or set TEMPORAL_ADDRESS)"
        ) from None
    seq = 0
    if need_db:
        if not settings.database_url:
            raise UserError(
                "DATABASE_URL is not set and no stack is running ('make run' "
                "writes .data/stack.env)"
            )
        import psycopg

        from store import catalog as store

        try:
            async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
                seq, _, _ = await store.head(conn)
        except psycopg.OperationalError as exc:
            raise UserError(f"cannot reach PostgreSQL ({str(exc).strip()})") from None
        except psycopg.errors.UndefinedTable:
            raise UserError(
                "the database has no Journeys schema yet: start the worker "
                "('make run' or 'python worker.py') once to create it"
            ) from None
    return settings, client, seq


Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
COMMANDS: dict[str, Command] = {
    "validate": ("check journey files; exit 1 with every problem found", _validate_args, validate),
    "graph": ("print a journey as a Mermaid state diagram", _graph_args, graph),
    "simulate": (
        "run journeys offline over an event file, in event time",
        _simulate_args,
        run_simulation,
    ),
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

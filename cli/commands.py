"""The commands behind ``journeys`` that work offline on rules/, and what all commands share.

Each command is a configure(parser) and a run(args); ``cli.live`` has the others."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from engine import Catalog, JourneyValidationError, load_rules
from engine.errors import InputError
from engine.graph import mermaid
from engine.identity_rules import load_identity_rules
from engine.policy import load_policy
from engine.segments import load_segments
from engine.simulate import simulate
from ingest.event_file import SimulationInputError, parse_messages, parse_time


class UserError(InputError):
    """A mistake of the caller; the message says how to fix it."""


def with_database(
    run: Callable[[str, argparse.Namespace], Coroutine[Any, Any, None]], args: argparse.Namespace
) -> int:
    """Run ``run(database_url, args)``; a missing or unreachable PostgreSQL is a sentence."""
    import asyncio

    import psycopg

    from settings import get_settings

    url = get_settings().require_database_url()
    try:
        asyncio.run(run(url, args))
    except psycopg.OperationalError as exc:
        raise UserError(f"cannot reach PostgreSQL ({str(exc).strip()})") from None
    return 0


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
    """The journeys (and, when checking all of rules/, the messaging policy and the
    segment definitions), with every problem reported at once."""
    problems = []
    catalog = None
    try:
        catalog = Catalog.of(load_rules(args.rules, args.templates, paths=paths))
    except JourneyValidationError as exc:
        problems += exc.problems
    if paths is None:
        for load_other in (load_policy, load_segments, load_identity_rules):
            try:
                load_other(args.rules)
            except JourneyValidationError as exc:
                problems += exc.problems
    if catalog is not None:  # calendar timers find time zones as the worker's catalog does
        with contextlib.suppress(JourneyValidationError):  # reported above, if checked
            catalog = catalog.model_copy(update=load_policy(args.rules).time_zones())
    if problems or catalog is None:
        print(str(JourneyValidationError(problems)), file=sys.stderr)
        n = len(problems)
        raise UserError(f"{n} problem{'s' if n != 1 else ''} found")
    return catalog


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
        help="Segment messages as the API takes them (track, identify, page, screen, group, "
        "alias, or a batch), one JSON object per line",
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


Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
OFFLINE: dict[str, Command] = {
    "validate": ("check journey files; exit 1 with every problem found", _validate_args, validate),
    "graph": ("print a journey as a Mermaid state diagram", _graph_args, graph),
    "simulate": (
        "run journeys offline over an event file, in event time",
        _simulate_args,
        run_simulation,
    ),
}

"""``journeys schema [journey|policy|segments|test] [--output FILE]``: the JSON Schema of a rule
file, generated from the models (``engine.schema``). The committed copies under
``rules/schema/`` are what editors read through each file's ``# yaml-language-server:``
line; regenerate them with ``--output`` when the language changes."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.schema import SCHEMAS, dumps

from .commands import Command


def _schema_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "file", nargs="?", choices=list(SCHEMAS), default="journey", help="which rule file"
    )
    p.add_argument("--output", type=Path, metavar="FILE", help="write it there (default: stdout)")


def schema(args: argparse.Namespace) -> int:
    """Print (or write) the JSON Schema of ``args.file``."""
    text = dumps(SCHEMAS[args.file]())
    if args.output is None:
        print(text, end="")
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
    return 0


SCHEMA: dict[str, Command] = {
    "schema": (
        "print the JSON Schema of a journey (or policy, segments, test) file, for editors",
        _schema_args,
        schema,
    ),
}

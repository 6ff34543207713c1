"""``journeys``: validate, graph and simulate journeys offline; send events to, inspect,
move, merge, upgrade and replay customers of a running system.

Exit codes: 0 success, 1 a user error (bad journey file, bad input, unknown customer),
2 bad usage (argparse). User errors print one sentence that says what to fix."""

from __future__ import annotations

import argparse
import os
import sys

import channels  # noqa: F401  registers the channels rules are validated against
from engine.errors import InputError, RefusedError, RulesError
from settings import ConfigurationError

from .commands import OFFLINE
from .customers import CUSTOMERS
from .dead_letters import DEAD_LETTERS
from .demo import DEMO
from .dispatch import DISPATCH
from .journey_tests import JOURNEY_TESTS
from .live import LIVE
from .managers import MANAGERS
from .render import RENDER
from .replay import REPLAY
from .report import REPORT
from .schema import SCHEMA
from .segments import SEGMENTS

COMMANDS = {
    **OFFLINE,
    **LIVE,
    **MANAGERS,
    **CUSTOMERS,
    **RENDER,
    **SEGMENTS,
    **REPORT,
    **REPLAY,
    **DEAD_LETTERS,
    **DISPATCH,
    **JOURNEY_TESTS,
    **SCHEMA,
    **DEMO,
}

__all__ = ["main", "run"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="journeys", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, configure, _) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        configure(sp)
    return p


def run(argv: list[str] | None = None) -> int:
    """Run one command and return its exit code (for tests and embedding)."""
    args = parser().parse_args(argv)
    try:
        return int(COMMANDS[args.command][2](args) or 0)
    # the roots of engine.errors (UserError is an InputError) and of settings.errors
    except (InputError, RefusedError, RulesError, ConfigurationError) as exc:
        print(f"journeys {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def main() -> int:
    """The ``journeys`` entry point. It leaves with ``os._exit``: the Temporal client's
    native threads can abort a normal interpreter shutdown ("PyGILState_Release ...
    finalizing") after the work is done, which would turn a success into a crash."""
    code = run()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

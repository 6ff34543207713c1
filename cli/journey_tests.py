"""``journeys test``: run the journey tests of ``rules/tests/`` on the pure interpreter, or
with ``--temporal`` on the real workflow and activities (``orchestration.temporal_tests``).

One line per test (``ok`` or ``FAIL``), each failure at its ``file:line:col`` with what
was expected and what was found, then a summary. Exit 0 when every test passed, 1 when one
failed or a test file has problems (all of them printed, as ``journeys validate`` does)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

from engine import JourneyValidationError
from engine.catalog import Catalog
from engine.journey_tests import Outcome, run_file
from engine.rule_files import RuleFiles, load_rule_files
from engine.test_files import JourneyTestFile, load_test_file

from .commands import Command, UserError, _load, _rules_args


def _test_args(p: argparse.ArgumentParser) -> None:
    _rules_args(p)
    p.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="test files or folders (default: RULES/tests/)",
    )
    p.add_argument(
        "--temporal",
        action="store_true",
        help="run them on the real workflow and activities, on the Temporal time-skipping "
        "server with a scratch PostgreSQL database (DATABASE_URL's server, else an embedded "
        "one): slower, and checks what the pure run cannot (docs/journeys.md)",
    )


def _files(args: argparse.Namespace) -> list[Path]:
    found: list[Path] = []
    for path in args.paths or [args.rules / "tests"]:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        elif path.is_file():
            found.append(path)
        else:
            raise UserError(f"{path}: no such file or folder")
    if not found:
        raise UserError("no test files found; add rules/tests/NAME.yaml (docs/journeys.md)")
    return found


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _rules(args: argparse.Namespace) -> RuleFiles:
    """Everything in --rules, for the worker --temporal runs: every problem at once."""
    try:
        return load_rule_files(args.rules, args.templates)
    except JourneyValidationError as exc:
        print(str(exc), file=sys.stderr)
        n = len(exc.problems)
        raise UserError(f"{n} problem{'s' * (n != 1)} found") from None


def run_tests(args: argparse.Namespace) -> int:
    rules = _rules(args) if args.temporal else None
    catalog = Catalog.of(rules.journeys) if rules else _load(args)
    files: list[JourneyTestFile] = []
    problems = []
    for path in _files(args):
        try:
            files.append(load_test_file(path, _display(path), catalog))
        except JourneyValidationError as exc:
            problems += exc.problems
    if problems:
        print(str(JourneyValidationError(problems)), file=sys.stderr)
        n = len(problems)
        raise UserError(f"{n} problem{'s' * (n != 1)} in test files")
    started = time.perf_counter()
    results: list[Outcome] = []
    if rules is None:
        for test_file in files:
            for result in run_file(test_file, catalog):
                _show(result, results)
    else:
        asyncio.run(_temporal(files, rules, args.templates, lambda r: _show(r, results)))
    took = time.perf_counter() - started
    failed = sum(not r.ok for r in results)
    rate = len(results) / took if took > 0 else float("inf")
    print(
        f"{len(results) - failed} passed, {failed} failed, {len(results)} tests in "
        f"{len(files)} file{'s' * (len(files) != 1)}, {took * 1000:.1f} ms ({rate:.0f} tests/s)"
    )
    return 1 if failed else 0


def _show(result: Outcome, results: list[Outcome]) -> None:
    results.append(result)
    mark = "ok  " if result.ok else "FAIL"
    print(f"{mark} {result.file}:{result.line} {result.name}", flush=True)
    for failure in result.failures:
        print(f"     {failure}")


async def _temporal(
    files: list[JourneyTestFile],
    rules: RuleFiles,
    templates: Path,
    show: Callable[[Outcome], None],
) -> None:
    import logging

    import psycopg

    from orchestration.temporal_tests import TemporalTests
    from settings import get_settings

    # the SDK logs each failing activity and workflow problem with its traceback; here they
    # are the tests' failures, printed at the test's line
    logging.getLogger("temporalio").setLevel(logging.CRITICAL)

    settings = get_settings().model_copy(update={"templates_dir": templates})
    try:
        async with TemporalTests(rules, settings) as tests:
            print(f"temporal: {tests.where.server}; PostgreSQL: {tests.where.database}")
            for test_file in files:
                async for result in tests.run_file(test_file):
                    show(result)
    except psycopg.OperationalError as exc:
        raise UserError(f"cannot reach PostgreSQL ({str(exc).strip()})") from None
    except psycopg.errors.InsufficientPrivilege:
        raise UserError(
            "DATABASE_URL's user may not create databases (a scratch database is made "
            "for the run); grant it CREATEDB, or unset DATABASE_URL to use an embedded one"
        ) from None


JOURNEY_TESTS: dict[str, Command] = {
    "test": (
        "run the journey tests in rules/tests/ on the pure interpreter (--temporal: on the "
        "real workflow)",
        _test_args,
        run_tests,
    ),
}

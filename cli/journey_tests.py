"""``journeys test``: run the journey tests of ``rules/tests/`` on the pure interpreter.

One line per test (``ok`` or ``FAIL``), each failure at its ``file:line:col`` with what
was expected and what was found, then a summary. Exit 0 when every test passed, 1 when one
failed or a test file has problems (all of them printed, as ``journeys validate`` does)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from engine import JourneyValidationError
from engine.journey_tests import Outcome, run_file
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


def run_tests(args: argparse.Namespace) -> int:
    catalog = _load(args)
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
    for test_file in files:
        for result in run_file(test_file, catalog):
            results.append(result)
            mark = "ok  " if result.ok else "FAIL"
            print(f"{mark} {result.file}:{result.line} {result.name}")
            for failure in result.failures:
                print(f"     {failure}")
    took = time.perf_counter() - started
    failed = sum(not r.ok for r in results)
    rate = len(results) / took if took > 0 else float("inf")
    print(
        f"{len(results) - failed} passed, {failed} failed, {len(results)} tests in "
        f"{len(files)} file{'s' * (len(files) != 1)}, {took * 1000:.1f} ms ({rate:.0f} tests/s)"
    )
    return 1 if failed else 0


JOURNEY_TESTS: dict[str, Command] = {
    "test": (
        "run the journey tests in rules/tests/ on the pure interpreter",
        _test_args,
        run_tests,
    ),
}

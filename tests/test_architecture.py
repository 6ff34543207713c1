"""The shape of the house (docs/architecture.md): every package is under the layer contract
that `lint-imports` checks in `make test`, and no module grows past 400 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib

import pytest

from tests.helpers import ROOT

MAX_LINES = 400


def _contract() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["tool"]["importlinter"]


def _packages() -> set[str]:
    return {
        p.parent.name
        for p in ROOT.glob("*/__init__.py")
        if not p.parent.name.startswith(".") and p.parent.name not in {"tests", "bench"}
    }


def test_every_package_is_under_the_layer_contract() -> None:
    contract = _contract()
    roots = set(contract["root_packages"])
    layers = {
        name.strip()
        for c in contract["contracts"]
        if c["type"] == "layers"
        for line in c["layers"]
        for name in line.split("|")
    }
    missing = _packages() - roots
    assert not missing, f"add {sorted(missing)} to root_packages in pyproject.toml"
    unlayered = roots - layers
    assert not unlayered, f"give {sorted(unlayered)} a layer in pyproject.toml"


def test_no_module_is_over_400_lines() -> None:
    too_long = {
        str(p.relative_to(ROOT)): n
        for p in ROOT.rglob("*.py")
        if p.relative_to(ROOT).parts[0] not in {".venv", ".tools", ".data"}
        and (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not too_long, f"split by concern, under {MAX_LINES} lines: {too_long}"


def test_nothing_imports_the_worker() -> None:
    """worker.py is an entry point at the root, outside the import contract: nothing
    stands on it (what it shares with devstack lives in store, engine and orchestration)."""
    importers = []
    for package in sorted(_packages()):
        for p in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module or ""]
                else:
                    continue
                if any(n == "worker" or n.startswith("worker.") for n in names):
                    importers.append(f"{p.relative_to(ROOT)}:{node.lineno}")
    assert not importers, f"move what these need out of worker.py: {importers}"


@pytest.mark.parametrize("package", ["api", "cli", "devstack", "ingest", "worker"])
def test_each_entry_point_registers_the_channels_it_loads_rules_with(package: str) -> None:
    """The engine knows channels only as registered data: a process that starts from any
    of these packages (a bench importing devstack, a server importing api) can load rules."""
    probe = (
        f"import {package}\n"
        "from engine.rule_files import load_rule_files\n"
        "print(len(load_rule_files('rules', 'templates').journeys))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip()) > 0

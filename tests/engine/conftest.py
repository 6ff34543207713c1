"""Fixtures shared by the pure-engine tests."""

from __future__ import annotations

import pytest

from engine.catalog import Catalog
from engine.loader import load_rules
from tests.engine.support import ROOT


@pytest.fixture
def shipped(monkeypatch: pytest.MonkeyPatch) -> Catalog:
    """The journeys shipped in rules/ (checked against templates/), as a catalog."""
    monkeypatch.chdir(ROOT)
    return Catalog.of(load_rules("rules", "templates"))


@pytest.fixture(autouse=True)
def _no_shared_catalogs() -> None:
    """``engine.catalog.shared`` keeps one catalog per content for the whole process; an
    engine test starts without the ones that workflow tests run before it left there."""
    from engine import catalog

    catalog._SHARED.clear()

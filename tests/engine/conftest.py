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

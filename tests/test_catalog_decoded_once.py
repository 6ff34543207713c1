"""A catalog decoded from JSON again (every new customer's start carries it) is the
process's one shared instance, and only when its content key says it is the same."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import channels  # noqa: F401  registers the channels the rules use
from engine.catalog import Catalog
from engine.loader import load_rules
from tests.helpers import ROOT


def _catalog(digest: str) -> Catalog:
    journeys = load_rules(ROOT / "rules", ROOT / "templates")
    made = Catalog.of(journeys, seq=7)
    versions = {k: j.model_copy(update={"digest": digest}) for k, j in made.versions.items()}
    return made.model_copy(update={"versions": versions})


def test_the_same_content_decodes_to_the_shared_instance() -> None:
    raw = _catalog("d1").model_dump_json()
    first, again = Catalog.model_validate_json(raw), Catalog.model_validate_json(raw)
    assert first is again
    assert first == _catalog("d1")
    other = Catalog.model_validate_json(_catalog("d2").model_dump_json())
    assert other is not first and all(j.digest == "d2" for j in other.versions.values())


def test_without_digests_nothing_is_shared_and_bad_shapes_still_fail_validation() -> None:
    raw = _catalog("").model_dump_json()
    assert Catalog.model_validate_json(raw) is not Catalog.model_validate_json(raw)
    with pytest.raises(ValidationError):
        Catalog.model_validate_json('{"seq": 1, "latest": {"a": [1]}, "versions": {}}')

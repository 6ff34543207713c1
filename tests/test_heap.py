"""The worker's and the API's garbage-collector settings (``orchestration.heap``)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from orchestration.heap import settle_heap
from settings import Settings


class _Node:
    me: object


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_startup_heap_is_frozen_and_young_collections_wait_longer(restored_gc):
    older = gc.get_threshold()[1:]
    settle_heap(Settings().gc_young_threshold)
    assert gc.get_threshold() == (50_000, *older)
    # what the imports made (tens of thousands of objects) is never scanned again
    assert gc.get_freeze_count() > 10_000
    # a cycle made afterwards (a cached workflow evicted) is still collected
    node = _Node()
    node.me = node
    gone = weakref.ref(node)
    del node
    gc.collect()
    assert gone() is None


def test_zero_keeps_pythons_defaults_and_freezes_nothing(restored_gc, monkeypatch):
    monkeypatch.setenv("JOURNEYS_GC_YOUNG_THRESHOLD", "0")
    before = gc.get_threshold()
    settle_heap(Settings().gc_young_threshold)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    monkeypatch.setenv("JOURNEYS_GC_YOUNG_THRESHOLD", "-1")
    with pytest.raises(ValueError, match="JOURNEYS_GC_YOUNG_THRESHOLD"):
        Settings()

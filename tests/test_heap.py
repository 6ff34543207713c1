"""The worker's and the API's garbage-collector settings (``orchestration.heap``)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref
from collections.abc import Iterator

import pytest

from orchestration.heap import FullCollections, report_full_collections, settle_heap
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


def test_full_collections_are_counted_and_young_ones_are_not():
    pauses = FullCollections().install()
    try:
        gc.collect(0)
        gc.collect(1)
        assert pauses.take() == (0, 0.0, 0.0)
        gc.collect()
        gc.collect()
        count, total, longest = pauses.take()
        assert count == 2 and total >= longest > 0
        assert pauses.take() == (0, 0.0, 0.0)  # taken: counted from zero again
    finally:
        pauses.remove()
    assert pauses not in gc.callbacks


async def test_the_worker_warns_of_long_pauses_only(caplog):
    caplog.set_level(logging.WARNING, logger="journeys.heap")
    for over, warned in ((0.0, True), (60.0, False)):
        caplog.clear()
        stop = asyncio.Event()
        task = asyncio.create_task(report_full_collections(stop, every=0.01, over=over))
        deadline = time.monotonic() + 10
        while not (hooks := [cb for cb in gc.callbacks if isinstance(cb, FullCollections)]):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        gc.collect()
        # the reporter took the count (a round after the collection), warning or not
        while hooks[0]._count:
            assert time.monotonic() < deadline, "the reporter never took the count"
            await asyncio.sleep(0.01)
        assert ("paused this process" in caplog.text) is warned
        if warned:
            assert "JOURNEYS_MAX_CACHED_WORKFLOWS" in caplog.text
        stop.set()
        await task
        assert not any(isinstance(cb, FullCollections) for cb in gc.callbacks)

"""Where a customer's workflow gets its catalog: from the start, or from PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from engine import Catalog
from workflows._records import STORE_RETRY
from workflows.io import LoadCatalogInput


async def obtain(given: Catalog | None, versions: list[str], asked: int) -> Catalog:
    """The catalog at seq ``asked`` or later with ``versions`` (``name@version``): the one
    ``given`` with the start if it will do (it is in the start event, so replay finds it
    there), else loaded by the ``load_catalog`` local activity (its marker holds it)."""
    if given is not None and given.seq >= asked and set(versions) <= set(given.versions):
        return given
    loaded: Catalog = await workflow.execute_local_activity(
        "load_catalog",
        LoadCatalogInput(versions=versions, min_seq=asked),
        result_type=Catalog,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=STORE_RETRY,
        summary="load journey definitions",
    )
    return loaded

"""Activities the workflow needs for itself: its journey definitions and the transition log."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio import activity

from engine import Catalog
from engine.policy import Policy
from store import catalog as catalog_store
from store import read_model
from workflows.io import LoadCatalogInput, RecordTransitionsInput


class JourneyActivities:
    def __init__(self, pool: AsyncConnectionPool[Any], *, policy: Policy | None = None) -> None:
        self.pool = pool
        # calendar timers find the customer's time zone as the messaging policy does
        self._zones = (policy or Policy()).time_zones()
        self._loader = catalog_store.Loader()

    @activity.defn(name="load_catalog")
    async def load_catalog(self, data: LoadCatalogInput) -> Catalog:
        """The current catalog plus the older versions the customer's runs are on. Versions
        never change once published, so the result is safe to record in history, and the
        parsed definitions are cached; the current head is re-read every second."""
        async with self.pool.connection() as conn:
            return await self._loader.load(
                conn, versions=data.versions, min_seq=data.min_seq, zones=self._zones
            )

    @activity.defn(name="record_transitions")
    async def record_transitions(self, data: RecordTransitionsInput) -> int:
        """Append state changes to ``journey_transitions`` once (keyed), for reports, and
        store the customer's snapshot for admin reads (an older one never overwrites a
        newer one): one statement, one transaction (``store.read_model.record``)."""
        async with self.pool.connection() as conn:
            await read_model.record(conn, data.customer_id, data.model_dump_json())
        return len(data.transitions)

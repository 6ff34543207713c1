"""Activities the workflow needs for itself: its journey definitions and the transition log."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio import activity

from engine import Catalog
from store import catalog as catalog_store
from workflows.io import LoadCatalogInput, RecordTransitionsInput


class JourneyActivities:
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self.pool = pool

    @activity.defn(name="load_catalog")
    async def load_catalog(self, data: LoadCatalogInput) -> Catalog:
        """The current catalog plus the older versions the customer's runs are on. Versions
        never change once published, so the result is safe to record in history."""
        async with self.pool.connection() as conn:
            return await catalog_store.load(conn, extra=data.versions)

    @activity.defn(name="record_transitions")
    async def record_transitions(self, data: RecordTransitionsInput) -> int:
        """Append state changes to ``journey_transitions`` once (keyed), for reports."""
        if not data.transitions:
            return 0
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO journey_transitions (key, customer_id, journey, version,"
                " from_state, to_state, cause, at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (key) DO NOTHING",
                [
                    (
                        t.key,
                        data.customer_id,
                        t.journey,
                        t.version,
                        t.from_state,
                        t.to_state,
                        t.cause,
                        t.at,
                    )
                    for t in data.transitions
                ],
            )
        return len(data.transitions)

"""Activities the workflow needs for itself: its journey definitions and the transition log."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio import activity

from engine import Catalog
from engine.policy import Policy
from store import catalog as catalog_store
from store import read_model, transitions
from workflows.io import CustomerSnapshot, LoadCatalogInput, RecordTransitionsInput


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
        newer one: see ``store.read_model``)."""
        async with self.pool.connection() as conn:
            await transitions.append(
                conn,
                [
                    transitions.Transition(
                        key=t.key,
                        customer_id=data.customer_id,
                        journey=t.journey,
                        version=t.version,
                        from_state=t.from_state,
                        to_state=t.to_state,
                        cause=t.cause,
                        at=t.at,
                    )
                    for t in data.transitions
                ],
            )
            if data.snapshot is not None:
                await read_model.write(conn, data.customer_id, _stored(data.snapshot))
        return len(data.transitions)


def _stored(snap: CustomerSnapshot) -> read_model.Snapshot:
    return read_model.Snapshot(
        seq=snap.seq,
        at=snap.at,
        tier=snap.tier,
        segment=snap.segment,
        problems=[p.model_dump(mode="json") for p in snap.problems],
        journeys=[read_model.JourneyRow(**j.model_dump(exclude=_ELSEWHERE)) for j in snap.journeys],
    )


# the arm and the conversion are read from their own tables (store.experiments), where
# their activities write them; the read model has no columns for them
_ELSEWHERE = {"experiment", "arm", "converted_at"}

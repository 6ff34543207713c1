"""Upgrading a journey: its customers in flight move to its newest version.

Three steps, each safe to run again: publish the journeys (a changed journey gets its next
version), raise the journey's floor to that version (refused, with the YAML location, when
an older version has a state the new one neither has nor maps under ``migrate:``), and tell
every running customer workflow on an older version that the catalog changed. A workflow
moves at its next step (``engine.machine.upgrade``); one that missed the notice moves with
its next events signal, which carries the catalog's seq.
``journeys upgrade`` is this function and a line of output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from temporalio.client import Client

from engine import Journey
from store import catalog as catalog_store
from workflows.io import SIGNAL_CATALOG, CatalogChanged


@dataclass(frozen=True)
class Upgraded:
    """What an upgrade did: the catalog ``seq`` customers move to, the journey's newest
    ``version``, and how many customers in flight were ``notified``."""

    seq: int
    version: int
    notified: int


async def upgrade_journey(
    conn: AsyncConnection[Any], client: Client, journeys: list[Journey], journey: str
) -> Upgraded:
    """Publish ``journeys`` and move the customers of ``journey`` to its newest version.
    Raises ``engine.JourneyValidationError`` (nobody moved) when the newest version does
    not map a state of an older one, or ``journey`` is not published."""
    await catalog_store.publish(conn, journeys, reason=f"upgrade {journey}")
    seq, version = await catalog_store.raise_floor(conn, journey)
    notified = await notify_older(client, journey, version, seq)
    return Upgraded(seq=seq, version=version, notified=notified)


async def notify_older(client: Client, journey: str, version: int, seq: int) -> int:
    """Signal catalog ``seq`` to every running customer workflow on a version of ``journey``
    below ``version`` (found by the ``JourneyVersions`` search attribute); how many."""
    older = ", ".join(f"'{journey}@{v}'" for v in range(1, version))
    if not older:
        return 0
    query = (
        "WorkflowType = 'CustomerWorkflow' AND ExecutionStatus = 'Running' AND "
        f"JourneyVersions IN ({older})"
    )
    count = 0
    async for wf in client.list_workflows(query):
        await client.get_workflow_handle(wf.id).signal(SIGNAL_CATALOG, CatalogChanged(seq=seq))
        count += 1
    return count

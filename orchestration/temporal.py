"""Connecting to Temporal, with the project's data converter (pydantic JSON, encrypted by
``orchestration.codec``) and retries while it is down."""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client, TLSConfig
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from settings import Settings

from .codec import data_converter

log = logging.getLogger(__name__)


async def connect(settings: Settings) -> Client:
    """One connection attempt; raises when Temporal is unreachable."""
    tls: TLSConfig | bool = settings.temporal_tls
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings.payload_keys),
        tls=tls,
        api_key=settings.temporal_api_key,
    )


async def connect_with_retry(settings: Settings, *, max_wait: float | None = None) -> Client:
    """Connect, retrying with backoff (1 s doubling to 30 s) while Temporal is not up.
    ``max_wait`` bounds the total wait (None: forever, as a worker should)."""
    delay, waited = 1.0, 0.0
    while True:
        try:
            return await connect(settings)
        except (RuntimeError, RPCError, OSError) as exc:
            if max_wait is not None and waited >= max_wait:
                raise
            log.warning(
                "Temporal at %s is not reachable (%s); retrying in %.0fs",
                settings.temporal_address,
                exc,
                delay,
            )
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 30.0)


SEARCH_ATTRIBUTES = {
    "CustomerId": "KEYWORD",
    "Journeys": "KEYWORD_LIST",
    "JourneyVersions": "KEYWORD_LIST",
}


async def register_search_attributes(client: Client, namespace: str) -> list[str]:
    """Create the custom search attributes the admin views rely on; return those added.
    On Temporal Cloud, create them in the namespace settings instead (same names/types)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import (
        AddSearchAttributesRequest,
        ListSearchAttributesRequest,
    )

    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        have = set(existing.custom_attributes)
    except RPCError as exc:  # the time-skipping test server can add but not list
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        have = set()
    missing = {
        name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind}")
        for name, kind in SEARCH_ATTRIBUTES.items()
        if name not in have
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)


PASSTHROUGH = (
    "engine",
    "workflows",
    "pydantic",
    "pydantic_core",
    "cel",
    "annotated_types",
    # calendar timers' holidays: pure computation, loading a country's module on first use
    "holidays",
    "dateutil",
)


def sandbox_restrictions() -> SandboxRestrictions:
    """The workflow sandbox's rules, with the pure engine, the workflow package and their
    libraries passed through: loaded once per worker instead of once per customer, which
    cut worker CPU per event by a fifth and memory per cached customer by a fifth (``make
    bench``). It is safe because their mutable module state is of two kinds, neither of
    which can make two replays differ: caches of values that never change once made, keyed
    by their content (``engine.expr``'s compiled programs, ``engine.catalog.shared``), so a
    workflow gets the same answer whoever filled them; and registries filled at import,
    before any worker starts (``engine.actions.ACTIONS``, ``engine.channel_kinds``), which
    workflow code only reads through definitions already validated outside the sandbox.
    The sandbox still guards what workflow code may call, and the replay tests guard
    determinism."""
    return SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)


def sandbox_runner() -> SandboxedWorkflowRunner:
    """The workflow sandbox as the worker configures it (``sandbox_restrictions``)."""
    return SandboxedWorkflowRunner(restrictions=sandbox_restrictions())

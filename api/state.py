"""What the API process holds between requests (``AppState``: the pool, the Temporal
client, the key cache, metrics, ...) and how a request reaches it (``app_state``).

The app's lifespan builds one ``AppState`` and stores it on ``app.state.journeys``; routes
take it through the aliases of ``api.deps``, never by importing the app."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from fastapi import Request
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from engine import Catalog
from engine.identity_rules import IdentityRules, load_identity_rules
from ingest.accept import Interest
from ingest.dispatcher import Delivery, Dispatcher
from ingest.keys import KeyCache
from orchestration.codec import EncryptionCodec
from orchestration.customers import CustomerIds
from orchestration.temporal import connect
from settings import Settings
from store import catalog, outbox
from store.db import pool as make_pool

from .metrics import Metrics


@dataclass
class RateLimiter:
    """A token bucket per key: ``rate`` requests a second, bursts of twice that."""

    rate: float
    buckets: dict[int, tuple[float, float]] = field(default_factory=dict)

    def allow(self, key: int) -> bool:
        """Whether ``key`` may make one more request now (and count it)."""
        now = time.monotonic()
        tokens, last = self.buckets.get(key, (self.rate * 2, now))
        tokens = min(self.rate * 2, tokens + (now - last) * self.rate)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return False
        self.buckets[key] = (tokens - 1, now)
        return True


class AppState:
    """One per app, built in its lifespan."""

    def __init__(self, settings: Settings, *, temporal: Client | None = None) -> None:
        self.settings = settings
        self.pool: AsyncConnectionPool[Any] = make_pool(
            settings.require_database_url(), max_size=10
        )
        self.keys = KeyCache()
        self.ids = CustomerIds(settings.id_secret)
        self.metrics = Metrics()
        self.limiter = RateLimiter(settings.rate_limit)
        self.interest = Interest(set(), everything=True)
        # rules/identity.yaml, read once: a bad file stops the API at start, at file:line
        self.identity_rules: IdentityRules = load_identity_rules(settings.rules_dir)
        self.dispatcher: Dispatcher | None = None  # when this process delivers events
        self.codec: EncryptionCodec | None = None  # built on the first codec call
        self._interest_seq = -1
        self._interest_at = 0.0
        self._outbox = (0, 0.0)
        self._client = temporal
        self._client_lock = asyncio.Lock()

    async def client(self) -> Client:
        """The Temporal client, connected on first use (the API starts without Temporal)."""
        async with self._client_lock:
            if self._client is None:
                self._client = await connect(self.settings)
            return self._client

    async def refresh(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Keys and journey interest, at most every few seconds."""
        await self.keys.refresh(conn)
        if time.monotonic() - self._interest_at < 5.0:
            return
        self._interest_at = time.monotonic()
        seq = (await catalog.head(conn)).seq
        if seq == self._interest_seq:
            return
        versions = await catalog.every_version(conn)
        if not versions:  # nothing published yet: keep everything, deliver later
            self.interest = Interest(set(), everything=True)
        else:
            found = Catalog(versions={f"{j.journey}@{j.version}": j for j in versions})
            names, everything = found.interest()
            self.interest = Interest(names, everything)
        self._interest_seq = seq

    async def outbox_depth(self, conn: psycopg.AsyncConnection[Any]) -> int:
        """Events waiting for delivery, counted at most once a second."""
        depth, at = self._outbox
        if time.monotonic() - at > 1.0:
            depth = await outbox.depth(conn)
            self._outbox = (depth, time.monotonic())
            self.metrics.outbox.set(depth)
        return depth

    def delivered(self, result: Delivery, seconds: float) -> None:
        """Count what the dispatcher delivered (its ``on_delivered`` callback)."""
        self.metrics.delivered.inc(result.events)
        self.metrics.delivery_failures.inc(result.failed)
        self.metrics.dead_letters.inc(result.dead)


def app_state(request: Request) -> AppState:
    """The state of the app serving ``request``."""
    state: AppState = request.app.state.journeys
    return state

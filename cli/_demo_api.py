"""The HTTP side of ``journeys demo``: everything it sends goes through the running API,
as a shop's backend would (Segment batches with the write key, admin calls with the admin
token, survey answers as a customer's browser posts them)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx

from ingest.segment import MAX_BATCH_BYTES

from .commands import UserError

BATCH_MESSAGES = 500  # messages per /v1/batch request
# below the API's 500 KB per request, with room for the JSON around the messages
BATCH_BYTES = MAX_BATCH_BYTES * 8 // 10
RETRIES = 8  # answers that say "retry" (429, 503) before the demo gives up


def batches(messages: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """``messages`` in order, cut into requests the API accepts."""
    batch: list[dict[str, Any]] = []
    size = 0
    for m in messages:
        n = len(json.dumps(m, separators=(",", ":")).encode()) + 1
        if batch and (len(batch) >= BATCH_MESSAGES or size + n > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(m)
        size += n
    if batch:
        yield batch


class DemoApi:
    """One connection to the API at ``url``."""

    def __init__(self, url: str, *, write_key: str, admin_token: str) -> None:
        self.url = url.rstrip("/")
        self._write = write_key
        self._admin = {"Authorization": f"Bearer {admin_token}"}
        self._http = httpx.AsyncClient(base_url=self.url, timeout=60)

    async def __aenter__(self) -> DemoApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for _ in range(RETRIES):
            try:
                r = await self._http.request(method, path, **kwargs)
            except httpx.TransportError:
                raise UserError(
                    f"no Journeys API at {self.url}: start the stack with 'make run' "
                    "(or pass --api URL)"
                ) from None
            if r.status_code not in (429, 503):
                return r
            # the API asks to retry (rate limit, backlog, store restarting): as an SDK does
            await asyncio.sleep(min(float(r.headers.get("Retry-After", "1")), 10.0))
        raise UserError(f"{method} {path}: the API kept asking to retry ({r.status_code})")

    @staticmethod
    def _refusal(r: httpx.Response, what: str) -> UserError:
        try:
            body = r.json()
            sentence = body.get("message") or body.get("detail", {}).get("message") or r.text
        except (ValueError, AttributeError):
            sentence = r.text[:200]
        if r.status_code == 401:
            return UserError(
                f"{what}: the API refused the key ({sentence}); pass the keys 'make run' "
                "printed with --write-key / --admin-token"
            )
        return UserError(f"{what}: HTTP {r.status_code}: {sentence}")

    async def check(self) -> None:
        """The API answers (a clear sentence when it is not running)."""
        r = await self._call("GET", "/healthz")
        if r.status_code != 200:
            raise self._refusal(r, "the API is not healthy")

    async def journeys(self) -> dict[str, Any]:
        """``GET /v1/journeys``: the published journeys, their versions and sources."""
        r = await self._call("GET", "/v1/journeys", headers=self._admin)
        if r.status_code != 200:
            raise self._refusal(r, "reading the published journeys")
        found: dict[str, Any] = r.json()["journeys"]
        return found

    async def managers(self, pool: str) -> list[dict[str, Any]]:
        r = await self._call("GET", "/v1/managers", params={"pool": pool}, headers=self._admin)
        if r.status_code != 200:
            raise self._refusal(r, "listing managers")
        found: list[dict[str, Any]] = r.json()["managers"]
        return found

    async def add_manager(self, pool: str, name: str, email: str, capacity: int) -> None:
        body = {"pool": pool, "name": name, "email": email, "capacity": capacity}
        r = await self._call("POST", "/v1/managers", json=body, headers=self._admin)
        if r.status_code != 201:
            raise self._refusal(r, "adding a manager")

    async def send(self, batch: list[dict[str, Any]]) -> None:
        """One ``/v1/batch`` request (the write key as the Basic user, as SDKs send it)."""
        r = await self._call("POST", "/v1/batch", json={"batch": batch}, auth=(self._write, ""))
        if r.status_code != 200:
            raise self._refusal(r, "sending events")

    async def move(self, customer: str, journey: str, state: str, reason: str) -> bool:
        """The admin override; False when the customer is not where a move can take them."""
        r = await self._call(
            "POST",
            f"/v1/customers/{customer}/journeys/{journey}/move",
            json={"state": state, "reason": reason},
            headers=self._admin,
        )
        if r.status_code in (400, 404):
            return False
        if r.status_code != 200:
            raise self._refusal(r, f"moving {customer}")
        return True

    async def answer(self, token: str, score: int) -> bool:
        """Answer a survey as its link's page does; False when it cannot be answered any
        more (answered, expired)."""
        r = await self._call("POST", f"/v1/surveys/{token}", json={"score": score})
        if r.status_code in (409, 410):
            return False
        if r.status_code != 200:
            raise self._refusal(r, "answering a survey")
        return True

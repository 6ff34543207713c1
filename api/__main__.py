"""``python -m api``: serve the HTTP API with uvicorn (``make run`` starts it)."""

from __future__ import annotations

import asyncio
import logging

import psycopg
import uvicorn

import channels  # noqa: F401  registers the channels consent and unsubscribe links name
from ingest.bootstrap import check_secrets
from orchestration.heap import settle_heap
from settings import ConfigurationError, check_settings, get_settings

from .app import create_app


def main() -> None:
    from orchestration.logs import configure

    configure()
    settings = get_settings()
    logging.getLogger("ingest").setLevel(settings.log_level.upper())  # JOURNEYS_LOG_LEVEL
    try:
        check_settings(settings)  # before anything else, like the worker
        url = settings.require_database_url()

        async def check() -> None:
            async with await psycopg.AsyncConnection.connect(url) as conn:
                await check_secrets(conn, settings)

        asyncio.run(check())
    except ConfigurationError as exc:
        raise SystemExit(str(exc)) from None
    app = create_app(settings)
    settle_heap(settings.gc_young_threshold)  # a long-lived heap, as the worker's
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        log_config=None,  # uvicorn's lines go through our (scrubbing) root handler
        access_log=False,
    )


if __name__ == "__main__":
    main()

"""The development mail catcher: an SMTP server (aiosmtpd) that accepts every message and
stores it in PostgreSQL (table ``dev_mail``), where ``GET /v1/dev/mail`` shows it.

``make run`` points SMTP_HOST/SMTP_PORT at it, so a newcomer sees what the journeys sent
without an SMTP relay, and nothing leaves the machine. It runs in the event loop itself
(no aiosmtpd ``Controller`` thread)::

    python -m devstack.mailcatcher     # 127.0.0.1:JOURNEYS_MAILCATCHER_PORT, DATABASE_URL
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import suppress
from email import policy
from email.parser import BytesParser
from typing import Any

import psycopg
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from psycopg_pool import AsyncConnectionPool

from settings import get_settings
from store.db import pool as make_pool
from store.dev_mail import record_caught

log = logging.getLogger(__name__)
MAX_SIZE = 10 * 1024 * 1024  # a development catcher; a 10 MB message is already odd


class CatchingHandler:
    """The aiosmtpd handler: every message accepted for every recipient, stored."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self.pool = pool

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        headers = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
        message_id = headers.get("Message-ID")
        subject = headers.get("Subject")
        try:
            async with self.pool.connection() as conn:
                await record_caught(
                    conn,
                    message_id=str(message_id).strip() if message_id else None,
                    mail_from=envelope.mail_from or "",
                    rcpt_to=list(envelope.rcpt_tos),
                    subject=str(subject) if subject is not None else None,
                    # text columns hold no NUL; the catcher shows, it does not archive
                    raw=raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
                )
        except psycopg.Error as exc:
            log.error("could not store a caught message: %s", exc)
            return "451 4.3.0 could not store the message; try again later"
        log.info("caught %s for %s", message_id, ", ".join(envelope.rcpt_tos))
        return "250 2.0.0 OK: caught"


async def serve_mailcatcher(
    database_url: str,
    host: str,
    port: int,
    stop: asyncio.Event,
    *,
    ready: asyncio.Event | None = None,
) -> None:
    """Accept mail on ``host:port`` into ``dev_mail`` until ``stop`` is set; ``ready`` is
    set once the port is listening."""
    pool = make_pool(database_url, max_size=2)
    await pool.open()
    try:
        handler = CatchingHandler(pool)
        server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(
                handler,
                hostname="journeys-mailcatcher",
                data_size_limit=MAX_SIZE,
                # anything goes in development: AUTH without TLS is accepted, not required
                auth_require_tls=False,
                authenticator=_accept_any_login,
            ),
            host,
            port,
        )
        log.info("mail catcher listening on %s:%d", host, port)
        if ready is not None:
            ready.set()
        try:
            await stop.wait()
        finally:
            server.close()
            await server.wait_closed()
    finally:
        await pool.close()


def _accept_any_login(*args: Any) -> AuthResult:
    return AuthResult(success=True)


def main() -> None:
    """``python -m devstack.mailcatcher``: serve until SIGINT or SIGTERM."""
    from orchestration.logs import configure  # the recipients it logs are scrubbed

    configure(fmt="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    database_url = settings.require_database_url()  # it stores what it catches there

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await serve_mailcatcher(database_url, "127.0.0.1", settings.mailcatcher_port, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()

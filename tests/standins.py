"""Real local servers that stand in for the outside world (an SMS provider, a customer's
webhook, an SMTP relay) and record what they received.

Both run in a thread of their own, so they answer whatever the test does meanwhile (await
a workflow, block on a subprocess, run a worker in another process). Both work as
``with`` and ``async with`` context managers::

    async with RecordingHTTPServer(script=[Reply(503), Reply(200)]) as sms:
        settings = Settings.model_validate({"JOURNEYS_SMS_URL": sms.url + "/sms",
                                            "JOURNEYS_OUTBOUND_ALLOW": "127.0.0.1"})
        ...
        await sms.wait_for(1)
        assert sms.deliveries[0].json() == {...}

    with RecordingSMTPServer(starttls=True, login=("user", "pw")) as smtp:
        settings = Settings.model_validate(smtp.env())   # SMTP_HOST, SMTP_PORT, ...
        ...
        assert smtp.mail[0].message["Subject"] == "Welcome"

With ``starttls`` the server presents a self-signed certificate for 127.0.0.1/localhost
made at start; clients trust it through ``SSL_CERT_FILE=server.cert_path`` (which
``ssl.create_default_context`` reads), e.g. ``monkeypatch.setenv``."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests._standins_http import HOST, Recorded, RecordingHTTPServer, Reply

__all__ = [
    "HOST",
    "CaughtMail",
    "Recorded",
    "RecordingHTTPServer",
    "RecordingSMTPServer",
    "Reply",
    "self_signed_cert",
]


@dataclass(frozen=True)
class CaughtMail:
    """One message the SMTP stand-in accepted (or, in ``rejected``, refused)."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    login: str | None  # the user name it authenticated with
    tls: bool  # whether the session was encrypted (STARTTLS)
    reply: str


class RecordingSMTPServer:
    """An SMTP server (aiosmtpd) on 127.0.0.1 (random port) that records every message.

    ``starttls``: offer STARTTLS with a self-signed certificate (``cert_path``), and allow
    AUTH only after it, as real relays do. ``login=(user, password)``: require that login
    before MAIL FROM (530 otherwise, 535 for wrong credentials). ``replies``: SMTP replies
    to answer DATA with, in order, instead of accepting (e.g. ``"451 4.7.1 try later"``,
    ``"554 5.7.1 rejected"``); those messages go to ``rejected``. ``refuse``: recipients
    refused at RCPT TO with 550. ``on_data``: called (in the server's thread) with each
    message it accepts, before it answers: a test makes something happen right at the
    moment the relay takes a message (stop a worker, cut PostgreSQL's connections)."""

    def __init__(
        self,
        *,
        starttls: bool = False,
        login: tuple[str, str] | None = None,
        replies: list[str] | None = None,
        refuse: set[str] | None = None,
        on_data: Callable[[CaughtMail], Awaitable[None]] | None = None,
    ) -> None:
        self.on_data = on_data
        self.starttls = starttls
        self.login = login
        self.replies = list(replies or [])
        self.refuse = {a.lower() for a in refuse or set()}
        self.mail: list[CaughtMail] = []
        self.rejected: list[CaughtMail] = []
        self.cert_path: Path | None = None
        self.port = 0
        self._lock = threading.Lock()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None

    def env(self) -> dict[str, str]:
        """Settings (by alias) that point the email channel at this server."""
        env = {
            "SMTP_HOST": HOST,
            "SMTP_PORT": str(self.port),
            "SMTP_STARTTLS": str(self.starttls).lower(),
        }
        if self.login:
            env |= {"SMTP_USERNAME": self.login[0], "SMTP_PASSWORD": self.login[1]}
        return env

    async def wait_for(self, count: int, *, timeout: float = 10.0) -> list[CaughtMail]:
        """Wait until at least ``count`` messages were accepted; returns them."""
        deadline = time.monotonic() + timeout
        while len(self.mail) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} emails, got {len(self.mail)}")
            await asyncio.sleep(0.02)
        return list(self.mail)

    def _tls_context(self) -> ssl.SSLContext | None:
        if not self.starttls:
            return None
        self._tmp = tempfile.TemporaryDirectory(prefix="smtp-standin-")
        cert, key = self_signed_cert(Path(self._tmp.name))
        self.cert_path = cert
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return context

    def start(self) -> RecordingSMTPServer:
        tls = self._tls_context()
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, daemon=True)
        self._thread.start()

        def protocol() -> SMTP:
            return SMTP(
                _SMTPHandler(self),
                hostname="smtp-standin",
                tls_context=tls,
                auth_require_tls=self.starttls,
                authenticator=self._authenticate,
                loop=loop,
            )

        started = asyncio.run_coroutine_threadsafe(loop.create_server(protocol, HOST, 0), loop)
        self._server = started.result(timeout=10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            self.login is not None
            and isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == self.login
        )
        # handled=False: aiosmtpd answers 535 itself on failure
        return AuthResult(success=ok, handled=False, auth_data=data.login.decode() if ok else None)

    def close(self) -> None:
        loop, server = self._loop, self._server
        if loop is None:
            return

        async def shutdown() -> None:
            if server is not None:
                server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join(timeout=10)
        loop.close()
        self._loop = None
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> RecordingSMTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RecordingSMTPServer:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)


class _SMTPHandler:
    def __init__(self, owner: RecordingSMTPServer) -> None:
        self.owner = owner

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.owner.login is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() in self.owner.refuse:
            return f"550 5.1.1 <{address}>: no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        owner = self.owner
        with owner._lock:
            reply = owner.replies.pop(0) if owner.replies else "250 OK: recorded"
        raw = envelope.original_content or b""
        caught = CaughtMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            raw=raw,
            message=BytesParser(policy=policy.default).parsebytes(raw),
            login=session.auth_data if session.authenticated else None,
            tls=session.ssl is not None,
            reply=reply,
        )
        with owner._lock:
            (owner.mail if reply.startswith("2") else owner.rejected).append(caught)
        if owner.on_data is not None and reply.startswith("2"):
            await owner.on_data(caught)
        return reply


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1 and its key, as PEM files in
    ``directory``; made with ``cryptography`` when installed, else the openssl CLI."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        _cert_with_cryptography(cert, key)
    except ImportError:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert),
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-addext", "basicConstraints=critical,CA:TRUE"],
            check=True, capture_output=True,
        )  # fmt: skip
    return cert, key


def _cert_with_cryptography(cert_path: Path, key_path: Path) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

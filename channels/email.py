"""The email channel: SMTP (aiosmtplib), STARTTLS or implicit TLS and login as configured.

A template sends by email with a ``subject`` block and a ``text`` or ``html`` block (or
both: multipart/alternative); the address is the customer's ``email`` trait.

The Message-ID is derived from the action's idempotency key, so the same action always
sends the same Message-ID: when a worker dies after the relay accepted a message but
before the activity completed, the retry's copy is recognisable (relays, archives and mail
clients drop or thread duplicates by Message-ID), and ``messages.provider_id`` names it."""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib

from engine.channel_kinds import ChannelKind, Part
from settings import Settings

from ._errors import PermanentDeliveryError, TransientDeliveryError, header_key
from .registry import Channel, Outbound, register

IDEMPOTENCY_HEADER = "X-Journeys-Idempotency-Key"
_ADDRESS = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+")


@dataclass(frozen=True)
class Email:
    """One rendered email to one recipient; at least one of ``text`` and ``html``."""

    to: str
    subject: str
    text: str | None
    html: str | None
    idempotency_key: str
    unsubscribe_url: str | None = None
    reply_to: str | None = None


def message_id(idempotency_key: str, mail_from: str) -> str:
    """``<32 hex of sha256(key)@domain of mail_from>``: the same for every retry."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "journeys"
    return f"<{digest}@{domain}>"


def address(text: str, *, what: str = "recipient") -> str:
    """The bare address in ``text`` (``"Ann <ann@example.com>"`` -> ``ann@example.com``);
    raises :class:`PermanentDeliveryError` when there is none."""
    if "\n" in text or "\r" in text:
        raise PermanentDeliveryError(f"{what} {text!r} contains a line break")
    addr = parseaddr(text)[1]
    if not _ADDRESS.fullmatch(addr):
        raise PermanentDeliveryError(f"{what} {text!r} is not an email address")
    return addr


def build_message(settings: Settings, email: Email) -> EmailMessage:
    """The MIME message: text, HTML or multipart/alternative with both."""
    address(email.to)
    address(settings.mail_from, what="JOURNEYS_MAIL_FROM")
    if email.text is None and email.html is None:
        raise PermanentDeliveryError(
            f"the email to {email.to} has neither a text nor an HTML part; give its template one"
        )
    msg = EmailMessage()
    try:
        msg["From"] = settings.mail_from
        msg["To"] = email.to
        msg["Subject"] = email.subject
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = message_id(email.idempotency_key, settings.mail_from)
        msg[IDEMPOTENCY_HEADER] = header_key(email.idempotency_key)
        if email.reply_to:
            msg["Reply-To"] = email.reply_to
        if email.unsubscribe_url:
            # RFC 8058 one-click: mailbox providers POST "List-Unsubscribe=One-Click" to it
            msg["List-Unsubscribe"] = f"<{email.unsubscribe_url}>"
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    except ValueError as exc:  # a line break in a header value (header injection)
        raise PermanentDeliveryError(f"cannot build the email to {email.to}: {exc}") from None
    if email.text is not None:
        msg.set_content(email.text)
        if email.html is not None:
            msg.add_alternative(email.html, subtype="html")
    else:
        assert email.html is not None
        msg.set_content(email.html, subtype="html")
    return msg


_greeting: list[str] = []  # the name this machine says EHLO with, once looked up


async def _local_hostname() -> str:
    """The name this machine greets the SMTP server with (EHLO): looked up once per
    process, off the event loop, not per message (aiosmtplib's default asks
    ``socket.getfqdn`` every time, ~3% of a worker's CPU per email sent)."""
    if not _greeting:
        _greeting.append(await asyncio.to_thread(socket.getfqdn))
    return _greeting[0]


async def send_email(settings: Settings, email: Email) -> str:
    """Send ``email`` through the configured SMTP server; returns its Message-ID."""
    msg = build_message(settings, email)
    recipient = address(email.to)
    server = f"the SMTP server {settings.smtp_host}:{settings.smtp_port}"
    try:
        await aiosmtplib.send(
            msg,
            sender=address(settings.mail_from, what="JOURNEYS_MAIL_FROM"),
            recipients=[recipient],
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            local_hostname=await _local_hostname(),
            username=settings.smtp_username or None,  # an empty variable means no login
            password=settings.smtp_password or None,
            use_tls=settings.smtp_tls,
            start_tls=settings.smtp_starttls,
            timeout=settings.smtp_timeout_seconds,
        )
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise PermanentDeliveryError(
            f"{server} refused the login ({exc.code} {exc.message}); check SMTP_USERNAME and"
            " SMTP_PASSWORD"
        ) from None
    except aiosmtplib.SMTPNotSupported as exc:
        raise PermanentDeliveryError(
            f"{server} does not support what is configured ({exc}); check SMTP_STARTTLS,"
            " SMTP_TLS and SMTP_USERNAME"
        ) from None
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [e.code for e in exc.recipients]
        said = "; ".join(f"{e.code} {e.message}" for e in exc.recipients)
        if all(400 <= c < 500 for c in codes):
            raise TransientDeliveryError(f"{server} deferred {recipient}: {said}") from None
        raise PermanentDeliveryError(f"{server} refused {recipient}: {said}") from None
    except aiosmtplib.SMTPResponseException as exc:
        said = f"{server} answered {exc.code} {exc.message}"
        if 400 <= exc.code < 500:
            raise TransientDeliveryError(said) from None
        if exc.code == 530:
            raise PermanentDeliveryError(
                f"{said}; it requires a login or TLS: set SMTP_USERNAME/SMTP_PASSWORD and"
                " SMTP_STARTTLS or SMTP_TLS"
            ) from None
        raise PermanentDeliveryError(f"{said} for the email to {recipient}") from None
    except (aiosmtplib.SMTPException, OSError) as exc:  # timeouts, refused, disconnected, TLS
        # a refused connection never handed the message over; anything else may have
        never_sent = isinstance(exc, (ConnectionRefusedError, aiosmtplib.SMTPConnectError))
        raise TransientDeliveryError(
            f"could not send the email to {recipient} through {server}: {exc}",
            maybe_delivered=not never_sent,
        ) from None
    return str(msg["Message-ID"])


async def _send(settings: Settings, message: Outbound) -> str:
    parts = message.parts
    return await send_email(
        settings,
        Email(
            to=message.to,
            subject=parts.get("subject") or "",
            text=parts.get("text"),
            html=parts.get("html"),
            idempotency_key=message.idempotency_key,
            unsubscribe_url=message.unsubscribe_url,
        ),
    )


CHANNEL = register(
    Channel(
        ChannelKind(
            name="email",
            parts=(
                Part("subject", ("subject",), limit=998, form="line"),  # one header line
                Part("text", ("text",), limit=256 * 1024),
                Part("html", ("html",), limit=256 * 1024, form="html"),
            ),
            needs=(("subject",), ("text", "html")),
            contact="email",
            plural="emails",
        ),
        _send,
        settings=(
            "smtp_host",
            "smtp_port",
            "smtp_username",
            "smtp_password",
            "smtp_tls",
            "smtp_starttls",
            "smtp_timeout_seconds",
            "mail_from",
        ),
    )
)

"""Who is calling: the one parser of credentials and the one admin check.

A source's write key comes as HTTP Basic with the key as user name (as Segment SDKs send
it), as ``Authorization: Bearer`` or as ``writeKey`` in the body; an admin token as
``Authorization: Bearer``, or, from a browser, as the password of HTTP Basic (any user
name), or as the codec cookie. ``parse`` reads the header; ``check_admin`` decides."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from fastapi import HTTPException

from ingest.segment import IngestError

from .state import AppState


@dataclass(frozen=True)
class Credentials:
    """An ``Authorization`` header, read: Bearer's token is ``user``, password empty."""

    scheme: str  # "basic" or "bearer"
    user: str
    password: str = ""

    @property
    def key(self) -> str | None:
        """The secret by the write-key convention: Bearer's token, Basic's user name."""
        return self.user or None

    @property
    def login(self) -> str | None:
        """The secret a browser's login sends: Basic's password, or its user name when the
        password is empty (how ``curl -u TOKEN:`` sends it); Bearer's token."""
        return self.password or self.user or None


def parse(header: str | None) -> Credentials | None:
    """The credentials in an Authorization header, None without one; raises IngestError
    (401 ``bad_auth``) for a scheme we do not take or Basic that is not base64."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return Credentials("bearer", value.strip())
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise IngestError(
                401, "bad_auth", "the Basic credentials are not valid base64"
            ) from None
        user, _, password = decoded.partition(":")
        return Credentials("basic", user, password)
    raise IngestError(
        401,
        "bad_auth",
        "use HTTP Basic with the write key as user name, or Authorization: Bearer KEY",
    )


def credential(header: str | None) -> str | None:
    """The secret in an Authorization header, Basic (user name) or Bearer."""
    found = parse(header)
    return found.key if found is not None else None


async def check_admin(
    state: AppState, token: str, *, what: str, headers: dict[str, str] | None = None
) -> int:
    """The admin key's id; refuses anything but a live admin token: 403 for a write key
    (it cannot ``what``), 401 otherwise (with ``headers``, e.g. a Basic challenge)."""
    async with state.pool.connection() as conn:
        await state.refresh(conn)
    admin = state.keys.check(token, "admin")
    if admin is not None:
        return admin
    if state.keys.check(token, "write") is not None:
        raise HTTPException(
            403,
            {"error": "write_key", "message": f"a write key cannot {what}; use an admin token"},
        )
    raise HTTPException(
        401,
        {"error": "bad_token", "message": "the admin token is unknown or revoked"},
        headers=headers,
    )

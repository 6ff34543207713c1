"""Who is calling: a source's write key (HTTP Basic with the key as user name, as Segment
SDKs send it; ``Authorization: Bearer``; or ``writeKey`` in the body) or an admin token."""

from __future__ import annotations

import base64
import binascii

from ingest.segment import IngestError


def credential(header: str | None) -> str | None:
    """The secret in an Authorization header, Basic (user name) or Bearer."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip() or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise IngestError(
                401, "bad_auth", "the Basic credentials are not valid base64"
            ) from None
        user, _, _ = decoded.partition(":")
        return user or None
    raise IngestError(
        401,
        "bad_auth",
        "use HTTP Basic with the write key as user name, or Authorization: Bearer KEY",
    )

"""``JOURNEYS_PAYLOAD_KEYS`` (``id:base64key,...``) parsed and validated: the settings check
refuses a malformed value at start, and ``orchestration.codec`` builds its cipher from the
same parse, so both say the same sentence."""

from __future__ import annotations

import base64
import binascii

from .errors import PayloadKeyError

__all__ = ["PayloadKeyError", "parse_keys"]


def parse_keys(spec: str) -> list[tuple[str, bytes]]:
    """``id:base64key`` pairs, comma-separated, first one encrypting; keys of 32 bytes."""
    keys: list[tuple[str, bytes]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        key_id, sep, encoded = part.partition(":")
        if not sep or not key_id.strip():
            raise PayloadKeyError(
                "JOURNEYS_PAYLOAD_KEYS must list id:base64key pairs, comma-separated"
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            raise PayloadKeyError(f"payload key {key_id.strip()!r} is not valid base64") from None
        if len(key) != 32:
            raise PayloadKeyError(
                f"payload key {key_id.strip()!r} has {len(key)} bytes; AES-256 needs 32"
            )
        if any(k == key_id.strip() for k, _ in keys):
            raise PayloadKeyError(f"payload key id {key_id.strip()!r} is listed twice")
        keys.append((key_id.strip(), key))
    if not keys:
        raise PayloadKeyError("JOURNEYS_PAYLOAD_KEYS lists no key")
    return keys

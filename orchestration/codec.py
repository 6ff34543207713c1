"""Every payload the project hands to Temporal is encrypted: workflow inputs, signals,
queries, updates, results, activity inputs and outputs, summaries and details shown in
the UI, and failures (their message and stack trace too, with
``encode_common_attributes``). Temporal's persistence therefore holds no contact details.

AES-256-GCM with keys from ``JOURNEYS_PAYLOAD_KEYS`` (``id:base64key,...``): the first key
encrypts, every listed key decrypts, so a key is rotated by putting a new one first and
dropping the old one once no history needs it. A payload without this codec's encoding
(histories recorded before it, or by a client without it) decodes as it is.

Admins read decoded payloads in the Temporal UI and CLI through the API's codec endpoint
(``api.codec_routes``), which runs the same codec."""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from settings.payload_keys import PayloadKeyError, parse_keys  # the settings check parses alike

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
_NONCE = 12
__all__ = [
    "ENCODING",
    "KEY_ID",
    "EncryptionCodec",
    "PayloadKeyError",
    "data_converter",
    "new_key_spec",
    "parse_keys",
]


def new_key_spec(key_id: str) -> str:
    """A fresh ``id:base64key`` entry, for the operations guide's rotation steps."""
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


class EncryptionCodec(PayloadCodec):
    """AES-GCM over each payload's serialised bytes; the key id travels in the metadata."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise PayloadKeyError("the codec needs at least one key")
        self._encrypt_id, first = keys[0]
        self._encrypt = AESGCM(first)
        self._decrypt = {key_id: AESGCM(key) for key_id, key in keys}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encode_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decode_one(p) for p in payloads]

    def encode_one(self, payload: Payload) -> Payload:
        nonce = os.urandom(_NONCE)
        sealed = self._encrypt.encrypt(nonce, payload.SerializeToString(), None)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: self._encrypt_id.encode()},
            data=nonce + sealed,
        )

    def decode_one(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # recorded before the codec: it is its own plain text
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        aes = self._decrypt.get(key_id)
        if aes is None:
            raise PayloadKeyError(
                f"a payload is encrypted with key {key_id!r}, which JOURNEYS_PAYLOAD_KEYS"
                " does not list (keep old keys after the first one until their histories"
                " are gone)"
            )
        try:
            plain = aes.decrypt(payload.data[:_NONCE], payload.data[_NONCE:], None)
        except InvalidTag:
            raise PayloadKeyError(
                f"a payload does not decrypt with key {key_id!r}: the key was changed"
            ) from None
        return Payload.FromString(plain)


def data_converter(payload_keys: str) -> DataConverter:
    """The project's converter: pydantic JSON, encrypted by :class:`EncryptionCodec`,
    failures' messages and stack traces encoded too."""
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(parse_keys(payload_keys)),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )

"""Every payload the project hands to Temporal is encrypted: workflow inputs, signals,
queries, updates, results, activity inputs and outputs, summaries and details shown in
the UI, and failures (their message and stack trace too, with
``encode_common_attributes``). Temporal's persistence therefore holds no contact details.

AES-256-GCM with keys from ``JOURNEYS_PAYLOAD_KEYS`` (``id:base64key,...``): the first key
encrypts, every listed key decrypts, so a key is rotated by putting a new one first and
dropping the old one once no history needs it. A payload without this codec's encoding
(histories recorded before it, or by a client without it) decodes as it is.

Payloads of ``COMPRESS_FROM`` bytes or more are compressed (zlib) before they are
encrypted, under their own encoding (``ENCODING_ZLIB``): a new customer's start carries the
journey catalog (``workflows.io.CustomerInput``), about 11 KB of JSON that zlib makes
about 2.5 KB, so each customer's history, the server's writes and every poll of a full
history shrink by as much (``bench.ingest_bench`` prints the bytes per customer). A
worker or client from before compression leaves such a payload encoded and fails the task
with "unknown payload encoding" until it is upgraded: nothing is lost, the task is retried.
Small payloads (events, results) are not compressed: zlib gains little there, and
compression before encryption lets a payload's length say something about its content.

Admins read decoded payloads in the Temporal UI and CLI through the API's codec endpoint
(``api.codec_routes``), which runs the same codec."""

from __future__ import annotations

import base64
import dataclasses
import os
import zlib
from collections.abc import Sequence
from typing import ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from settings.payload_keys import PayloadKeyError, parse_keys  # the settings check parses alike

ENCODING = b"binary/encrypted"
ENCODING_ZLIB = b"binary/encrypted+zlib"
KEY_ID = "encryption-key-id"
COMPRESS_FROM = 1024
# what a compressed payload may expand to: far above Temporal's payload limit (2 MB by
# default), far below what would hurt a worker
MAX_EXPANDED = 64 * 1024 * 1024
_NONCE = 12
__all__ = [
    "ENCODING",
    "ENCODING_ZLIB",
    "KEY_ID",
    "EncryptionCodec",
    "PayloadKeyError",
    "SharedPayloadConverter",
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
        plain, encoding = payload.SerializeToString(), ENCODING
        if len(plain) >= COMPRESS_FROM:
            packed = zlib.compress(plain, 6)
            if len(packed) < len(plain):
                plain, encoding = packed, ENCODING_ZLIB
        nonce = os.urandom(_NONCE)
        sealed = self._encrypt.encrypt(nonce, plain, None)
        return Payload(
            metadata={"encoding": encoding, KEY_ID: self._encrypt_id.encode()},
            data=nonce + sealed,
        )

    def decode_one(self, payload: Payload) -> Payload:
        encoding = payload.metadata.get("encoding")
        if encoding not in (ENCODING, ENCODING_ZLIB):
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
        if encoding == ENCODING_ZLIB:
            plain = _expand(plain)
        return Payload.FromString(plain)


def _expand(packed: bytes) -> bytes:
    """The compressed payload's bytes, bounded by ``MAX_EXPANDED`` (it decrypted, so only
    a holder of the key could have made it, but a bound costs nothing)."""
    inflate = zlib.decompressobj()
    try:
        plain = inflate.decompress(packed, MAX_EXPANDED)
    except zlib.error as exc:
        raise PayloadKeyError(f"a compressed payload does not decompress: {exc}") from None
    if inflate.unconsumed_tail or not inflate.eof:
        raise PayloadKeyError(
            f"a compressed payload expands past {MAX_EXPANDED // (1024 * 1024)} MB or is truncated"
        )
    return plain


class SharedPayloadConverter(PydanticPayloadConverter):
    """The pydantic payload converter, built once per process and shared by every user.

    The SDK builds one from ``payload_converter_class`` for each cached workflow and two
    per workflow activation (its per-command data converters, whose own is replaced at
    once): ~16 µs each, on the worker's event loop; and each workflow's converter built
    its pydantic TypeAdapters again (8-28 µs per type) in a cache of its own, 3.3 KB of
    RSS per cached workflow in all. The converter holds nothing but that cache (a
    thread-safe ``functools.lru_cache``), so one serves all; the payloads it makes and
    reads are the same, so histories replay alike."""

    _shared: ClassVar[SharedPayloadConverter | None] = None

    def __new__(cls) -> SharedPayloadConverter:
        if cls._shared is None:  # two threads at once make two: one is kept, no harm
            made = super().__new__(cls)
            PydanticPayloadConverter.__init__(made)
            cls._shared = made
        return cls._shared

    def __init__(self) -> None:  # built in __new__, once
        pass


def data_converter(payload_keys: str) -> DataConverter:
    """The project's converter: pydantic JSON (:class:`SharedPayloadConverter`), encrypted
    by :class:`EncryptionCodec`, failures' messages and stack traces encoded too."""
    return dataclasses.replace(
        pydantic_data_converter,
        payload_converter_class=SharedPayloadConverter,
        payload_codec=EncryptionCodec(parse_keys(payload_keys)),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )

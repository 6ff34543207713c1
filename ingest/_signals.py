"""Cutting one customer's waiting events into signals Temporal will take and the workflow
will read.

Temporal refuses a payload over 2 MB (``Blob data size exceeds limit``), and the worker drops
a signal it cannot decode (pydantic's JSON parser stops at ~200 levels of nesting), so every
signal is planned under a byte budget far below the limit and test-serialised with the
workflow's own data converter, encoded and decoded, before it is sent. An event that cannot
travel even alone is a dead letter (``store.dead_letters``), never a retry forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pydantic
import pydantic_core
from temporalio.converter import DataConverter

from engine.errors import InputError
from engine.model import Event
from workflows.io import CustomerPatch, EventsSignal

SIGNAL_BUDGET = 512 * 1024  # bytes of one signal's payload; Temporal's limit is 2 MB
_PATCH_SHARE = 4  # the customer's traits may take at most a quarter of the budget

Item = tuple[int, Event]  # (outbox event id, event)


class Unsendable(InputError):
    """A signal that must not be sent: it does not survive the round trip through the
    workflow's data converter, or it is over the budget. The message says why and never
    holds event data."""


@dataclass
class Plan:
    """One customer's delivery: signals in event order, and the events that can never go."""

    chunks: list[list[Item]] = field(default_factory=list)
    dead: dict[int, str] = field(default_factory=dict)  # event id -> reason
    patch: CustomerPatch | None = None


def reason(exc: BaseException) -> str:
    """Why a conversion failed, without the input (pydantic puts the data in its message)."""
    if isinstance(exc, Unsendable):
        return str(exc)
    if isinstance(exc, pydantic.ValidationError):
        first = exc.errors(include_url=False, include_input=False, include_context=False)
        text = first[0]["msg"] if first else "invalid"
    else:
        text = str(exc).split("\n", 1)[0]
    return f"{type(exc).__name__}: {text}"[:300]


async def check(converter: DataConverter, signal: EventsSignal) -> int:
    """The encoded size of ``signal`` in bytes, after encoding and decoding it as the worker
    will; raises ``Unsendable`` if either way fails."""
    try:
        payloads = await converter.encode([signal])
        await converter.decode(payloads, [EventsSignal])
    except Exception as exc:
        raise Unsendable(f"cannot serialise the signal ({reason(exc)})") from None
    return sum(p.ByteSize() for p in payloads)


async def plan(
    converter: DataConverter,
    items: list[Item],
    patch: CustomerPatch | None,
    *,
    catalog_seq: int,
    budget: int = SIGNAL_BUDGET,
) -> Plan:
    """Signals for ``items`` (in order), each under ``budget`` bytes by estimate; the
    sender still checks each one (``check``) before sending it."""
    fitted, base = await _fit_patch(converter, patch, catalog_seq, budget)
    out = Plan(patch=fitted)
    chunk: list[Item] = []
    used = base
    for event_id, event in items:
        try:
            size = len(pydantic_core.to_json(event)) + 1  # and a comma
        except Exception as exc:
            out.dead[event_id] = f"cannot serialise the event ({reason(exc)})"
            continue
        if base + size > budget:
            out.dead[event_id] = (
                f"the event is {size // 1024} KB, over the signal budget of "
                f"{budget // 1024} KB even alone"
            )
            continue
        if chunk and used + size > budget:
            out.chunks.append(chunk)
            chunk, used = [], base
        chunk.append((event_id, event))
        used += size
    if chunk:
        out.chunks.append(chunk)
    return out


async def _fit_patch(
    converter: DataConverter, patch: CustomerPatch | None, catalog_seq: int, budget: int
) -> tuple[CustomerPatch | None, int]:
    """The patch, without its traits if they cannot travel (a profile stored by an older
    version, before traits were bounded): the workflow keeps the traits it had, and the
    events still go. And the size of a signal with that patch and no events."""
    if patch is not None and patch.traits is not None:
        try:
            size = await check(converter, EventsSignal(catalog_seq=catalog_seq, customer=patch))
            if size <= budget // _PATCH_SHARE:
                return patch, size
        except Unsendable:
            pass
        patch = patch.model_copy(update={"traits": None})
    return patch, await check(converter, EventsSignal(catalog_seq=catalog_seq, customer=patch))

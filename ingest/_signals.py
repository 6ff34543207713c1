"""Cutting one customer's waiting events into signals Temporal will take and the workflow
will read.

Temporal refuses a payload over 2 MB (``Blob data size exceeds limit``), and the worker drops
a signal it cannot decode (pydantic's JSON parser stops at ~200 levels of nesting), so every
signal is planned under a byte budget far below the limit and test-serialised with the
workflow's own data converter, encoded and decoded, before it is sent. An event that cannot
travel even alone is a dead letter (``store.dead_letters``), never a retry forever. The
budget counts the events' JSON bytes, before the codec compresses them
(``orchestration.codec``): it bounds what a worker expands, too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pydantic
import pydantic_core
from temporalio.converter import DataConverter

from engine.errors import InputError
from engine.identity import redact_traits
from engine.model import Event
from engine.policy import load_policy
from store.customers import Standing
from workflows.io import CustomerPatch, EventsSignal

log = logging.getLogger(__name__)
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


def patch_of(s: Standing) -> CustomerPatch | None:
    """What the journeys may know of the customer now: traits (without contact
    details) and the latest tier, segment, RFM scores and forecast."""
    if s.traits is None and s.segment is None:
        return None
    patch = CustomerPatch(traits=redact_traits(s.traits) if s.traits is not None else None)
    if s.segment is not None:
        patch.segment, patch.tier = s.segment, s.tier
        patch.rfm = {"r": s.r or 0, "f": s.f or 0, "m": s.m or 0}
        patch.ltv = float(s.ltv or 0)
        patch.first_order = s.first_order_at
        patch.p_alive, patch.churn_risk = s.p_alive, s.churn_risk
        patch.predicted_clv = s.predicted_clv_365d
    return patch


def policy_zones(rules_dir: Path) -> dict[str, str] | None:
    """Where calendar timers find a customer's time zone, from ``rules_dir``'s policy
    (``Dispatcher(time_zones=)``); None, with a warning, when it cannot be read: new
    customers then load their first catalog themselves, as before."""
    try:
        return load_policy(rules_dir).time_zones()
    except Exception as exc:  # a policy error is reported by the worker, which needs it
        log.warning("no catalog travels with new customers' starts (%s)", exc)
        return None

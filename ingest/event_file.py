"""An event file for ``journeys simulate``: Segment messages, one JSON object per line.

Each line is read as the body of one API request would be, by the API's own parser
(``ingest.segment``): every message type it takes (``track``, ``identify``, ``page``,
``screen``, ``group``, ``alias``, and ``{"batch": [...]}``), the same bounds, and the same
sentence for every refusal, after the file and line (``events.jsonl:3: message needs a
userId or an anonymousId``). A line without ``type`` is read as ``/v1/track`` reads it when
it has an ``event``, else as ``/v1/batch`` when it has a ``batch``.

Two differences, both because nothing received the file: ``timestamp`` is required, and it
is taken as it is (no ``sentAt`` clock correction). A message without ``messageId`` gets
``FILE:LINE`` (deduplication is then by line, as a retried request's would be by id).

What reaches the journeys is what ingestion hands the workflows: ``track`` events with
their properties as a workflow sees them (``engine.identity.redact_properties``), and the
traits of every message that carries some (``identify``, or any other with ``traits``), as
a profile update before the message's event. ``page``, ``screen``, ``group`` and ``alias``
are stored by the API but reach no journey, so here they change nothing but traits.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from engine.errors import InputError
from engine.identity import redact_properties
from engine.model import Event
from engine.simulate import Message as SimulatedMessage

from .segment import IngestError, Message, messages, normalize, parse_json, read_body


class SimulationInputError(InputError, ValueError):
    """A line of the event file is not a usable Segment message; the text says which."""


def parse_time(value: Any, where: str) -> datetime:
    """An ISO-8601 time given on the command line (``--until``), UTC when it has no zone."""
    if not isinstance(value, str):
        raise SimulationInputError(f"{where}: timestamp must be an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SimulationInputError(f"{where}: '{value}' is not an ISO-8601 timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_messages(lines: Iterable[str], source: str = "events") -> list[SimulatedMessage]:
    """The simulation's input from JSON lines; blank lines and ``#`` comments are skipped.
    Raises :class:`SimulationInputError` at the first line the API would refuse."""
    out: list[SimulatedMessage] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{source}:{number}"
        try:
            accepted = read_line(text.encode(), default_id=where)
        except IngestError as exc:
            raise SimulationInputError(f"{where}: {exc}") from None
        for m in accepted:
            out.extend(_inputs(m, number))
    return out


def read_line(body: bytes, *, default_id: str) -> list[Message]:
    """The messages of one line, checked as the body of one API request would be."""
    data = parse_json(read_body(body, None))
    if "type" not in data and "batch" in data:  # as /v1/batch
        return messages(data, kind=None, received_at=None, default_id=default_id)
    # a message names its type, as in a batch; without one, an event makes it a track
    kind = "track" if "type" not in data and "event" in data else None
    return [normalize(data, kind=kind, where="message", received_at=None, default_id=default_id)]


def _inputs(m: Message, line: int) -> list[SimulatedMessage]:
    """What ingestion would hand the customer's workflow for ``m``."""
    out: list[SimulatedMessage] = []
    if m.type == "identify" or m.traits:
        out.append(SimulatedMessage("identify", m.customer_id, m.event_time, line, traits=m.traits))
    if m.type == "track" and m.name:
        # the properties as ingestion stores them, then as the dispatcher hands them over
        properties = redact_properties(m.name, m.stored_properties())
        event = Event(name=m.name, id=m.message_id, timestamp=m.event_time, properties=properties)
        out.append(SimulatedMessage("track", m.customer_id, m.event_time, line, event=event))
    return out

"""The channel seam: a channel registered through the public registry API (the way a
module of ``channels/`` does) is validated in YAML, rendered from its own template block,
opted out of by its own trait and sent by the real worker, end to end on the time-skipping
server with real PostgreSQL; nothing of ours is patched. A new channel needs nothing more.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from channels import Outbound, registry
from engine import JourneyValidationError, load_rules
from engine.channel_kinds import ChannelKind, Part
from engine.identity import redact_traits
from settings import Settings
from store import consent
from tests.conftest import running_worker
from tests.helpers import publish
from tests.test_actions_workflow import Shop, rows

PIGEON = ChannelKind(
    name="pigeon",
    parts=(Part("note", ("note", "text"), limit=140, form="stripped"),),
    needs=(("note", "text"),),
    contact="loft",  # the customer trait that holds the address
    plural="carrier pigeons",
)

JOURNEY = """
journey: post
enroll: {on: [signed_up]}
start: new
states:
  new:
    enter:
      - send: {template: coo, channel: pigeon}
    on: {never: done}
  done: {final: true}
"""


class Loft:
    """An in-memory provider: what the pigeon channel was given to send."""

    def __init__(self) -> None:
        self.sent: list[Outbound] = []
        self.ids = itertools.count(1)
        self.arrived = asyncio.Event()

    async def send(self, settings: Settings, message: Outbound) -> str:
        self.sent.append(message)
        self.arrived.set()
        return f"pigeon-{next(self.ids)}"


@pytest.fixture
def loft() -> Iterator[Loft]:
    recorder = Loft()
    registry.register(registry.Channel(PIGEON, recorder.send, settings=("public_url",)))
    try:
        yield recorder
    finally:
        registry.unregister("pigeon")


async def outcomes(db, n: int) -> None:
    """Until ``n`` messages have an outcome (sent, suppressed, ...), at most 30 s."""
    deadline = time.monotonic() + 30
    while True:
        done = await rows(db, "SELECT 1 FROM messages WHERE status NOT IN ('sending', 'deferred')")
        if len(done) >= n:
            return
        assert time.monotonic() < deadline, f"{len(done)} of {n} messages have an outcome"
        await asyncio.sleep(0.05)


def rules(tmp_path: Path, note: str) -> tuple[Path, Path]:
    folder, templates = tmp_path / "rules", tmp_path / "templates"
    folder.mkdir()
    templates.mkdir()
    (folder / "post.yaml").write_text(JOURNEY)
    (templates / "coo.j2").write_text(note)
    return folder, templates


def test_an_unregistered_channel_is_refused_at_its_line(tmp_path: Path):
    folder, templates = rules(tmp_path, "{% block note %}coo{% endblock %}")
    with pytest.raises(JourneyValidationError) as exc:
        load_rules(folder, templates)
    assert (
        "post.yaml:8:40 states.new.enter[0].send.channel: unknown channel 'pigeon'; "
        "channels are: email, sms, webhook"
    ) in str(exc.value)


def test_a_registered_channel_checks_its_template_blocks(tmp_path: Path, loft: Loft):
    folder, templates = rules(tmp_path, "{% block subject %}coo{% endblock %}")
    with pytest.raises(JourneyValidationError) as exc:
        load_rules(folder, templates)
    assert "template 'coo' needs one of the blocks note, text for pigeon" in str(exc.value)
    assert registry.names() == ["email", "sms", "webhook", "pigeon"]
    assert "pigeon" in consent.channels()
    # its address is contact data: kept out of what workflows (and their history) see
    assert redact_traits({"loft": "loft-7", "plan": "pro"}) == {"plan": "pro"}


async def test_a_registered_channel_sends_a_journeys_message_end_to_end(
    time_env, db, db_url, task_queue, tmp_path, loft: Loft
):
    note = "{% block note %}  Coo, {{ customer.traits.first_name }}!  {% endblock %}"
    folder, templates = rules(tmp_path, note)
    await publish(db_url, load_rules(folder, templates))
    settings = Settings.model_validate(
        {
            "DATABASE_URL": db_url,
            "JOURNEYS_TEMPLATES": str(templates),
            "JOURNEYS_PUBLIC_URL": "https://journeys.example",
        }
    )
    async with running_worker(time_env.client, db, task_queue, settings=settings):
        shop = Shop(time_env, db, db_url, task_queue)
        await shop.send("identify", "mia", traits={"loft": "loft-7", "first_name": "Mia"})
        # its own opt-out trait (pigeon_opt_out), recorded as consent for the new channel
        await shop.send("identify", "ned", traits={"loft": "loft-9", "pigeon_opt_out": True})
        await shop.send("track", "mia", "Signed Up")
        await shop.send("track", "ned", "Signed Up")
        await asyncio.wait_for(loft.arrived.wait(), 30)
        await outcomes(db, 2)
    assert [(m.to, dict(m.parts)) for m in loft.sent] == [("loft-7", {"note": "Coo, Mia!"})]
    sent = loft.sent[0]
    assert sent.idempotency_key and sent.unsubscribe_url
    assert sent.unsubscribe_url.startswith("https://journeys.example/u/")
    got = await rows(
        db, "SELECT customer_id, channel, status, provider_id, reason FROM messages ORDER BY 1"
    )
    assert got == [
        ("mia", "pigeon", "sent", "pigeon-1", None),
        ("ned", "pigeon", "suppressed", None, "the customer opted out of pigeon"),
    ]
    opted = await rows(db, "SELECT customer_id, channel, opted_out FROM consent")
    assert opted == [("ned", "pigeon", True)]

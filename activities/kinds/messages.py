"""``send``: one message from a template, by the channel the action names."""

from __future__ import annotations

from engine.actions import Send
from workflows.io import ActionInput, ActionResult

from ._base import ActionBase, performs


@performs("send")
async def send_message(acts: ActionBase, data: ActionInput) -> ActionResult:
    """The message, sent once (or deferred, or skipped, as the policy says)."""
    spec = Send.model_validate(data.command.args)
    out = acts.outgoing(
        data,
        "",
        template=spec.template,
        channel=spec.channel,
        marketing=not spec.transactional,
        url=spec.url,
    )
    return await acts.message_then_log(data, acts.context(data), out)

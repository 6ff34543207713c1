"""``survey``: a survey link (NPS or CSAT), and the message that carries it."""

from __future__ import annotations

from datetime import timedelta

from engine.actions import Survey
from engine.template_context import survey_context
from store import surveys
from workflows.io import ActionInput, ActionResult

from ._base import ActionBase, now_of, performs


@performs("survey")
async def send_survey(acts: ActionBase, data: ActionInput) -> ActionResult:
    """The survey, once, and its message (done whatever becomes of the message)."""
    spec = Survey.model_validate(data.command.args)
    now = now_of(data)
    async with acts.pool.connection() as conn, conn.transaction():
        survey = await surveys.create(
            conn,
            idempotency_key=data.command.idempotency_key,
            customer_id=data.customer_id,
            journey=data.command.journey,
            template=spec.template,
            kind=spec.kind_,
            expires_in=timedelta(seconds=spec.expires_in),
            now=now,
        )
    url = survey.url(acts.settings.public_url)
    context = survey_context(url=url, kind=survey.kind, expires_at=survey.expires_at)
    out = acts.outgoing(
        data,
        "/message",
        template=spec.template,
        channel=spec.channel,
        marketing=True,
        context=context,
    )
    result = await acts.with_message(data, out, {"survey": survey.token[:6] + "..."})
    return await acts.log(data, result)

"""``offer``: a coupon from the offer's budget, and the message that hands it out."""

from __future__ import annotations

from datetime import timedelta

from activities.delivery import config_error
from engine.actions import Offer
from engine.template_context import offer_context
from store import offers
from workflows.io import ActionInput, ActionResult

from ._base import ActionBase, now_of, performs


@performs("offer")
async def issue_offer(acts: ActionBase, data: ActionInput) -> ActionResult:
    """A coupon, once; skipped when the budget is spent, voided when its message is not
    sent (a coupon nobody sees must not hold a place in the budget)."""
    spec = Offer.model_validate(data.command.args)
    now = now_of(data)
    try:
        async with acts.pool.connection() as conn, conn.transaction():
            coupon = await offers.issue(
                conn,
                idempotency_key=data.command.idempotency_key,
                customer_id=data.customer_id,
                journey=data.command.journey,
                template=spec.template,
                percent_off=spec.percent_off,
                amount_off=spec.amount_off,
                valid_for=timedelta(seconds=spec.valid_for),
                budget=spec.budget,
                now=now,
            )
    except offers.UnknownBudget as exc:
        raise config_error(str(exc)) from None
    if coupon is None:
        reason = f"offer budget '{spec.budget}' is exhausted: no coupon issued"
        return await acts.log(data, ActionResult(status="skipped", reason=reason))
    offer = offer_context(
        code=coupon.code,
        percent_off=coupon.percent_off,
        amount_off=coupon.amount_off,
        expires_at=coupon.expires_at,
        discount=coupon.discount,
    )
    out = acts.outgoing(
        data,
        "/message",
        template=spec.template,
        channel=spec.channel,
        marketing=True,
        context=offer,
    )
    result = await acts.with_message(data, out, {"code": coupon.code})
    if result.detail.get("message") == "skipped":
        # a coupon nobody will see must not hold a place in the offer's budget
        async with acts.pool.connection() as conn:
            await offers.void(conn, coupon.code, now=now)
        result.detail["coupon"] = "voided: its message was not sent"
    return await acts.log(data, result)

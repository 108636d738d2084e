"""NPS: some days after an order, ask how likely the customer is to recommend the shop.

An `OrderPlaced` schedules the question `nps_delay` later (once per order) when the shop turned
NPS on; the dispatcher sends it unless the order was cancelled meanwhile. A promoter's answer
schedules the invitation (loyalty program or review link) rendered here too.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import sign_ref
from bot.flows import FlowContext, on
from bot.messages import surveys as texts
from bot.messages.render import Button, RenderContext, Rendered, register_kind
from bot.models import Consent, Customer, Lane, Order, OrderStatus
from bot.shop_settings import load_shop_settings
from bot.store.outbox import schedule
from bot.surveys import NPS_KIND, PROMOTER_KIND, schedule_birthday_survey
from integrations.base import OrderPlaced


def _reachable(customer: Customer | None) -> bool:
    return (
        customer is not None
        and customer.id is not None
        and customer.telegram_chat_id is not None
        and customer.consent == Consent.OPTED_IN
        and customer.redacted_hash is None
    )


async def _order_count(session: AsyncSession, shop_id: int, customer_id: int) -> int:
    query = select(func.count()).where(Order.shop_id == shop_id, Order.customer_id == customer_id)
    return int(await session.scalar(query) or 0)


@on(OrderPlaced)
async def order_placed(ctx: FlowContext, event: OrderPlaced) -> None:
    """Plan the NPS question for the order, and the birthday question after a first order."""
    applied = ctx.applied
    order: Order | None = getattr(applied, "order", None)
    customer: Customer | None = getattr(applied, "customer", None)
    if getattr(applied, "stale", False) or order is None or order.id is None:
        return
    if not _reachable(customer) or order.status != OrderStatus.PLACED:
        return
    assert customer is not None and customer.id is not None and ctx.shop.id is not None
    settings = load_shop_settings(ctx.shop.settings)
    now = ctx.clock.now()
    if settings.nps_enabled:
        await schedule(
            session=ctx.session,
            shop_id=ctx.shop.id,
            customer_id=customer.id,
            kind=NPS_KIND,
            dedupe_key=f"nps:order:{order.id}",
            due_at=now + settings.nps_delay,
            lane=Lane.REMINDER,
            payload={"order_id": order.external_id, "order_pk": order.id},
            now=now,
        )
    if (
        settings.birthday_survey_after_first_order
        and customer.birthday is None
        and await _order_count(ctx.session, ctx.shop.id, customer.id) == 1
    ):
        await schedule_birthday_survey(
            session=ctx.session, shop_id=ctx.shop.id, customer_id=customer.id, now=now
        )


async def order_still_placed(ctx: RenderContext) -> str | None:
    """Skip the NPS question when its order was cancelled meanwhile."""
    order_pk = ctx.payload.get("order_pk")
    order = await ctx.session.get(Order, order_pk) if isinstance(order_pk, int) else None
    if order is None or order.shop_id != ctx.shop.id or order.status != OrderStatus.PLACED:
        return "order_cancelled"
    return None


def render_question(ctx: RenderContext) -> Rendered:
    """Render the NPS question with its 0-10 buttons."""
    ref = sign_ref(ctx.secret_key, ctx.outbox.id)  # type: ignore[arg-type]
    return Rendered(
        text=texts.nps_question(ctx.shop.name),
        buttons=texts.nps_keyboard(ref).inline_keyboard,
    )


def render_promoter(ctx: RenderContext) -> Rendered:
    """Render a promoter's invitation: the review link, else the loyalty program, else thanks."""
    settings = ctx.shop_settings
    if settings.review_url:
        buttons = [[Button(text=texts.review_button(), url=settings.review_url)]]
        if settings.loyalty_url:
            buttons.append([Button(text=texts.loyalty_button(), url=settings.loyalty_url)])
        return Rendered(text=texts.promoter_review(ctx.shop.name), buttons=buttons)
    if settings.loyalty_url:
        return Rendered(
            text=texts.promoter_loyalty(ctx.shop.name),
            buttons=[[Button(text=texts.loyalty_button(), url=settings.loyalty_url)]],
        )
    return Rendered(text=texts.promoter_thanks(ctx.shop.name))


register_kind(NPS_KIND, render=render_question, guard=order_still_placed)
register_kind(PROMOTER_KIND, render=render_promoter)

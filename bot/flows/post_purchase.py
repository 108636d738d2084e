"""Post-purchase: a thank-you once an order is paid, then "time to restock" when the customer
is expected to order again.

Thank-you (`thanks_enabled`, `thanks_delay`): adapters report an order with the platform's
status (Shopify's `financial_status`, WooCommerce's order status). An order still awaiting
payment (`pending`, `authorized`, `on-hold`, …) gets nothing yet; the delivery that reports it
paid (Shopify `orders/paid`, WooCommerce `processing`/`completed`) or delivered schedules the
thank-you `thanks_delay` later, once per order (`thanks:{order}`); a platform that sends no
status counts as paid. It goes on the reminder lane (it answers the customer's own order:
quiet hours apply, the promo cap does not) and is skipped when the order was cancelled.

Restock (`restock_enabled`, optional `restock_pool` for a code): after each order (and each
cancellation) the customer's metrics are refreshed (bot/flows/lifecycle.py), then
`plan_restock` keeps exactly one pending row, `restock:{customer}:{last order}`, due at their
expected next order date (their own average interval, else the shop's median). A new order
cancels the previous order's row and schedules the new one; a cancelled order cancels its row
and brings back the one of the order before it. Promo lane, topic `restock`; the guard skips it
when a newer order arrived or that order was cancelled.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.flows import FlowContext, on
from bot.flows.welcome import offer_keyboard, personal_code, reachable, resolve_catalog
from bot.messages import lifecycle as texts
from bot.messages.render import RenderContext, Rendered, register_kind
from bot.models import (
    Customer,
    CustomerMetrics,
    Lane,
    Order,
    OrderItem,
    OrderStatus,
    Outbox,
    OutboxState,
    Shop,
)
from bot.offers import register_links
from bot.shop_settings import load_shop_settings
from bot.store.offers import reschedule, revive
from bot.store.outbox import cancel_by_prefix, schedule
from integrations.base import OrderCancelled, OrderPlaced

THANKS_KIND = "post_purchase.thanks"
RESTOCK_KIND = "post_purchase.restock"
RESTOCK_TOPIC = "restock"
# platform statuses of an order that is not paid yet (Shopify financial_status, WooCommerce)
AWAITING_PAYMENT = frozenset(
    {"pending", "authorized", "partially_paid", "on-hold", "unpaid", "voided", "failed"}
)


def thanks_key(order_id: int) -> str:
    """Return the dedupe key of an order's thank-you."""
    return f"thanks:{order_id}"


def restock_prefix(customer_id: int) -> str:
    """Return the dedupe-key prefix of a customer's restock rows."""
    return f"restock:{customer_id}:"


def is_paid(status: str | None) -> bool:
    """Tell whether the platform's order status means paid or further along (None: assume so)."""
    return status is None or status.strip().lower() not in AWAITING_PAYMENT


@on(OrderPlaced)
async def order_paid(ctx: FlowContext, event: OrderPlaced) -> None:
    """Schedule the thank-you once the order is paid (once per order)."""
    applied = ctx.applied
    order: Order | None = getattr(applied, "order", None)
    customer: Customer | None = getattr(applied, "customer", None)
    if getattr(applied, "stale", False) or order is None or order.id is None:
        return
    settings = load_shop_settings(ctx.shop.settings)
    if not settings.thanks_enabled or not reachable(customer) or ctx.shop.id is None:
        return
    if order.status != OrderStatus.PLACED or not is_paid(event.status):
        return
    assert customer is not None and customer.id is not None
    now = ctx.clock.now()
    await schedule(
        session=ctx.session,
        shop_id=ctx.shop.id,
        customer_id=customer.id,
        kind=THANKS_KIND,
        dedupe_key=thanks_key(order.id),
        due_at=now + settings.thanks_delay,
        lane=Lane.REMINDER,
        payload={"order_pk": order.id, "name": event.name},
        now=now,
    )


@on(OrderCancelled)
async def order_cancelled(ctx: FlowContext, event: OrderCancelled) -> None:
    """Cancel the thank-you of a cancelled order (its restock is re-planned by plan_restock)."""
    order: Order | None = getattr(ctx.applied, "order", None)
    if order is None or order.id is None or ctx.shop.id is None:
        return
    await ctx.session.execute(
        update(Outbox)
        .where(
            Outbox.shop_id == ctx.shop.id,
            Outbox.dedupe_key == thanks_key(order.id),
            Outbox.state == OutboxState.SCHEDULED,
        )
        .values(
            state=OutboxState.CANCELLED, skip_reason="order_cancelled", updated_at=ctx.clock.now()
        )
        .execution_options(synchronize_session=False)
    )


async def _last_order(session: AsyncSession, shop_id: int, customer_id: int) -> Order | None:
    return (
        await session.scalars(
            select(Order)
            .where(
                Order.shop_id == shop_id,
                Order.customer_id == customer_id,
                Order.status == OrderStatus.PLACED,
            )
            .order_by(Order.placed_at.desc(), Order.id.desc())  # type: ignore[attr-defined]
            .limit(1)
        )
    ).first()


async def plan_restock(
    *, session: AsyncSession, shop: Shop, customer: Customer, now: datetime
) -> str | None:
    """Keep one restock row for the customer's last order, due at their expected next order.

    Call after refreshing the customer's metrics. Returns the dedupe key now pending, or None.
    """
    settings = load_shop_settings(shop.settings)
    if shop.id is None or customer.id is None or not settings.restock_enabled:
        return None  # rows planned while it was on are skipped by the guard
    prefix = restock_prefix(customer.id)
    last = await _last_order(session, shop.id, customer.id)
    metrics = await session.get(CustomerMetrics, customer.id)
    due = metrics.expected_next_order_at if metrics is not None else None
    if not reachable(customer) or last is None or due is None:
        await cancel_by_prefix(
            session=session, shop_id=shop.id, prefix=prefix, now=now, reason="no_order"
        )
        return None
    assert last.id is not None
    key = f"{prefix}{last.id}"
    await _cancel_others(session, shop.id, customer.id, keep=key, now=now)
    if due <= now:  # already overdue (an old order arrived late): win-back's turn, not ours
        return None
    created = await schedule(
        session=session,
        shop_id=shop.id,
        customer_id=customer.id,
        kind=RESTOCK_KIND,
        dedupe_key=key,
        due_at=due,
        lane=Lane.PROMO,
        topic=RESTOCK_TOPIC,
        payload={"order_pk": last.id},
        now=now,
    )
    if created is None:  # already planned for this order: move it, or bring it back
        await reschedule(session=session, shop_id=shop.id, dedupe_key=key, due_at=due, now=now)
        await revive(session=session, shop_id=shop.id, dedupe_key=key, due_at=due, now=now)
    return key


async def _cancel_others(
    session: AsyncSession, shop_id: int, customer_id: int, *, keep: str, now: datetime
) -> None:
    """Cancel the customer's pending restock rows other than `keep` (an order came after)."""
    await session.execute(
        update(Outbox)
        .where(
            Outbox.shop_id == shop_id,
            Outbox.customer_id == customer_id,
            Outbox.kind == RESTOCK_KIND,
            Outbox.state == OutboxState.SCHEDULED,
            Outbox.dedupe_key != keep,
        )
        .values(state=OutboxState.CANCELLED, skip_reason="ordered", updated_at=now)
        .execution_options(synchronize_session=False)
    )


# ------------------------------------------------------------------------ rendering


async def _order_of(ctx: RenderContext) -> Order | None:
    order_pk = ctx.payload.get("order_pk")
    order = await ctx.session.get(Order, order_pk) if isinstance(order_pk, int) else None
    if order is None or order.shop_id != ctx.shop.id or order.customer_id != ctx.customer.id:
        return None
    return order


async def order_still_placed(ctx: RenderContext) -> str | None:
    """Skip a thank-you whose order was cancelled meanwhile, or when the shop turned it off."""
    if not ctx.shop_settings.thanks_enabled:
        return "flow_off"
    order = await _order_of(ctx)
    return "order_cancelled" if order is None or order.status != OrderStatus.PLACED else None


async def still_last_order(ctx: RenderContext) -> str | None:
    """Skip a restock when its order was cancelled or a newer order came in between, or when
    the shop turned restock reminders off."""
    if not ctx.shop_settings.restock_enabled:
        return "flow_off"
    order = await _order_of(ctx)
    if order is None or order.status != OrderStatus.PLACED:
        return "order_cancelled"
    last = await _last_order(ctx.session, ctx.shop.id, ctx.customer.id)  # type: ignore[arg-type]
    return None if last is not None and last.id == order.id else "ordered"


def render_thanks(ctx: RenderContext) -> Rendered:
    """Render the thank-you for the order."""
    name = ctx.payload.get("name")
    return Rendered(
        text=texts.thanks_text(
            shop_name=ctx.shop.name,
            order_name=name if isinstance(name, str) else None,
            first_name=ctx.customer.first_name,
            locale=ctx.locale,
        )
    )


async def render_restock(ctx: RenderContext) -> Rendered:
    """Render "time to restock" with the last order's items, catalog and optional code."""
    order_pk = ctx.payload.get("order_pk")
    titles = (
        await ctx.session.scalars(
            select(OrderItem.title)
            .where(OrderItem.order_id == order_pk, OrderItem.shop_id == ctx.shop.id)
            .order_by(OrderItem.id)
            .limit(texts.MAX_LISTED_ITEMS)
        )
    ).all()
    code = await personal_code(ctx, ctx.shop_settings.restock_pool)
    text = texts.restock_text(
        shop_name=ctx.shop.name,
        first_name=ctx.customer.first_name,
        locale=ctx.locale,
        items=[t for t in titles if t and t.strip()],
        code=code,
    )
    return Rendered(text=text, buttons=await offer_keyboard(ctx))


register_kind(THANKS_KIND, render=render_thanks, guard=order_still_placed)
register_kind(RESTOCK_KIND, render=render_restock, guard=still_last_order)
register_links(RESTOCK_KIND, resolve_catalog)

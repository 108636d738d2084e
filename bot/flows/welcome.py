"""Welcome series: up to three messages after a customer links their chat, until a first order.

When a customer links (bot/linking.py) and the shop turned `welcome_enabled` on, one row per
step of `welcome_steps` ("1h, 2d, 5d": delays counted from linking) is scheduled on the promo
lane under the topic `welcome` (dedupe key `welcome:{customer}:{step}`, so linking again never
starts a second series). The last step carries a personal code from `welcome_pool` when set.
A customer who already ordered gets no series; a first order cancels the pending steps, and
each step's guard checks again at send time that there is still no order.

Also here, shared by the lifecycle flows: the catalog link (`catalog_url`, else the storefront)
and the offer keyboard (Open catalog, Not interested).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import OfferAction, offer_callback
from bot.flows import FlowContext, on
from bot.messages import lifecycle as texts
from bot.messages.cart import offer_buttons
from bot.messages.render import Button, RenderContext, Rendered, SkipMessage, register_kind
from bot.models import Consent, Customer, Lane, Order, OrderStatus, Outbox, Shop
from bot.offers import LinkTarget, register_links, storefront_url, tracked_url
from bot.shop_settings import load_shop_settings
from bot.store.codes import issue_code
from bot.store.outbox import cancel_by_prefix, schedule
from integrations.base import OrderPlaced

WELCOME_KIND = "welcome.step"
WELCOME_TOPIC = "welcome"


def welcome_prefix(customer_id: int) -> str:
    """Return the dedupe-key prefix of a customer's welcome series."""
    return f"welcome:{customer_id}:"


def reachable(customer: Customer | None) -> bool:
    """Tell whether a message may be planned for the customer at all (linked, subscribed)."""
    return (
        customer is not None
        and customer.id is not None
        and customer.telegram_chat_id is not None
        and customer.consent == Consent.OPTED_IN
        and customer.unreachable_since is None
        and customer.redacted_hash is None
    )


async def has_ordered(session: AsyncSession, shop_id: int, customer_id: int) -> bool:
    """Tell whether the customer has a placed (not cancelled) order in the shop."""
    found = await session.scalar(
        select(Order.id)
        .where(
            Order.shop_id == shop_id,
            Order.customer_id == customer_id,
            Order.status == OrderStatus.PLACED,
        )
        .limit(1)
    )
    return found is not None


async def plan_welcome(
    *, session: AsyncSession, shop: Shop, customer: Customer, now: datetime
) -> int:
    """Schedule the welcome series for a customer who just linked; return how many rows."""
    settings = load_shop_settings(shop.settings)
    if not settings.welcome_enabled or shop.id is None or not reachable(customer):
        return 0
    assert customer.id is not None
    if await has_ordered(session, shop.id, customer.id):
        return 0
    steps = settings.welcome_steps
    planned = 0
    for number, delay in enumerate(steps, start=1):
        row = await schedule(
            session=session,
            shop_id=shop.id,
            customer_id=customer.id,
            kind=WELCOME_KIND,
            dedupe_key=f"{welcome_prefix(customer.id)}{number}",
            due_at=now + delay,
            lane=Lane.PROMO,
            topic=WELCOME_TOPIC,
            payload={"step": number, "steps": len(steps)},
            now=now,
        )
        planned += row is not None
    return planned


@on(OrderPlaced)
async def first_order(ctx: FlowContext, event: OrderPlaced) -> None:
    """Stop the welcome series: the customer ordered."""
    customer = getattr(ctx.applied, "customer", None)
    if getattr(customer, "id", None) is None or ctx.shop.id is None:
        return
    await cancel_by_prefix(
        session=ctx.session,
        shop_id=ctx.shop.id,
        prefix=welcome_prefix(customer.id),
        now=ctx.clock.now(),
        reason="ordered",
    )


# ------------------------------------------------------------------------ rendering


async def catalog_url(session: AsyncSession, shop: Shop) -> str | None:
    """Where "Open catalog" leads: the shop's `catalog_url`, else its storefront."""
    return load_shop_settings(shop.settings).catalog_url or await storefront_url(session, shop)


async def resolve_catalog(
    session: AsyncSession, shop: Shop, row: Outbox, target: LinkTarget
) -> str | None:
    """Return where a lifecycle message's link leads now (only the catalog)."""
    return await catalog_url(session, shop) if target is LinkTarget.CATALOG else None


async def offer_keyboard(ctx: RenderContext, *, not_interested: bool = True) -> list[list[Button]]:
    """Build Open catalog (a tracked link, when the shop has a catalog) and Not interested."""
    assert ctx.outbox.id is not None
    link = None
    if await catalog_url(ctx.session, ctx.shop):
        link = tracked_url(
            public_url=ctx.public_url,
            secret_key=ctx.secret_key,
            outbox_id=ctx.outbox.id,
            target=LinkTarget.CATALOG,
        )
    callback = (
        offer_callback(ctx.secret_key, OfferAction.NOT_INTERESTED, ctx.outbox.id)
        if not_interested
        else None
    )
    return offer_buttons(catalog_url=link, order_url=None, not_interested=callback)


async def personal_code(ctx: RenderContext, pool: str | None) -> str | None:
    """Give the customer a code from `pool` (None when no pool is set or it ran out)."""
    if not pool:
        return None
    return await issue_code(
        session=ctx.session,
        shop_id=ctx.shop.id,  # type: ignore[arg-type]
        pool=pool,
        customer_id=ctx.customer.id,  # type: ignore[arg-type]
        outbox_id=ctx.outbox.id,
        now=ctx.clock.now(),
    )


async def still_no_order(ctx: RenderContext) -> str | None:
    """Skip a welcome step once the customer has ordered, or when the shop turned it off."""
    if not ctx.shop_settings.welcome_enabled:
        return "flow_off"
    if await has_ordered(ctx.session, ctx.shop.id, ctx.customer.id):  # type: ignore[arg-type]
        return "ordered"
    return None


async def render_welcome(ctx: RenderContext) -> Rendered:
    """Render one welcome step; the last one with a personal code when the shop has a pool."""
    number, steps = ctx.payload.get("step"), ctx.payload.get("steps")
    if not isinstance(number, int) or not isinstance(steps, int):
        raise SkipMessage("bad_payload")
    step = texts.welcome_step_of(number, steps)
    code = None
    if step is texts.WelcomeStep.LAST:
        code = await personal_code(ctx, ctx.shop_settings.welcome_pool)
    text = texts.welcome_text(
        step=step,
        shop_name=ctx.shop.name,
        first_name=ctx.customer.first_name,
        locale=ctx.locale,
        code=code,
    )
    return Rendered(text=text, buttons=await offer_keyboard(ctx))


register_kind(WELCOME_KIND, render=render_welcome, guard=still_no_order)
register_links(WELCOME_KIND, resolve_catalog)

"""Abandoned cart: remind a linked customer about an open cart after the shop's quiet delay.

One sequence per cart: reminder 1 after `abandoned_cart_delay` without updates (each update
pushes it back), optional reminder 2 with a personal promo code `reminder2_delay` later. An
order, an emptied cart or a newer cart cancels what is pending, and the dispatcher re-checks
at send time that the cart is still open (the guard below), so a reminder after an order
cannot happen even when the order arrives a second before the due time.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import OfferAction, offer_callback
from bot.flows import FlowContext, on
from bot.messages import cart as texts
from bot.messages.common import CART_TOPIC
from bot.messages.render import RenderContext, Rendered, SkipMessage, register_kind
from bot.models import Cart, CartItem, CartStatus, Consent, Customer, Lane, Outbox, Shop
from bot.offers import (
    FOLLOWUP_KIND,
    LinkTarget,
    register_links,
    storefront_url,
    tracked_url,
)
from bot.shop_settings import load_shop_settings
from bot.store.codes import issue_code
from bot.store.commerce import find_cart, find_order
from bot.store.offers import (
    cart_with_items,
    carts_of_order,
    is_excluded,
    open_carts_of,
    reschedule,
)
from bot.store.outbox import cancel_by_prefix, schedule
from integrations.base import CartUpdated, CheckoutStarted, OrderPlaced

REMINDER_KIND = "cart.reminder"


def reminder_key(cart_id: int, step: int) -> str:
    """Return the dedupe key of a cart's reminder."""
    return f"cart:{cart_id}:reminder:{step}"


def cart_topic(items: list[CartItem]) -> str:
    """Return what the cart is about: its most common category, else "cart"."""
    categories = Counter(
        i.category.strip().lower() for i in items if i.category and i.category.strip()
    )
    if not categories:
        return "cart"
    return categories.most_common(1)[0][0][:200]


def _reachable(customer: Customer | None) -> bool:
    return (
        customer is not None
        and customer.telegram_chat_id is not None
        and customer.consent == Consent.OPTED_IN
        and customer.redacted_hash is None
    )


async def plan_reminders(
    *, session: AsyncSession, shop: Shop, cart: Cart, now: datetime
) -> Outbox | None:
    """Schedule (or push back) the cart's reminders, or cancel them when the cart is closed."""
    assert cart.id is not None and shop.id is not None
    found = await cart_with_items(session=session, shop_id=shop.id, cart_id=cart.id)
    items = found[1] if found else []
    customer = await session.get(Customer, cart.customer_id) if cart.customer_id else None
    if cart.status != CartStatus.OPEN or not items or not _reachable(customer):
        await cancel_by_prefix(
            session=session,
            shop_id=shop.id,
            prefix=f"cart:{cart.id}:",
            now=now,
            reason="cart_closed" if cart.status != CartStatus.OPEN or not items else "unreachable",
        )
        return None
    assert customer is not None and customer.id is not None
    settings = load_shop_settings(shop.settings)
    topic = cart_topic(items)
    first_due = now + settings.abandoned_cart_delay
    steps = [(1, first_due)]
    if settings.reminder2_enabled:
        steps.append((2, first_due + settings.reminder2_delay))
    first = None
    for step, due in steps:
        key = reminder_key(cart.id, step)
        row = await schedule(
            session=session,
            shop_id=shop.id,
            customer_id=customer.id,
            kind=REMINDER_KIND,
            dedupe_key=key,
            due_at=due,
            lane=Lane.REMINDER,
            topic=topic,
            payload={"cart_id": cart.id, "step": step},
            now=now,
        )
        if row is None:
            await reschedule(session=session, shop_id=shop.id, dedupe_key=key, due_at=due, now=now)
        elif step == 1:
            first = row
    return first


@on(CartUpdated, CheckoutStarted)
async def cart_changed(ctx: FlowContext, event: CartUpdated | CheckoutStarted) -> None:
    """Plan reminders for the cart the event touched."""
    assert ctx.shop.id is not None
    cart = await find_cart(session=ctx.session, shop_id=ctx.shop.id, token=event.token)
    if cart is not None:
        await plan_reminders(session=ctx.session, shop=ctx.shop, cart=cart, now=ctx.clock.now())


@on(OrderPlaced)
async def order_placed(ctx: FlowContext, event: OrderPlaced) -> None:
    """Cancel the reminders of every cart the order converted."""
    assert ctx.shop.id is not None
    order = await find_order(session=ctx.session, shop_id=ctx.shop.id, external_id=event.order_id)
    if order is None:
        return
    for cart in await carts_of_order(session=ctx.session, order=order):
        await cancel_by_prefix(
            session=ctx.session,
            shop_id=ctx.shop.id,
            prefix=f"cart:{cart.id}:",
            now=ctx.clock.now(),
            reason="ordered",
        )


async def plan_for_linked_customer(
    *, session: AsyncSession, shop: Shop, customer: Customer, now: datetime
) -> None:
    """Once a chat is linked, remind about the cart the customer left before linking."""
    assert shop.id is not None and customer.id is not None
    for cart in (await open_carts_of(session=session, shop_id=shop.id, customer_id=customer.id))[
        :1
    ]:
        await plan_reminders(session=session, shop=shop, cart=cart, now=now)


# ------------------------------------------------------------------------ rendering


async def _cart_of(ctx: RenderContext) -> tuple[Cart, list[CartItem]] | None:
    assert ctx.shop.id is not None
    cart_id = ctx.payload.get("cart_id")
    if not isinstance(cart_id, int):
        return None
    return await cart_with_items(session=ctx.session, shop_id=ctx.shop.id, cart_id=cart_id)


async def cart_still_open(ctx: RenderContext) -> str | None:
    """Skip a reminder whose cart was ordered, emptied, replaced or given to someone else, or
    whose customer turned every cart reminder off ("not interested" in a cart with no category).
    """
    found = await _cart_of(ctx)
    if found is None:
        return "cart_closed"
    cart, items = found
    if cart.status != CartStatus.OPEN or not items or cart.customer_id != ctx.customer.id:
        return "cart_closed"
    if await is_excluded(
        session=ctx.session,
        shop_id=ctx.shop.id,  # type: ignore[arg-type]
        customer_id=ctx.customer.id,  # type: ignore[arg-type]
        topic=CART_TOPIC,
    ):
        return "excluded"
    return None


async def _catalog_url(session: AsyncSession, shop: Shop, items: list[CartItem]) -> str | None:
    """Where "Open catalog" leads: `catalog_url`, else the first product, else the storefront."""
    return (
        load_shop_settings(shop.settings).catalog_url
        or next((i.url for i in items if i.url), None)
        or await storefront_url(session, shop)
    )


async def _shop_catalog_url(session: AsyncSession, shop: Shop) -> str | None:
    """Where "Open catalog" leads without a cart: `catalog_url`, else the storefront."""
    return load_shop_settings(shop.settings).catalog_url or await storefront_url(session, shop)


def _links(ctx: RenderContext, *, catalog: str | None, order: str | None) -> dict[str, str | None]:
    assert ctx.outbox.id is not None

    def link(target: LinkTarget, url: str | None) -> str | None:
        if not url:
            return None
        return tracked_url(
            public_url=ctx.public_url,
            secret_key=ctx.secret_key,
            outbox_id=ctx.outbox.id,  # type: ignore[arg-type]
            target=target,
        )

    return {"catalog": link(LinkTarget.CATALOG, catalog), "order": link(LinkTarget.ORDER, order)}


async def render_reminder(ctx: RenderContext) -> Rendered:
    """Render the reminder: items, total, optional code, photo of the first product, buttons."""
    found = await _cart_of(ctx)
    if found is None:
        raise SkipMessage("cart_closed")
    cart, items = found
    code = None
    if ctx.payload.get("step") == 2:
        settings = ctx.shop_settings
        code = await issue_code(
            session=ctx.session,
            shop_id=ctx.shop.id,  # type: ignore[arg-type]
            pool=settings.reminder2_pool,
            customer_id=ctx.customer.id,  # type: ignore[arg-type]
            outbox_id=ctx.outbox.id,
            now=ctx.clock.now(),
        )
        if code is None:
            raise SkipMessage("no_codes")
    text = texts.reminder_text(
        first_name=ctx.customer.first_name,
        lines=[texts.Line(i.title or "—", i.quantity, i.price) for i in items],
        total=cart.total,
        currency=cart.currency or ctx.shop.currency,
        locale=ctx.locale,
        code=code,
        country=ctx.shop.country,
    )
    catalog = await _catalog_url(ctx.session, ctx.shop, items)
    links = _links(ctx, catalog=catalog, order=cart.recovery_url)
    buttons = texts.offer_buttons(
        catalog_url=links["catalog"],
        order_url=links["order"],
        not_interested=offer_callback(ctx.secret_key, OfferAction.NOT_INTERESTED, ctx.outbox.id),  # type: ignore[arg-type]
    )
    photo = next((i.image_url for i in items if i.image_url), None)
    if photo and len(text) > texts.CAPTION_LIMIT:
        photo = None
    return Rendered(text=text, photo_url=photo, buttons=buttons)


async def render_followup(ctx: RenderContext) -> Rendered:
    """Render the broader follow-up: a catalog invitation with a personal promo code."""
    code = await issue_code(
        session=ctx.session,
        shop_id=ctx.shop.id,  # type: ignore[arg-type]
        pool=ctx.shop_settings.followup_pool,
        customer_id=ctx.customer.id,  # type: ignore[arg-type]
        outbox_id=ctx.outbox.id,
        now=ctx.clock.now(),
    )
    if code is None:
        raise SkipMessage("no_codes")
    links = _links(ctx, catalog=await _shop_catalog_url(ctx.session, ctx.shop), order=None)
    text = texts.followup_text(first_name=ctx.customer.first_name, code=code, locale=ctx.locale)
    buttons = texts.offer_buttons(
        catalog_url=links["catalog"], order_url=None, not_interested=None
    )
    return Rendered(text=text, buttons=buttons)


async def resolve_link(
    session: AsyncSession, shop: Shop, row: Outbox, target: LinkTarget
) -> str | None:
    """Return where a cart message's link leads now."""
    if row.kind == FOLLOWUP_KIND:
        return await _shop_catalog_url(session, shop) if target is LinkTarget.CATALOG else None
    cart_id = (row.payload or {}).get("cart_id")
    found = (
        await cart_with_items(session=session, shop_id=shop.id, cart_id=cart_id)  # type: ignore[arg-type]
        if isinstance(cart_id, int)
        else None
    )
    if found is None:
        return await _shop_catalog_url(session, shop) if target is LinkTarget.CATALOG else None
    cart, items = found
    if target is LinkTarget.CATALOG:
        return await _catalog_url(session, shop, items)
    return cart.recovery_url


register_kind(REMINDER_KIND, render=render_reminder, guard=cart_still_open)
register_kind(FOLLOWUP_KIND, render=render_followup)
register_links(REMINDER_KIND, resolve_link)
register_links(FOLLOWUP_KIND, resolve_link)

"""Offers: tracked links, "Not interested" and Undo, and the broader follow-up with a code.

Handlers and the redirect route call these; the SQL lives in bot/store/offers.py and
bot/store/outbox.py.

"Not interested" excludes the offer's topic: a cart's main category (only reminders about carts
of that category stop, and the texts name it), or `cart` for a cart with no category (every
cart reminder stops: the reminder's guard checks it). The follow-up is a broader offer about
the catalog, not a reminder about that topic, so it keeps the promise.

A link always has somewhere to lead: the shop's storefront (`storefront_url`) is the last
fallback of "Open catalog" and what a dead tracked link's page offers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import transaction
from bot.i18n import customer_locale, shop_locales
from bot.models import Customer, Lane, Outbox, OutboxState, Shop
from bot.services import Services
from bot.shop_settings import load_shop_settings
from bot.signing import BadToken, Signer
from bot.store.customers import record_event
from bot.store.offers import (
    add_exclusion,
    newest_delivery_headers,
    record_click,
    remove_exclusion,
    revive,
)
from bot.store.outbox import cancel_by_prefix, cancel_by_topic, get_outbox, schedule
from integrations.base import printable, url_problem

log = logging.getLogger(__name__)

_CLICK_PURPOSE = "click"
FOLLOWUP_KIND = "cart.followup"
# "Not interested" in these offers (a cart, a category campaign) may be followed by a broader
# one with a code; in the shop's own lifecycle messages (welcome, restock, come back) it may not.
BROADER_OFFER_AFTER = frozenset({"cart.reminder", "campaign.message"})


class LinkTarget(StrEnum):
    """Where a tracked link in a message leads."""

    CATALOG = "catalog"
    ORDER = "order"
    # A campaign's own URL buttons, in their order in the message.
    BUTTON_1 = "button1"
    BUTTON_2 = "button2"
    BUTTON_3 = "button3"
    BUTTON_4 = "button4"
    BUTTON_5 = "button5"
    BUTTON_6 = "button6"


BUTTON_TARGETS = (
    LinkTarget.BUTTON_1,
    LinkTarget.BUTTON_2,
    LinkTarget.BUTTON_3,
    LinkTarget.BUTTON_4,
    LinkTarget.BUTTON_5,
    LinkTarget.BUTTON_6,
)
_TARGET_CODES = {
    LinkTarget.CATALOG: 1,
    LinkTarget.ORDER: 2,
    **{target: 11 + i for i, target in enumerate(BUTTON_TARGETS)},
}
_CODE_TARGETS = {code: target for target, code in _TARGET_CODES.items()}

# kind -> resolver(session, shop, outbox row, target) -> the URL the link leads to now
LinkResolver = Callable[[AsyncSession, Shop, Outbox, LinkTarget], Awaitable[str | None]]
_RESOLVERS: dict[str, LinkResolver] = {}


def register_links(kind: str, resolver: LinkResolver) -> None:
    """Tell the redirect route how a kind's tracked links resolve."""
    _RESOLVERS[kind] = resolver


def tracked_url(*, public_url: str, secret_key: str, outbox_id: int, target: LinkTarget) -> str:
    """Return the /r/{token} link that logs a click on the message's target, then redirects."""
    token = Signer(secret_key, _CLICK_PURPOSE).sign_ints(outbox_id, _TARGET_CODES[target])
    return f"{public_url}/r/{token}"


_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def _served(url: str | None) -> str | None:
    """Return the URL when a redirect may serve it (the strict check), else None."""
    return url if url and url_problem(url) is None else None


def storefront_from_headers(platform: str, headers: dict[str, str]) -> str | None:
    """Return the storefront a platform's delivery headers name (Shopify, WooCommerce), or None.

    Shopify names the shop's permanent domain (`X-Shopify-Shop-Domain`, which serves the
    storefront), WooCommerce the site's address (`X-WC-Webhook-Source`).
    """
    if platform == "shopify":
        domain = (headers.get("x-shopify-shop-domain") or "").strip().lower()
        return _served(f"https://{domain}") if _HOSTNAME.fullmatch(domain) else None
    if platform == "woocommerce":
        return _served((headers.get("x-wc-webhook-source") or "").strip())
    return None


async def storefront_url(session: AsyncSession, shop: Shop) -> str | None:
    """Return the shop's storefront: its `shop_url` setting, else what its platform names.

    Derived when a message is rendered (not copied onto the shop when a delivery is applied),
    so a `shop_url` set later wins at once and the inbox worker never writes the shop row; it
    costs one indexed read, only for messages that have no better link.
    """
    configured = _served(load_shop_settings(shop.settings).shop_url)
    if configured or shop.id is None or shop.platform not in ("shopify", "woocommerce"):
        return configured
    headers = await newest_delivery_headers(
        session=session, shop_id=shop.id, platform=shop.platform
    )
    return storefront_from_headers(shop.platform, headers) if headers else None


@dataclass(frozen=True, slots=True)
class Redirect:
    """Where a valid click goes."""

    url: str


@dataclass(frozen=True, slots=True)
class DeadLink:
    """A tracked link that leads nowhere (forged, or its target is gone), and what is known.

    `customer_locale` is the language of the customer the link was sent to (when the token is
    genuine), `shop_locale` the shop's default, `offered` the shop's languages.
    """

    shop_name: str | None = None
    shop_url: str | None = None
    customer_locale: str | None = None
    shop_locale: str | None = None
    offered: tuple[str, ...] | None = None


async def follow_click(
    services: Services, token: str, *, count: bool = True
) -> Redirect | DeadLink:
    """Return where a tracked link leads, logging the click when `count`; or a DeadLink."""
    try:
        outbox_id, code = Signer(services.secret_key, _CLICK_PURPOSE).unsign_ints(token, 2)
    except BadToken:
        return DeadLink()
    target = _CODE_TARGETS.get(code)
    if target is None:
        return DeadLink()
    async with transaction(services.sessions) as session:
        row = await session.get(Outbox, outbox_id)
        if row is None:
            return DeadLink()
        shop = await session.get(Shop, row.shop_id)
        if shop is None:
            return DeadLink()
        resolver = _RESOLVERS.get(row.kind)
        url = await resolver(session, shop, row, target) if resolver else None
        problem = url_problem(url) if url else None
        if problem:
            log.warning("a tracked link's stored target cannot be served: %s", printable(problem))
            url = None
        if not url:
            return await _dead_link(session, shop, row)
        if count:
            await record_click(
                session=session, outbox=row, target=target, now=services.clock.now()
            )
            await record_event(
                session=session,
                shop_id=row.shop_id,
                customer_id=row.customer_id,
                type="link_clicked",
                source="telegram",
                occurred_at=services.clock.now(),
                payload={"outbox_id": row.id, "target": target.value},
            )
    return Redirect(url=url)


async def _dead_link(session: AsyncSession, shop: Shop, row: Outbox) -> DeadLink:
    offered = shop_locales(shop)
    customer = await session.get(Customer, row.customer_id)
    locale = customer.locale if customer is not None and customer.shop_id == shop.id else None
    storefront = await storefront_url(session, shop)
    return DeadLink(
        shop_name=shop.name,
        shop_url=storefront or _served(load_shop_settings(shop.settings).catalog_url),
        customer_locale=customer_locale(shop, locale, offered=offered) if locale else None,
        shop_locale=shop.default_locale,
        offered=offered,
    )


class TapOutcome(StrEnum):
    """What a tap on an offer button did."""

    APPLIED = "applied"
    ALREADY = "already"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Tap:
    """The outcome and the outbox row the tap referred to."""

    outcome: TapOutcome
    outbox: Outbox | None = None


async def _own_row(
    session: AsyncSession, shop: Shop, outbox_id: int | None, chat_id: int
) -> Outbox | None:
    """Return the row only if it is this shop's and was sent to this chat's customer."""
    if outbox_id is None or shop.id is None:
        return None
    row = await get_outbox(session=session, shop_id=shop.id, outbox_id=outbox_id)
    if row is None or row.state != OutboxState.SENT:
        return None
    from bot.store.customers import get_customer

    customer = await get_customer(session=session, shop_id=shop.id, customer_id=row.customer_id)
    if customer is None or customer.telegram_chat_id != chat_id:
        return None
    return row


async def sent_offer(
    services: Services, *, shop: Shop, outbox_id: int | None, chat_id: int
) -> Outbox | None:
    """Return the offer a button refers to if it was sent to this chat, else None."""
    async with services.sessions() as session:
        return await _own_row(session, shop, outbox_id, chat_id)


def offer_topic(row: Outbox) -> str:
    """Return the topic a "not interested" on this row excludes."""
    return row.topic or row.kind.split(".", 1)[0]


async def not_interested(
    services: Services, *, shop: Shop, outbox_id: int | None, chat_id: int
) -> Tap:
    """Exclude the customer from the offer's topic, cancel what is pending on it, follow up."""
    now = services.clock.now()
    async with transaction(services.sessions) as session:
        row = await _own_row(session, shop, outbox_id, chat_id)
        if row is None:
            return Tap(TapOutcome.INVALID)
        topic = offer_topic(row)
        added = await add_exclusion(
            session=session,
            shop_id=row.shop_id,
            customer_id=row.customer_id,
            topic=topic,
            outbox_id=row.id,
            now=now,
        )
        if added is None:
            return Tap(TapOutcome.ALREADY, row)
        await cancel_by_topic(
            session=session,
            shop_id=row.shop_id,
            customer_id=row.customer_id,
            topic=topic,
            now=now,
            reason="not_interested",
        )
        await _note(session, row, "not_interested", topic, now)
        await _schedule_followup(session, shop, row, now)
    return Tap(TapOutcome.APPLIED, row)


async def _schedule_followup(
    session: AsyncSession, shop: Shop, row: Outbox, now: datetime
) -> None:
    settings = load_shop_settings(shop.settings)
    if not settings.followup_enabled or row.kind not in BROADER_OFFER_AFTER:
        return
    key = f"followup:{row.customer_id}:{row.id}"
    due = now + settings.followup_delay
    created = await schedule(
        session=session,
        shop_id=row.shop_id,
        customer_id=row.customer_id,
        kind=FOLLOWUP_KIND,
        dedupe_key=key,
        due_at=due,
        lane=Lane.PROMO,
        payload={"after": row.id},
        now=now,
    )
    if created is None:  # tapped again after an Undo: the same follow-up, due anew
        await revive(session=session, shop_id=row.shop_id, dedupe_key=key, due_at=due, now=now)
    if settings.birthday_survey_with_followup:
        await _ask_birthday_after(session, row, due, now)


async def _ask_birthday_after(
    session: AsyncSession, row: Outbox, due: datetime, now: datetime
) -> None:
    """Ride the birthday question on the follow-up, for customers whose birthday is unknown."""
    from datetime import timedelta

    from bot.models import Customer
    from bot.surveys import schedule_birthday_survey

    customer = await session.get(Customer, row.customer_id)
    if customer is None or customer.birthday is not None:
        return
    await schedule_birthday_survey(
        session=session,
        shop_id=row.shop_id,
        customer_id=row.customer_id,
        now=now,
        due_at=due + timedelta(minutes=5),
    )


async def _note(session: AsyncSession, row: Outbox, kind: str, topic: str, now: datetime) -> None:
    """Write what the customer did with an offer to their event log."""
    await record_event(
        session=session,
        shop_id=row.shop_id,
        customer_id=row.customer_id,
        type=kind,
        source="telegram",
        occurred_at=now,
        payload={"topic": topic, "outbox_id": row.id},
    )


async def undo(services: Services, *, shop: Shop, outbox_id: int | None, chat_id: int) -> Tap:
    """Take back a "not interested" made on this message, and its pending follow-up."""
    now = services.clock.now()
    async with transaction(services.sessions) as session:
        row = await _own_row(session, shop, outbox_id, chat_id)
        if row is None:
            return Tap(TapOutcome.INVALID)
        topic = offer_topic(row)
        removed = await remove_exclusion(
            session=session, shop_id=row.shop_id, customer_id=row.customer_id, topic=topic
        )
        if not removed:
            return Tap(TapOutcome.ALREADY, row)
        await cancel_by_prefix(
            session=session,
            shop_id=row.shop_id,
            prefix=f"followup:{row.customer_id}:{row.id}",
            now=now,
            reason="undone",
        )
        await _note(session, row, "not_interested_undone", topic, now)
    return Tap(TapOutcome.APPLIED, row)


async def offer_buttons_again(
    services: Services, *, shop: Shop, outbox: Outbox
) -> list[list[Any]]:
    """Rebuild an offer's original buttons (after Undo) from the links it can still resolve."""
    from bot.callbacks import OfferAction, offer_callback
    from bot.messages.cart import offer_buttons

    resolver = _RESOLVERS.get(outbox.kind)
    assert outbox.id is not None
    urls: dict[LinkTarget, str | None] = {}
    async with services.sessions() as session:
        for target in LinkTarget:
            url = await resolver(session, shop, outbox, target) if resolver else None
            urls[target] = (
                tracked_url(
                    public_url=services.settings.public_base,
                    secret_key=services.secret_key,
                    outbox_id=outbox.id,
                    target=target,
                )
                if url
                else None
            )
    return offer_buttons(
        catalog_url=urls[LinkTarget.CATALOG],
        order_url=urls[LinkTarget.ORDER],
        not_interested=offer_callback(services.secret_key, OfferAction.NOT_INTERESTED, outbox.id),
    )

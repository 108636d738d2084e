"""Deep-link tokens that link a Telegram chat to a shop's customer.

`https://t.me/<bot>?start=<token>`: the token is signed with NUDGE_SECRET_KEY, names the shop
and the customer, expires, and fits Telegram's start parameter (at most 64 characters of
A-Z, a-z, 0-9, _ and -).

Linking also settles the customer's language once (`settle_locale`): the profile's own locale
when the shop offers it, else the chat's Telegram language, else the shop's, among the shop's
`languages`; it is stored on the profile and every later message uses it until the customer
picks another one in /settings.

A link is a bearer token that may be forwarded, so it binds only the first chat that uses it:
while a profile is bound to a chat, any other chat is refused (politely, changing nothing) by
link and by shared phone alike; the bound chat may open it again. A chat may still move to
another profile with that profile's link (it leaves its old one). Linking records opt-in consent,
except for a customer who unsubscribed: the chat is bound, and they are asked to confirm before
anything is sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import transaction
from bot.i18n import customer_locale
from bot.models import Consent, Customer, Shop
from bot.services import Services
from bot.signing import BadToken, Signer
from bot.store.customers import (
    add_customer,
    bind_chat,
    find_by_phone,
    get_customer,
    log_customer_event,
    record_opt_in,
)
from integrations.fields import e164

PURPOSE = "link"
DEFAULT_TTL = timedelta(days=30)


class ExpiredToken(BadToken):
    """The token was valid but its time has passed."""


def make_link_token(
    *, secret_key: str, shop_id: int, customer_id: int, now: datetime, ttl: timedelta = DEFAULT_TTL
) -> str:
    """Return a start parameter that links a chat to this customer until now + ttl."""
    expires = int((now + ttl).timestamp())
    return Signer(secret_key, PURPOSE).sign_ints(shop_id, customer_id, expires)


def read_link_token(*, secret_key: str, token: str, now: datetime) -> tuple[int, int]:
    """Return (shop_id, customer_id) of a valid, unexpired token; raise BadToken otherwise."""
    shop_id, customer_id, expires = Signer(secret_key, PURPOSE).unsign_ints(token, 3)
    if now.timestamp() > expires:
        raise ExpiredToken("link token expired")
    return shop_id, customer_id


def deep_link(bot_username: str | None, token: str) -> str:
    """Return the t.me link that opens the shop's bot with the token."""
    return f"https://t.me/{quote(bot_username or 'bot')}?start={token}"


class LinkOutcome(StrEnum):
    """What happened when a chat asked to be linked."""

    LINKED = "linked"
    ALREADY = "already_linked"
    INVALID = "invalid"
    EXPIRED = "expired"
    REFUSED = "refused"
    NOT_FOUND = "not_found"
    NOT_OWN_CONTACT = "not_own_contact"
    TAKEN = "taken"  # the profile belongs to another chat: nothing changed
    CONFIRM = "confirm"  # bound, but the customer unsubscribed: ask before subscribing again


@dataclass(frozen=True, slots=True)
class LinkResult:
    """The outcome and, when linked, the customer."""

    outcome: LinkOutcome
    customer: Customer | None = None


def contact_phone_e164(phone: str, region: str | None) -> str | None:
    """Normalize a phone Telegram shared (often digits without '+') to E.164."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if not phone.strip().startswith("+") and len(digits) >= 11:
        found = e164("+" + digits, None)
        if found:
            return found
    return e164(phone, region)


def settle_locale(shop: Shop, customer: Customer, telegram_language: str | None) -> bool:
    """Resolve the customer's language once and put it on the profile; True when it changed.

    A locale the shop offers stays; otherwise (none yet, or one the shop does not offer) the
    chat's Telegram language, the shop's default or the shop's first language is stored.
    """
    chosen = customer_locale(shop, customer.locale, telegram_language)
    if customer.locale == chosen:
        return False
    customer.locale = chosen
    return True


async def link_by_token(
    services: Services,
    *,
    shop: Shop,
    chat_id: int,
    username: str | None,
    token: str,
    language: str | None = None,
) -> LinkResult:
    """Link the chat to the customer the deep-link token names, recording opt-in consent."""
    now = services.clock.now()
    try:
        shop_id, customer_id = read_link_token(
            secret_key=services.secret_key, token=token, now=now
        )
    except ExpiredToken:
        return LinkResult(LinkOutcome.EXPIRED)
    except BadToken:
        return LinkResult(LinkOutcome.INVALID)
    if shop_id != shop.id:
        return LinkResult(LinkOutcome.INVALID)
    async with transaction(services.sessions) as session:
        customer = await get_customer(session=session, shop_id=shop.id, customer_id=customer_id)
        if customer is None:
            return LinkResult(LinkOutcome.INVALID)
        return await _link(session, shop, customer, chat_id, username, "deep_link", now, language)


async def link_by_phone(
    services: Services,
    *,
    shop: Shop,
    chat_id: int,
    username: str | None,
    phone: str,
    first_name: str | None,
    last_name: str | None,
    language: str | None = None,
) -> LinkResult:
    """Link the chat to the shop's customer with this phone, or to a new profile with it."""
    now = services.clock.now()
    normalized = contact_phone_e164(phone, shop.country)
    if normalized is None:
        return LinkResult(LinkOutcome.NOT_FOUND)
    async with transaction(services.sessions) as session:
        customer = await find_by_phone(session=session, shop_id=shop.id, phone=normalized)
        if customer is None:
            customer = await add_customer(
                session=session,
                shop_id=shop.id,
                now=now,
                phone=normalized,
                first_name=first_name,
                last_name=last_name,
            )
        return await _link(session, shop, customer, chat_id, username, "phone", now, language)


async def _link(
    session: AsyncSession,
    shop: Shop,
    customer: Customer,
    chat_id: int,
    username: str | None,
    source: str,
    now: datetime,
    language: str | None,
) -> LinkResult:
    if customer.redacted_hash is not None:
        return LinkResult(LinkOutcome.REFUSED)
    bound = await bind_chat(
        session=session, customer=customer, chat_id=chat_id, username=username, now=now
    )
    if bound is None:
        await log_customer_event(
            session=session,
            customer=customer,
            type="telegram_link_refused",
            source=source,
            occurred_at=now,
            payload={"chat_id": chat_id, "reason": "bound_to_another_chat"},
        )
        return LinkResult(LinkOutcome.TAKEN)
    if settle_locale(shop, customer, language):
        session.add(customer)
        await session.flush()
    if customer.consent == Consent.OPTED_OUT:
        if bound:
            await _log_linked(session, customer, chat_id, source, now)
        return LinkResult(LinkOutcome.CONFIRM, customer)
    opted_in = await record_opt_in(session=session, customer=customer, source=source, now=now)
    if not (bound or opted_in):
        return LinkResult(LinkOutcome.ALREADY, customer)
    await _remind_about_open_cart(session, shop, customer, now)
    await _log_linked(session, customer, chat_id, source, now)
    return LinkResult(LinkOutcome.LINKED, customer)


async def _log_linked(
    session: AsyncSession, customer: Customer, chat_id: int, source: str, now: datetime
) -> None:
    await log_customer_event(
        session=session,
        customer=customer,
        type="telegram_linked",
        source=source,
        occurred_at=now,
        payload={"chat_id": chat_id, "locale": customer.locale},
    )


async def _remind_about_open_cart(
    session: AsyncSession, shop: Shop, customer: Customer, now: datetime
) -> None:
    """A visitor who links from the cart page expects a reminder about that cart."""
    from bot.flows.abandoned_cart import plan_for_linked_customer

    fresh = await session.get(Shop, shop.id)
    if fresh is not None:
        await plan_for_linked_customer(session=session, shop=fresh, customer=customer, now=now)
        from bot.flows.welcome import plan_welcome

        await plan_welcome(session=session, shop=fresh, customer=customer, now=now)


async def settle_chat_locale(
    services: Services, *, shop: Shop, customer: Customer, telegram_language: str | None
) -> str:
    """Store the language of a profile linked before languages were stored; return it."""
    async with transaction(services.sessions) as session:
        fresh = await session.get(Customer, customer.id)
        if (
            fresh is not None
            and fresh.shop_id == shop.id
            and settle_locale(shop, fresh, telegram_language)
        ):
            session.add(fresh)
            await log_customer_event(
                session=session,
                customer=fresh,
                type="locale_settled",
                source="telegram",
                occurred_at=services.clock.now(),
                payload={"locale": fresh.locale},
            )
        locale = fresh.locale if fresh is not None and fresh.locale else None
    customer.locale = locale or customer_locale(shop, customer.locale, telegram_language)
    return customer.locale

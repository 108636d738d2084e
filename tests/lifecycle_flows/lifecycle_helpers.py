"""Helpers for the lifecycle flow tests: a shop, a customer who links by deep link, orders
from Shopify's own samples, the periodic refresh, and what the outbox and the chat hold."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.db import transaction
from bot.flows.lifecycle import refresh_all_shops
from bot.linking import make_link_token
from bot.models import Outbox, Shop
from bot.playground import Playground
from bot.sandbox import Customer as Chat
from bot.store.codes import import_codes
from bot.store.customers import add_customer

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "shopify"
LOCALES = ["en", "ru", "uk", "pl"]
CATALOG_URL = "https://kvitka.example/catalog"
# "Olena" is Latin: Ukrainian gets no name (no sure vocative), Polish gets "Oleno"
HELLO = {
    "en": "Hello, Olena!",
    "ru": "Здравствуйте, Olena!",
    "uk": "Вітаємо!",
    "pl": "Cześć, Oleno!",
}
BUTTONS = {
    "en": ["Open catalog", "Not interested"],
    "ru": ["Открыть каталог", "Не интересует"],
    "uk": ["Відкрити каталог", "Не цікавить"],
    "pl": ["Otwórz katalog", "Nie interesuje mnie"],
}


@dataclass
class Person:
    """A customer linked to a chat: profile id, e-mail and chat."""

    id: int
    email: str
    chat: Chat
    external_id: int


async def make_shop(pg: Playground, locale: str, **settings: Any) -> Shop:
    """Create the shop (Kyiv time, UAH) with a catalog link and these settings."""
    return await pg.add_shop(
        name="Kvitka",
        country="UA",
        currency="UAH",
        default_locale=locale,
        timezone="Europe/Kyiv",
        settings={"catalog_url": CATALOG_URL, **settings},
    )


async def link(
    pg: Playground, shop: Shop, locale: str, *, user_id: int = 1001, email: str | None = None
) -> Person:
    """Create a profile and link a Telegram chat to it by the deep link, as a customer would."""
    email = email or f"c{user_id}@example.com"
    async with transaction(pg.services.sessions) as session:
        profile = await add_customer(
            session=session, shop_id=shop.id, now=pg.clock.now(), first_name="Olena", email=email
        )
    chat = pg.customer(shop, user_id=user_id, first_name="Olena", language_code=locale)
    token = make_link_token(
        secret_key=pg.services.secret_key,
        shop_id=shop.id,
        customer_id=profile.id,
        now=pg.clock.now(),
    )
    await chat.start(token)
    await pg.settle()
    return Person(profile.id, email, chat, external_id=4000 + user_id)


def order_payload(
    person: Person,
    *,
    order_id: int,
    now,
    financial_status: str = "paid",
    titles: tuple[str, ...] = ("Linen dress", "Silk scarf"),
) -> dict[str, Any]:
    """Shopify's own orders/create sample, for this customer, with these lines and status."""
    payload = copy.deepcopy(json.loads((SAMPLES / "orders" / "create.json").read_text()))
    payload["id"] = order_id
    payload["name"] = f"#{order_id}"
    payload["admin_graphql_api_id"] = f"gid://shopify/Order/{order_id}"
    payload["email"] = payload["contact_email"] = person.email
    payload["customer"]["email"] = person.email
    payload["customer"]["id"] = person.external_id
    payload["customer"]["admin_graphql_api_id"] = f"gid://shopify/Customer/{person.external_id}"
    payload["created_at"] = payload["updated_at"] = payload["processed_at"] = now.isoformat()
    payload["cancelled_at"] = None
    payload["financial_status"] = financial_status
    line = payload["line_items"][0]
    payload["line_items"] = [
        {**line, "id": order_id * 10 + n, "title": t, "name": t, "product_id": 100 + n}
        for n, t in enumerate(titles)
    ]
    return payload


async def place_order(
    pg: Playground, shop: Shop, person: Person, order_id: int, *, topic="orders/create", **kw
) -> None:
    """The shop reports an order (orders/create, or orders/paid) and the service applies it."""
    payload = order_payload(person, order_id=order_id, now=pg.clock.now(), **kw)
    assert await pg.deliver_webhook(shop, topic, payload) == 200
    await pg.process_inbox()


async def cancel_order(pg: Playground, shop: Shop, person: Person, order_id: int) -> None:
    """The shop reports the order cancelled."""
    payload = order_payload(
        person, order_id=order_id, now=pg.clock.now(), financial_status="voided"
    )
    payload["cancelled_at"] = pg.clock.now().isoformat()
    payload["cancel_reason"] = "customer"
    assert await pg.deliver_webhook(shop, "orders/cancelled", payload) == 200
    await pg.process_inbox()


async def give_codes(pg: Playground, shop: Shop, pool: str, *codes: str) -> None:
    """Load promo codes into one of the shop's pools."""
    async with transaction(pg.services.sessions) as session:
        await import_codes(
            session=session, shop_id=shop.id, pool=pool, codes=codes, now=pg.clock.now()
        )


async def refresh(pg: Playground) -> None:
    """Run the periodic whole-shop metrics refresh (and what follows it) now."""
    await refresh_all_shops(pg.services)


async def rows(pg: Playground, customer_id: int, kind: str | None = None) -> list[Outbox]:
    """Return the customer's outbox rows (of one kind), oldest first."""
    async with pg.services.sessions() as session:
        query = select(Outbox).where(Outbox.customer_id == customer_id)
        if kind:
            query = query.where(Outbox.kind == kind)
        return list((await session.scalars(query.order_by(Outbox.id))).all())


def said(person: Person, start: str) -> list[str]:
    """Return the texts of the bot's messages in the chat that start with `start`."""
    return [
        m.text or m.caption or ""
        for m in person.chat.bot_messages()
        if (m.text or m.caption or "").startswith(start)
    ]

"""What the campaign tests share: a shop with linked customers in the sandbox, and shortcuts."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select

from bot.db import transaction
from bot.models import Campaign, Consent, Customer, Outbox, Shop
from bot.playground import Playground
from bot.sandbox import Customer as Chat
from bot.store import campaigns as store
from bot.store.codes import import_codes
from bot.store.customers import add_customer

SHOPIFY = Path(__file__).resolve().parent.parent / "data" / "shopify"
LOCALES = ("en", "ru", "uk", "pl")
CATALOG = {
    "en": "Open catalog",
    "ru": "Открыть каталог",
    "uk": "Відкрити каталог",
    "pl": "Otwórz katalog",
}
NOT_INTERESTED = {
    "en": "Not interested",
    "ru": "Не интересует",
    "uk": "Не цікавить",
    "pl": "Nie interesuje mnie",
}
TEXTS = {
    "en": "{first_name|Friend}, spring sale: your code {code}",
    "ru": "{first_name|Друг}, весенняя распродажа: ваш код {code}",
    "uk": "{first_name|Друже}, весняний розпродаж: ваш код {code}",
    "pl": "{first_name|Drogi Kliencie}, wiosenna wyprzedaż: Twój kod {code}",
}


@dataclass
class Person:
    """A linked customer: the profile and the Telegram chat."""

    profile: Customer
    chat: Chat


@dataclass
class Shopfront:
    """A shop with its bot and customers, in a running service."""

    pg: Playground
    shop: Shop
    people: list[Person] = field(default_factory=list)
    _next: int = 9000

    async def crowd(self, count: int, locale: str, **fields: Any) -> list[Person]:
        """Add `count` linked, consenting customers who read `locale`, with their chats."""
        added = []
        async with transaction(self.pg.services.sessions) as session:
            for _ in range(count):
                self._next += 1
                n = self._next
                profile = await add_customer(
                    session=session,
                    shop_id=self.shop.id,
                    now=self.pg.clock.now(),
                    first_name=fields.get("first_name", f"Olena{n}"),
                    email=f"c{n}@example.com",
                    external_id=str(n),
                    locale=locale,
                    telegram_chat_id=n,
                    consent=Consent.OPTED_IN,
                    consent_at=self.pg.clock.now(),
                    linked_at=self.pg.clock.now(),
                    **{k: v for k, v in fields.items() if k != "first_name"},
                )
                chat = self.pg.customer(self.shop, user_id=n, first_name=profile.first_name or "")
                added.append(Person(profile, chat))
        self.people += added
        return added

    async def codes(self, pool: str, count: int) -> None:
        """Import `count` codes into a pool."""
        async with transaction(self.pg.services.sessions) as session:
            await import_codes(
                session=session,
                shop_id=self.shop.id,
                pool=pool,
                codes=[f"{pool.upper()}-{i:05d}" for i in range(count)],
                now=self.pg.clock.now(),
            )

    async def create(self, raw: dict[str, Any]) -> Campaign:
        """Store a campaign file as a draft."""
        async with transaction(self.pg.services.sessions) as session:
            return await store.create_campaign(
                session=session, shop_id=self.shop.id, raw=raw, now=self.pg.clock.now()
            )

    async def send(self, campaign: Campaign, **when: Any) -> store.FanOut:
        """Start the campaign and fan it out (as `nudge campaign send` does)."""
        async with transaction(self.pg.services.sessions) as session:
            found = await store.get_campaign(
                session=session, shop_id=self.shop.id, campaign_id=campaign.id
            )
            await store.start(
                session=session, shop=self.shop, campaign=found, now=self.pg.clock.now(), **when
            )
        return await store.fan_out(
            sessions=self.pg.services.sessions,
            shop_id=self.shop.id,
            campaign_id=campaign.id,
            now=self.pg.clock.now,
            chunk=7,  # many small chunks: the keyset walk is exercised
        )

    async def act(self, action: str, campaign: Campaign) -> int:
        """Pause, resume or cancel."""
        async with transaction(self.pg.services.sessions) as session:
            found = await store.get_campaign(
                session=session, shop_id=self.shop.id, campaign_id=campaign.id
            )
            return await getattr(store, action)(
                session=session, campaign=found, now=self.pg.clock.now()
            )

    async def report(self, campaign: Campaign) -> dict[str, Any]:
        """Return the campaign's report."""
        async with self.pg.services.sessions() as session:
            found = await store.get_campaign(
                session=session, shop_id=self.shop.id, campaign_id=campaign.id
            )
            return await store.report(
                session=session, shop=self.shop, campaign=found, now=self.pg.clock.now()
            )

    async def rows(self, campaign: Campaign) -> list[Outbox]:
        """Return the campaign's outbox rows."""
        async with self.pg.services.sessions() as session:
            query = select(Outbox).where(Outbox.dedupe_key.like(f"campaign:{campaign.id}:%"))  # type: ignore[attr-defined]
            return list((await session.scalars(query.order_by(Outbox.id))).all())

    async def order(self, person: Person, *, order_id: int, total: str) -> None:
        """The shop reports an order of this customer (Shopify's own sample, adjusted)."""
        payload = copy.deepcopy(json.loads((SHOPIFY / "orders" / "create.json").read_text()))
        customer_id = int(person.profile.external_id or 0)
        payload.update(
            {
                "id": order_id,
                "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
                "email": person.profile.email,
                "contact_email": person.profile.email,
                "total_price": total,
                "currency": "UAH",
                "presentment_currency": "UAH",
                "checkout_token": None,
                "cart_token": None,
                "cancelled_at": None,
            }
        )
        now = self.pg.clock.now().isoformat()
        payload["created_at"] = payload["updated_at"] = payload["processed_at"] = now
        if payload.get("customer"):
            payload["customer"].update(
                {
                    "id": customer_id,
                    "email": person.profile.email,
                    "admin_graphql_api_id": f"gid://shopify/Customer/{customer_id}",
                }
            )
        assert await self.pg.deliver_webhook(self.shop, "orders/create", payload) == 200
        await self.pg.process_inbox()


def spring_campaign(**changes: Any) -> dict[str, Any]:
    """A campaign with a code, a URL button and a text in every locale."""
    raw: dict[str, Any] = {
        "name": "Spring sale",
        "segment": {"field": "stage", "op": "=", "value": "prospect"},
        "topic": "Shoes",
        "pool": "spring",
        "messages": {
            locale: {
                "text": text,
                "buttons": [{"text": "Sale", "url": "https://kvitka.example/sale"}],
            }
            for locale, text in TEXTS.items()
        },
    }
    raw.update(changes)
    return raw


async def follow(url: str) -> tuple[int, str | None]:
    """Open a tracked link as a phone's browser would; return the status and where it leads."""
    async with aiohttp.ClientSession() as http:
        async with http.get(url, allow_redirects=False) as response:
            return response.status, response.headers.get("Location")

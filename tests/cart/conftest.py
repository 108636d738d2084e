"""A linked customer in a running service, ready to leave a cart."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.db import transaction
from bot.linking import make_link_token
from bot.models import Customer, Shop
from bot.playground import Playground
from bot.sandbox import Customer as Chat
from bot.store.customers import add_customer

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "shopify"


def shopify_sample(topic: str) -> dict[str, Any]:
    """Return Shopify's own sample payload for a topic (tests/data/shopify, see SOURCES.md)."""
    return json.loads((SAMPLES / f"{topic}.json").read_text())


@dataclass
class Story:
    """The playground, the shop, and a linked customer with their chat."""

    pg: Playground
    shop: Shop
    profile: Customer
    chat: Chat
    locale: str

    def checkout(self, *, token: str = "ck-1", items=None, updated_at=None) -> dict[str, Any]:
        """Build a checkouts/update payload from Shopify's sample for this customer."""
        payload = copy.deepcopy(shopify_sample("checkouts/update"))
        payload["token"] = token
        payload["cart_token"] = f"cart-{token}"
        payload["email"] = self.profile.email
        payload["customer"]["email"] = self.profile.email
        payload["customer"]["id"] = 4242
        payload["customer"]["admin_graphql_api_id"] = "gid://shopify/Customer/4242"
        payload["updated_at"] = (updated_at or self.pg.clock.now()).isoformat()
        payload["completed_at"] = None
        payload["abandoned_checkout_url"] = f"https://kvitka.example/checkouts/{token}/recover"
        payload["presentment_currency"] = payload["currency"] = "UAH"
        lines = items or [
            ("Linen dress", "1450.00", 1, "Dresses"),
            ("Silk scarf", "390.50", 2, "Accessories"),
        ]
        payload["line_items"] = [
            {
                **payload["line_items"][0],
                "title": title,
                "presentment_title": title,
                "price": price,
                "quantity": qty,
                "product_id": 1000 + n,
                "variant_id": 2000 + n,
                "product_type": category,
                "key": f"line-{n}",
            }
            for n, (title, price, qty, category) in enumerate(lines)
        ]
        total = sum(float(p) * q for _, p, q, _ in lines)
        payload["total_price"] = payload["subtotal_price"] = f"{total:.2f}"
        payload["total_line_items_price"] = f"{total:.2f}"
        return payload

    def order(self, *, checkout_token: str = "ck-1", order_id: int = 9001, total: str = "2231.00"):
        """Build an orders/create payload from Shopify's sample for this customer."""
        payload = copy.deepcopy(shopify_sample("orders/create"))
        payload["id"] = order_id
        payload["admin_graphql_api_id"] = f"gid://shopify/Order/{order_id}"
        payload["checkout_token"] = checkout_token
        payload["cart_token"] = f"cart-{checkout_token}"
        payload["email"] = payload["contact_email"] = self.profile.email
        if payload.get("customer"):
            payload["customer"]["email"] = self.profile.email
            payload["customer"]["id"] = 4242
            payload["customer"]["admin_graphql_api_id"] = "gid://shopify/Customer/4242"
        payload["total_price"] = total
        payload["currency"] = payload["presentment_currency"] = "UAH"
        now = self.pg.clock.now().isoformat()
        payload["created_at"] = payload["updated_at"] = payload["processed_at"] = now
        payload["cancelled_at"] = None
        return payload

    async def leave_cart(self, **kwargs) -> None:
        """The customer starts a checkout and walks away; the service stores it."""
        status = await self.pg.deliver_webhook(
            self.shop, "checkouts/update", self.checkout(**kwargs)
        )
        assert status == 200
        await self.pg.process_inbox()

    async def place_order(self, **kwargs) -> None:
        """The shop reports an order."""
        assert (
            await self.pg.deliver_webhook(self.shop, "orders/create", self.order(**kwargs)) == 200
        )
        await self.pg.process_inbox()


async def make_story(pg: Playground, locale: str, **shop_fields: Any) -> Story:
    """Create the shop, the customer's profile, and link their Telegram chat."""
    shop = await pg.add_shop(
        name="Kvitka",
        country="UA",
        currency="UAH",
        default_locale=locale,
        timezone="Europe/Kyiv",
        **shop_fields,
    )
    async with transaction(pg.services.sessions) as session:
        profile = await add_customer(
            session=session,
            shop_id=shop.id,
            now=pg.clock.now(),
            first_name="Olena",
            email="olena@example.com",
        )
    chat = pg.customer(shop, user_id=1001, first_name="Olena", language_code=locale)
    token = make_link_token(
        secret_key=pg.services.secret_key,
        shop_id=shop.id,
        customer_id=profile.id,
        now=pg.clock.now(),
    )
    await chat.start(token)
    await pg.settle()
    return Story(pg=pg, shop=shop, profile=profile, chat=chat, locale=locale)


@pytest.fixture
async def playground(database, clock):
    async with Playground(database.url, engine=database.engine, clock=clock) as pg:
        yield pg

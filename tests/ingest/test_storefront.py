"""The storefront snippet's endpoint: CORS, rate limit, the visitor's own cart, the deep link."""

from __future__ import annotations

import json

import pytest
from ingest_helpers import SECRET_KEY, fixture_json
from sqlalchemy import select

from bot.db import transaction
from bot.linking import read_link_token
from bot.models import Cart, CartItem, Customer
from bot.store.shops import update_shop

ORIGIN = "https://shop.example.com"
TOKEN = "q8ZrT2vLk0x_Wm4NcYb7Hs1d"


@pytest.fixture
async def shop(hooks, database):
    created = await hooks.shop("generic", bot_username="kvitka_bot")
    async with transaction(database.sessions) as session:
        return await update_shop(
            session=session, shop_id=created.id, key="storefront_origins", value=ORIGIN
        )


async def report(client, shop, *, token=TOKEN, origin=ORIGIN, body=None):
    payload = body or {**fixture_json("generic/storefront.cart.json"), "cart_token": token}
    async with client.post(
        f"/storefront/{shop.id}/cart",
        data=json.dumps(payload),
        headers={"Origin": origin, "Content-Type": "text/plain"},
    ) as response:
        return response.status, await response.json(), response.headers


async def test_visitor_gets_their_deep_link_and_keeps_one_profile(client, shop, database, clock):
    status, answer, headers = await report(client, shop)
    assert status == 200, answer
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    link = answer["deep_link"]
    assert link.startswith("https://t.me/kvitka_bot?start=")
    shop_id, customer_id = read_link_token(
        secret_key=SECRET_KEY, token=link.split("start=")[1], now=clock.now()
    )
    assert shop_id == shop.id
    status, _, _ = await report(client, shop)
    assert status == 200
    async with database.sessions() as session:
        (cart,) = (await session.scalars(select(Cart))).all()
        customers = (await session.scalars(select(Customer))).all()
        items = (await session.scalars(select(CartItem))).all()
    assert cart.token == "sf:" + TOKEN and cart.customer_id == customer_id
    assert [c.id for c in customers] == [customer_id]
    assert [i.title for i in items] == ["IPod Nano - 8GB"]


async def test_preflight_and_foreign_origins(client, shop):
    async with client.options(
        f"/storefront/{shop.id}/cart",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    ) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    status, _, headers = await report(client, shop, origin="https://evil.example.net")
    assert status == 403 and "Access-Control-Allow-Origin" not in headers


@pytest.mark.parametrize("token", ["c1-8d0f2b7e", "a" * 40, "abc def ghi jkl mno pqr stu"])
async def test_guessable_tokens_are_refused(client, shop, token):
    status, answer, _ = await report(client, shop, token=token)
    assert status == 400 and "cart_token" in answer["error"]


async def test_cart_urls_must_be_on_the_shop_domain(client, shop):
    body = {**fixture_json("generic/storefront.cart.json"), "cart_token": TOKEN}
    body["url"] = "https://elsewhere.example.org/cart"
    status, answer, _ = await report(client, shop, body=body)
    assert status == 400 and "domain" in answer["error"]


async def test_rate_limited_per_ip(client, shop):
    statuses = [(await report(client, shop, token="x"))[0] for _ in range(31)]
    assert statuses[:30] == [400] * 30 and statuses[30] == 429


async def test_snippet_is_served(client):
    async with client.get("/static/nudge.js") as response:
        assert response.status == 200
        assert "javascript" in response.headers["Content-Type"]
        text = await response.text()
    assert "Get cart reminders in Telegram" in text and "/storefront/" in text

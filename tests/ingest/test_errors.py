"""Every answer of POST /hooks/{platform}/{shop_id}: what a platform sees for each mistake."""

from __future__ import annotations

import json
import logging

from aiohttp.test_utils import TestClient, TestServer
from ingest_helpers import fixture_bytes, signed_headers
from sqlalchemy import func, select

from bot.app import build_app
from bot.db import create_engine
from bot.models import Inbox, Shop


async def stored(database) -> int:
    async with database.sessions() as session:
        return await session.scalar(select(func.count()).select_from(Inbox))


async def last_delivery(database, shop_id):
    async with database.sessions() as session:
        return (await session.get(Shop, shop_id)).last_delivery_at


async def test_body_over_one_mebibyte_is_413(hooks, database):
    shop = await hooks.shop("generic")
    body = b'{"id": "x", "pad": "' + b"a" * (1024 * 1024) + b'"}'
    status, answer = await hooks.post(shop, "cart.updated", body)
    assert status == 413 and "1 MiB" in answer["error"]
    assert await stored(database) == 0


async def test_unknown_shop_platform_or_wrong_platform_is_404(hooks, database):
    shop = await hooks.shop("shopify")
    body = fixture_bytes("shopify/carts/create.json")
    missing = Shop(id=shop.id + 100, platform="shopify", webhook_secret="x", name="-")
    assert (await hooks.post(missing, "carts/create", body))[0] == 404
    assert (await hooks.post(shop, "carts/create", body, platform="magento"))[0] == 404
    assert (await hooks.post(shop, "carts/create", body, platform="woocommerce"))[0] == 404
    assert await stored(database) == 0


async def test_bad_signature_is_401_even_for_compliance_topics(hooks, database):
    shop = await hooks.shop("shopify")
    for topic in ("customers/redact", "shop/redact", "customers/data_request", "orders/create"):
        body = fixture_bytes(
            f"shopify/{topic}.json" if topic != "orders/create" else "shopify/orders/create.json"
        )
        status, _ = await hooks.post(
            shop, topic, body, headers={"X-Shopify-Hmac-Sha256": "AAAA" + "=" * 40}
        )
        assert status == 401, topic
    status, _ = await hooks.post(
        shop,
        "customers/redact",
        fixture_bytes("shopify/customers/redact.json"),
        headers={"X-Shopify-Hmac-Sha256": ""},
    )
    assert status == 401
    assert await stored(database) == 0
    assert await last_delivery(database, shop.id) is None


async def test_malformed_json_is_400_with_the_reason(hooks, database):
    for platform, topic in (("shopify", "orders/create"), ("woocommerce", "order.created")):
        shop = await hooks.shop(platform)
        status, answer = await hooks.post(shop, topic, b'{"id": 1,,}')
        assert status == 400 and "not valid JSON" in answer["error"]
    assert await stored(database) == 0


async def test_generic_delivery_the_schema_refuses_is_400_naming_the_field(hooks, database):
    shop = await hooks.shop("generic")
    payload = json.loads(fixture_bytes("generic/cart.updated.json"))
    payload["data"]["colour"] = "red"
    status, answer = await hooks.post(shop, "cart.updated", payload)
    assert status == 400 and "colour" in answer["error"]
    assert await stored(database) == 0


async def test_authentic_unsupported_topic_is_200_logged_and_not_stored(hooks, database, caplog):
    shop = await hooks.shop("shopify")
    with caplog.at_level(logging.INFO, logger="bot.web.hooks"):
        status, answer = await hooks.post(
            shop, "orders/fulfilled", fixture_bytes("shopify/orders/fulfilled.json")
        )
    assert status == 200 and answer["status"] == "ignored"
    assert "orders/fulfilled" in caplog.text
    assert await stored(database) == 0
    assert await last_delivery(database, shop.id) == hooks.clock.now()


async def test_woocommerce_activation_ping_is_200_and_not_stored(hooks, client, database):
    shop = await hooks.shop("woocommerce")
    async with client.post(
        f"/hooks/woocommerce/{shop.id}",
        data=b"webhook_id=31",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as response:
        assert response.status == 200
        assert (await response.json())["status"] == "ping"
    assert await stored(database) == 0


async def test_unparseable_woocommerce_delivery_is_parked_and_answered_200(hooks, database):
    shop = await hooks.shop("woocommerce")
    status, answer = await hooks.post(shop, "order.updated", {"id": 5, "number": "5"})
    assert status == 200 and answer["status"] == "parked"
    async with database.sessions() as session:
        row = (await session.scalars(select(Inbox))).one()
    assert row.state == "parked" and "status" in row.last_error


async def test_database_down_is_503(settings, clock, tmp_path):
    engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none", pool_pre_ping=False)
    app = build_app(settings, engine=engine, clock=clock, workers=False)
    shop = Shop(id=1, platform="generic", webhook_secret="s" * 32, name="-")
    body = fixture_bytes("generic/cart.updated.json")
    try:
        async with TestClient(TestServer(app)) as client:
            async with client.post(
                "/hooks/generic/1", data=body, headers=signed_headers(shop, "cart.updated", body)
            ) as response:
                assert response.status == 503
                assert "retry" in (await response.json())["error"]
    finally:
        await engine.dispose()


async def test_store_failing_after_verification_is_503_and_stores_nothing(hooks, client, database):
    from bot.web.hooks import INTAKE

    shop = await hooks.shop("generic")
    body = fixture_bytes("generic/cart.updated.json")
    intake = client.app[INTAKE]
    await intake.shops.get(shop.id)  # the shop is known; now the database goes away
    closed = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none", pool_pre_ping=False)
    real, intake.writer._engine = intake.writer._engine, closed
    try:
        status, _ = await hooks.post(shop, "cart.updated", body)
    finally:
        intake.writer._engine = real
        await closed.dispose()
    assert status == 503
    assert await stored(database) == 0
    status, answer = await hooks.post(shop, "cart.updated", body)
    assert (status, answer["status"]) == (200, "stored")

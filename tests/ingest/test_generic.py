"""A shop on any platform sending Nudge's generic webhooks, every topic."""

from __future__ import annotations

from decimal import Decimal

from ingest_helpers import fixture_bytes, fixture_json
from sqlalchemy import select

from bot.models import Cart, CartItem, CartStatus, Customer, CustomerEvent, Order, Product


async def rows(database, model, *where):
    async with database.sessions() as session:
        return list((await session.scalars(select(model).where(*where).order_by(model.id))).all())


async def test_every_generic_topic_lands_in_the_profile(hooks, database):
    shop = await hooks.shop("generic", country="UA")
    await hooks.deliver(shop, "customer.upserted", fixture_bytes("generic/customer.upserted.json"))
    (olena,) = await rows(database, Customer)
    assert olena.email == "olena.koval@example.com"
    assert olena.phone == "+380671234567"
    assert olena.birthday.isoformat() == "1990-06-15" and olena.locale == "uk"

    await hooks.deliver(shop, "cart.updated", fixture_bytes("generic/cart.updated.json"))
    (cart,) = await rows(database, Cart)
    assert cart.token == "7f3a9c2e" and cart.customer_id == olena.id
    assert cart.status == CartStatus.OPEN and cart.total == Decimal("104.80")
    assert [i.title for i in await rows(database, CartItem)] == ["Linen shirt", "Socks"]

    await hooks.deliver(shop, "product.viewed", fixture_bytes("generic/product.viewed.json"))
    (product,) = await rows(database, Product)
    assert product.external_id == "501" and product.title == "Linen shirt"

    await hooks.deliver(shop, "order.placed", fixture_bytes("generic/order.placed.json"))
    (order,) = await rows(database, Order)
    assert order.customer_id == olena.id and order.discount_codes == ["SPRING10"]
    (cart,) = await rows(database, Cart)
    assert cart.status == CartStatus.CONVERTED

    await hooks.deliver(shop, "order.cancelled", fixture_bytes("generic/order.cancelled.json"))
    (order,) = await rows(database, Order)
    assert order.status == "cancelled"

    kinds = [e.type for e in await rows(database, CustomerEvent)]
    assert kinds == [
        "customer_updated",
        "cart_updated",
        "product_viewed",
        "order_placed",
        "stage_changed",  # prospect -> lapsed: ten months after it, past 3x the default 90 days
        "order_cancelled",
        "stage_changed",  # back to prospect: a cancelled order counts for nothing
    ]


async def test_order_without_token_converts_the_customers_open_cart(hooks, database):
    shop = await hooks.shop("generic")
    await hooks.deliver(shop, "cart.updated", fixture_bytes("generic/cart.updated.json"))
    order = fixture_json("generic/order.placed.json")
    del order["data"]["cart_token"]
    order["data"]["customer"] = {"email": "OLENA.KOVAL@example.com"}
    await hooks.deliver(shop, "order.placed", order)
    (cart,) = await rows(database, Cart)
    assert cart.status == CartStatus.CONVERTED


async def test_out_of_order_cart_updates_keep_the_newest(hooks, database):
    shop = await hooks.shop("generic")
    newer = fixture_json("generic/cart.updated.json")
    newer["id"], newer["occurred_at"] = "evt-new", "2025-05-01T12:30:00Z"
    newer["data"]["items"] = newer["data"]["items"][:1]
    older = fixture_json("generic/cart.updated.json")
    await hooks.deliver(shop, "cart.updated", newer)
    await hooks.deliver(shop, "cart.updated", older)
    (cart,) = await rows(database, Cart)
    assert len(await rows(database, CartItem)) == 1
    assert cart.platform_updated_at.isoformat() == "2025-05-01T12:30:00+00:00"
    assert len(await rows(database, CustomerEvent)) == 1

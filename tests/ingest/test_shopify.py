"""A Shopify shop's webhooks, from checkout to order, through the HTTP endpoint and the worker."""

from __future__ import annotations

import copy
from decimal import Decimal

from ingest_helpers import fixture_bytes, fixture_json
from sqlalchemy import func, select

from bot.models import Cart, CartItem, CartStatus, Customer, CustomerEvent, Inbox, Order, Shop


async def one(database, query):
    async with database.sessions() as session:
        return (await session.scalars(query)).one()


async def count(database, model, *where):
    async with database.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def test_customer_checkout_and_order_build_the_profile(hooks, database):
    shop = await hooks.shop("shopify", country="US")
    await hooks.deliver(shop, "customers/create", fixture_bytes("shopify/customers/create.json"))
    bob = await one(database, select(Customer).where(Customer.external_id == "706405506930370084"))
    assert bob.email == "bob@biller.com" and bob.first_name == "Bob"

    await hooks.deliver(shop, "checkouts/create", fixture_bytes("shopify/checkouts/create.json"))
    cart = await one(database, select(Cart).where(Cart.token == "123123123"))
    assert cart.status == CartStatus.OPEN
    assert cart.recovery_url.startswith("https://checkout.local/")
    john = await one(database, select(Customer).where(Customer.id == cart.customer_id))
    assert john.email == "john@example.com"
    assert await count(database, CartItem, CartItem.cart_id == cart.id) == 2

    order = fixture_json("shopify/orders/create.json")
    order["checkout_token"] = "123123123"
    await hooks.deliver(shop, "orders/create", order)
    stored = await one(database, select(Order))
    assert stored.external_id == "820982911946154508"
    assert stored.total == Decimal("404.95") and stored.currency == "USD"
    cart = await one(database, select(Cart).where(Cart.token == "123123123"))
    assert cart.status == CartStatus.CONVERTED and cart.order_id == stored.id
    async with database.sessions() as session:
        shop = await session.get(Shop, shop.id)
    assert shop.last_delivery_at is not None
    types = [e.type for e in (await _events(database))]
    assert {"customer_updated", "checkout_started", "cart_updated", "order_placed"} <= set(types)


async def _events(database):
    async with database.sessions() as session:
        return list(
            (await session.scalars(select(CustomerEvent).order_by(CustomerEvent.id))).all()
        )


async def test_duplicate_delivery_answers_200_and_changes_nothing(hooks, database):
    shop = await hooks.shop("shopify")
    body = fixture_bytes("shopify/checkouts/update.json")
    first = await hooks.deliver(shop, "checkouts/update", body, event_id="evt-1")
    again = await hooks.deliver(shop, "checkouts/update", body, event_id="evt-1")
    assert first == {"status": "stored"} and again == {"status": "duplicate"}
    assert await count(database, Inbox) == 1
    assert await count(database, CustomerEvent) == 2  # checkout_started + cart_updated, once


async def test_stale_checkout_update_does_not_overwrite_newer_state(hooks, database):
    shop = await hooks.shop("shopify")
    newer = fixture_json("shopify/checkouts/update.json")
    newer["updated_at"] = "2022-01-02T10:00:00Z"
    newer["line_items"] = newer["line_items"][:1]
    older = copy.deepcopy(fixture_json("shopify/checkouts/update.json"))
    older["updated_at"] = "2022-01-02T09:00:00Z"
    await hooks.deliver(shop, "checkouts/update", newer)
    await hooks.deliver(shop, "checkouts/update", older)
    cart = await one(database, select(Cart))
    assert await count(database, CartItem, CartItem.cart_id == cart.id) == 1
    assert cart.platform_updated_at.isoformat() == "2022-01-02T10:00:00+00:00"

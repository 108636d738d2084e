"""A WooCommerce shop: customers, products, unpaid and paid orders, redeliveries."""

from __future__ import annotations

import copy
from decimal import Decimal

from ingest_helpers import fixture_bytes, fixture_json
from sqlalchemy import func, select

from bot.models import Cart, CartStatus, Customer, CustomerEvent, Inbox, Order, OrderItem, Product


async def rows(database, model, *where):
    async with database.sessions() as session:
        return list((await session.scalars(select(model).where(*where))).all())


async def test_customers_products_and_orders(hooks, database):
    shop = await hooks.shop("woocommerce", country="US")
    await hooks.deliver(
        shop, "customer.created", fixture_bytes("woocommerce/customer.created.json")
    )
    await hooks.deliver(
        shop, "customer.updated", fixture_bytes("woocommerce/customer.updated.json")
    )
    (john,) = await rows(database, Customer)
    assert (john.external_id, john.email, john.first_name) == (
        "25",
        "john.doe@example.com",
        "James",
    )
    assert john.phone is None  # "(555) 555-5555" is not a real number

    await hooks.deliver(shop, "product.created", fixture_bytes("woocommerce/product.created.json"))
    (product,) = await rows(database, Product)
    assert (product.external_id, product.title, product.price) == (
        "794",
        "Premium Quality",
        Decimal("21.99"),
    )

    await hooks.deliver(shop, "order.created", fixture_bytes("woocommerce/order.created.json"))
    await hooks.deliver(shop, "order.updated", fixture_bytes("woocommerce/order.updated.json"))
    (order,) = await rows(database, Order)
    assert order.external_id == "727" and order.status == "placed"
    assert len(await rows(database, OrderItem, OrderItem.order_id == order.id)) >= 2


async def test_stale_customer_update_does_not_overwrite(hooks, database):
    shop = await hooks.shop("woocommerce")
    await hooks.deliver(
        shop, "customer.updated", fixture_bytes("woocommerce/customer.updated.json")
    )
    await hooks.deliver(
        shop, "customer.created", fixture_bytes("woocommerce/customer.created.json")
    )
    (john,) = await rows(database, Customer)
    assert john.first_name == "James"  # the older "John" arrived late and changed nothing
    events = await rows(database, CustomerEvent)
    assert len(events) == 1


async def test_unpaid_order_is_a_cart_that_the_paid_order_converts(hooks, database):
    shop = await hooks.shop("woocommerce")
    pending = fixture_json("woocommerce/order.created.json")
    pending["status"] = "pending"
    pending["date_modified_gmt"] = "2017-03-22T19:00:00"
    await hooks.deliver(shop, "order.created", pending)
    (cart,) = await rows(database, Cart)
    assert cart.status == CartStatus.OPEN and cart.customer_id is not None

    await hooks.deliver(shop, "order.updated", fixture_bytes("woocommerce/order.updated.json"))
    (cart,) = await rows(database, Cart)
    (order,) = await rows(database, Order)
    assert cart.status == CartStatus.CONVERTED and cart.order_id == order.id


async def test_redelivery_with_a_new_delivery_id_is_a_duplicate(hooks, database):
    shop = await hooks.shop("woocommerce")
    body = fixture_bytes("woocommerce/order.created.json")
    assert (await hooks.post(shop, "order.created", body, event_id="1"))[1]["status"] == "stored"
    assert (await hooks.post(shop, "order.created", body, event_id="2"))[1][
        "status"
    ] == "duplicate"
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Inbox)) == 1


async def test_deleted_then_late_created_order_stays_cancelled(hooks, database):
    shop = await hooks.shop("woocommerce")
    created = fixture_json("woocommerce/order.created.json")
    deleted = copy.deepcopy(created)
    deleted["date_modified_gmt"] = "2017-03-23T08:00:00"
    await hooks.deliver(shop, "order.deleted", deleted)
    await hooks.deliver(shop, "order.created", created)
    (order,) = await rows(database, Order)
    assert order.status == "cancelled"

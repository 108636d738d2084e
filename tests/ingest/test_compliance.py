"""Compliance topics: redact a customer, export a customer, erase a shop, uninstall."""

from __future__ import annotations

from datetime import timedelta

from ingest_helpers import fixture_bytes, fixture_json
from privacy_helpers import (
    BOT_TOKEN,
    EMAIL,
    PERSONAL,
    leftovers,
    messenger_traces,
    refusing_customer_updates,
    shopify_checkout,
    shopify_customer,
    shopify_order,
    shopify_redact,
    stored_bytes,
)
from sqlalchemy import func, select

from bot.models import (
    Cart,
    Click,
    Customer,
    CustomerEvent,
    FsmRecord,
    Inbox,
    InboxState,
    Order,
    Outbox,
    OutboxState,
    Shop,
)
from bot.store.privacy import export_customer


async def rows(database, model, *where):
    async with database.sessions() as session:
        return list((await session.scalars(select(model).where(*where).order_by(model.id))).all())


def checkout_of(email: str, customer_id: int) -> dict:
    payload = fixture_json("shopify/checkouts/create.json")
    payload["customer"]["id"] = customer_id
    payload["customer"].pop("admin_graphql_api_id", None)
    payload["customer"]["email"] = email
    return payload


async def test_customer_redact_erases_and_stays_redacted(hooks, database):
    shop = await hooks.shop("shopify")
    await hooks.deliver(shop, "checkouts/create", checkout_of("john@example.com", 191167))
    order = fixture_json("shopify/orders/create.json")
    order["id"], order["admin_graphql_api_id"] = 299938, "gid://shopify/Order/299938"
    order["customer"] = {"id": 191167, "email": "john@example.com"}
    await hooks.deliver(shop, "orders/create", order)
    (john,) = await rows(database, Customer)
    assert john.email == "john@example.com"

    await hooks.deliver(shop, "customers/redact", fixture_bytes("shopify/customers/redact.json"))
    (john,) = await rows(database, Customer, Customer.id == john.id)
    assert (john.email, john.external_id, john.first_name, john.phone) == (None,) * 4
    assert john.redacted_hash and len(john.redacted_hash) == 64
    assert await rows(database, CustomerEvent) == []
    assert await rows(database, Cart) == []
    (kept,) = await rows(database, Order)
    assert kept.customer_id is None

    again = checkout_of("John@Example.com", 191167)
    again["token"], again["updated_at"] = "456456456", "2022-02-01T00:00:00Z"
    await hooks.deliver(shop, "checkouts/create", again)
    live = await rows(database, Customer, Customer.redacted_hash.is_(None))
    assert live == []
    (cart,) = await rows(database, Cart)
    assert cart.customer_id is None
    assert await rows(database, CustomerEvent) == []


async def test_data_request_and_export_cover_everything_stored(hooks, database):
    shop = await hooks.shop("shopify")
    await hooks.deliver(shop, "checkouts/create", checkout_of("john@example.com", 191167))
    await hooks.deliver(
        shop, "customers/data_request", fixture_bytes("shopify/customers/data_request.json")
    )
    (john,) = await rows(database, Customer)
    async with database.sessions() as session:
        export = await export_customer(session=session, shop_id=shop.id, customer_id=john.id)
    assert export["profile"]["email"] == "john@example.com"
    assert [c["token"] for c in export["carts"]] == ["123123123"]
    assert len(export["carts"][0]["items"]) == 2
    assert {e["type"] for e in export["events"]} == {
        "checkout_started",
        "cart_updated",
        "data_requested",
    }
    assert export["orders"] == [] and export["exclusions"] == [] and export["outbox"] == []


async def test_shop_redact_deletes_the_shop_and_its_data(hooks, database):
    shop = await hooks.shop("shopify")
    other = await hooks.shop("shopify")
    await hooks.deliver(shop, "checkouts/create", checkout_of("john@example.com", 1))
    await hooks.deliver(other, "checkouts/create", checkout_of("ann@example.com", 2))
    await hooks.deliver(shop, "shop/redact", fixture_bytes("shopify/shop/redact.json"))
    async with database.sessions() as session:
        assert await session.get(Shop, shop.id) is None
        assert await session.get(Shop, other.id) is not None
        for model in (Customer, Cart, CustomerEvent, Inbox):
            where = model.shop_id == shop.id
            assert await session.scalar(select(func.count()).select_from(model).where(where)) == 0
    assert len(await rows(database, Customer)) == 1


async def test_app_uninstalled_marks_the_shop(hooks, database):
    shop = await hooks.shop("shopify")
    await hooks.deliver(shop, "app/uninstalled", fixture_bytes("shopify/app/uninstalled.json"))
    async with database.sessions() as session:
        assert (await session.get(Shop, shop.id)).uninstalled_at is not None


async def test_customer_redact_leaves_no_personal_data_in_the_database_files(
    hooks, database, clock
):
    shop = await hooks.shop("shopify", bot_token=BOT_TOKEN)
    await hooks.deliver(shop, "customers/create", shopify_customer())
    await hooks.deliver(shop, "checkouts/create", shopify_checkout())
    await hooks.deliver(shop, "orders/create", shopify_order())
    (olesia,) = await rows(database, Customer)
    await messenger_traces(database, olesia.id, clock)
    async with refusing_customer_updates(database):  # a delivery fails, then is parked
        update = shopify_customer("2026-03-01T13:00:00Z", first_name="Lesia")
        status, _ = await hooks.post(shop, "customers/update", update)
        assert status == 200
        for _ in range(3):
            await hooks.worker.run_until_idle()
            clock.advance(timedelta(hours=1))
    (parked,) = await rows(database, Inbox, Inbox.state == InboxState.PARKED)
    async with database.sessions() as session:  # as an error stored before parameters were hidden
        row = await session.get(Inbox, parked.id)
        row.last_error = f"IntegrityError: [parameters: ('{EMAIL}', 'Zaboronska')]"
        await session.commit()
    assert leftovers(await stored_bytes(database)) == list(PERSONAL), "the test stores them all"

    await hooks.deliver(shop, "customers/redact", shopify_redact(shop, [880001]))

    assert leftovers(await stored_bytes(database)) == []
    (olesia,) = await rows(database, Customer, Customer.id == olesia.id)
    assert olesia.redacted_hash and olesia.telegram_chat_id is None and olesia.attributes == {}
    (order,) = await rows(database, Order)
    assert (order.customer_id, order.cart_token, str(order.total)) == (None, None, "404.9500")
    assert await rows(database, Cart) == []
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(FsmRecord)) == 0
    (nps,) = await rows(database, CustomerEvent)
    assert (nps.type, nps.customer_id, nps.payload) == ("nps_answered", None, {"score": 9})
    sent, cancelled = await rows(database, Outbox)
    assert (sent.state, sent.payload, sent.last_error) == (OutboxState.SENT, {}, None)
    assert cancelled.state == OutboxState.CANCELLED and cancelled.payload == {}
    (click,) = await rows(database, Click)
    assert click.customer_id is None and click.outbox_id == sent.id
    (parked,) = await rows(database, Inbox, Inbox.id == parked.id)
    assert parked.state == InboxState.PARKED and parked.last_error.startswith("IntegrityError")

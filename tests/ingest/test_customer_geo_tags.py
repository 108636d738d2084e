"""Country, city and tags from every platform reach the profile and the segments that read them.

Signed deliveries through /hooks, applied by the worker, on SQLite and PostgreSQL; segment
counts by `bot.store.segments.count_audience` (one SQL query).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from ingest_helpers import fixture_json
from sqlalchemy import func, select

from bot.models import Customer, CustomerTag, Inbox
from bot.store.segments import count_audience
from integrations import ADAPTERS, ParseContext
from integrations.base import InvalidValue

NOW = datetime(2025, 6, 1, tzinfo=UTC)


async def profile(database, **where) -> Customer:
    async with database.sessions() as session:
        query = select(Customer).filter_by(**where)
        (row,) = (await session.scalars(query)).all()
        return row


async def tags_of(database, customer_id: int) -> set[str]:
    async with database.sessions() as session:
        query = select(CustomerTag.tag).where(CustomerTag.customer_id == customer_id)
        return set((await session.scalars(query)).all())


async def count(database, shop, condition: dict) -> int:
    """Count everyone a condition holds (reachable or not: nobody here is linked)."""
    async with database.sessions() as session:
        definition = {**condition, "reachable_only": False}
        return await count_audience(
            session=session, shop_id=shop.id, definition=definition, now=NOW
        )


def shopify_customer(updated_at: str, **changes) -> dict:
    """Shopify's customers/update sample (it has no `tags` key in API 2026-04) with changes."""
    return {**fixture_json("shopify/customers/update.json"), "updated_at": updated_at, **changes}


# --- adapters (pure) --------------------------------------------------------------------------


def test_shopify_customer_tags_are_normalized_and_their_absence_is_not_an_empty_set():
    ctx = ParseContext(received_at=NOW)
    (event,) = ADAPTERS["shopify"].parse("customers/update", {}, shopify_customer("2025-01-01"))
    assert (event.customer.country, event.customer.city, event.customer.tags) == (
        "CA",
        "Ottawa",
        None,
    )
    payload = shopify_customer("2025-01-01", tags=" VIP,  Wholesale   Buyer,vip,, ")
    (event,) = ADAPTERS["shopify"].parse("customers/update", {}, payload, ctx)
    assert event.customer.tags == ("vip", "wholesale buyer")
    (event,) = ADAPTERS["shopify"].parse("customers/update", {}, dict(payload, tags=""), ctx)
    assert event.customer.tags == ()


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        ("x" * 201, "customers/update: customer.tags.0: is 201 characters long; at most 200"),
        (",".join(f"t{n}" for n in range(251)), "customer.tags: has 251 tags; at most 250"),
        ("ok,bad\x00tag", "customer.tags.1: contains a NUL character"),
        ("ok,\ud800", "customer.tags.1: contains a lone surrogate"),
    ],
)
def test_shopify_tags_no_column_can_hold_refuse_the_delivery_with_the_reason(tags, reason):
    payload = shopify_customer("2025-01-01", tags=tags)
    with pytest.raises(InvalidValue, match=reason.replace(".", r"\.")):
        ADAPTERS["shopify"].parse("customers/update", {}, payload, ParseContext(received_at=NOW))


def test_orders_name_the_buyers_place_from_the_customer_then_shipping_then_billing():
    ctx = ParseContext(received_at=NOW)
    order = fixture_json("shopify/orders/create.json")
    (placed,) = ADAPTERS["shopify"].parse("orders/create", {}, order, ctx)
    assert (placed.customer.country, placed.customer.city) == ("CA", "Ottawa")
    order["customer"]["default_address"] = None
    (placed,) = ADAPTERS["shopify"].parse("orders/create", {}, order, ctx)
    assert (placed.customer.country, placed.customer.city) == ("US", "Shippington")
    woo = dict(fixture_json("woocommerce/order.updated.json"), shipping={"country": ""})
    placed = ADAPTERS["woocommerce"].parse("order.updated", {}, woo, ctx)[0]
    assert (placed.customer.country, placed.customer.city) == ("US", "San Francisco")


# --- end to end -------------------------------------------------------------------------------


async def test_shopify_customer_place_and_tags_are_kept_and_replaced(hooks, database):
    shop = await hooks.shop("shopify", country="UA")
    await hooks.deliver(shop, "customers/create", fixture_json("shopify/customers/create.json"))
    bob = await profile(database, email="bob@biller.com")
    assert (bob.country, bob.city) == ("CA", "Ottawa")
    assert await tags_of(database, bob.id) == set()
    assert await count(database, shop, {"field": "country", "op": "=", "value": "ca"}) == 1
    assert await count(database, shop, {"field": "city", "op": "=", "value": "Ottawa"}) == 1

    update = shopify_customer("2025-01-01T10:00:00Z", tags="VIP, Wholesale")
    await hooks.deliver(shop, "customers/update", update)
    assert await tags_of(database, bob.id) == {"vip", "wholesale"}
    assert await count(database, shop, {"field": "tags", "op": "contains", "value": "VIP"}) == 1

    # the whole set is replaced; a move to Lviv replaces country and city together
    moved = dict(update, default_address={"country_code": "UA", "city": "Львів"})
    moved.update(updated_at="2025-01-02T10:00:00Z", tags="wholesale, Retail")
    await hooks.deliver(shop, "customers/update", moved)
    bob = await profile(database, id=bob.id)
    assert (bob.country, bob.city) == ("UA", "Львів")
    assert await tags_of(database, bob.id) == {"wholesale", "retail"}
    assert await count(database, shop, {"field": "tags", "op": "contains", "value": "vip"}) == 0
    assert await count(database, shop, {"field": "country", "op": "=", "value": "UA"}) == 1
    assert await count(database, shop, {"field": "city", "op": "=", "value": "Львів"}) == 1
    assert await count(database, shop, {"field": "country", "op": "=", "value": "CA"}) == 0

    # an older update arriving late changes nothing; a payload without `tags` keeps them
    await hooks.deliver(shop, "customers/update", dict(update, tags="stale"))
    assert await tags_of(database, bob.id) == {"wholesale", "retail"}
    untagged = {k: v for k, v in moved.items() if k != "tags"}
    await hooks.deliver(shop, "customers/update", dict(untagged, updated_at="2025-01-03"))
    assert await tags_of(database, bob.id) == {"wholesale", "retail"}
    # "" means no tags at all
    await hooks.deliver(shop, "customers/update", dict(moved, updated_at="2025-01-04", tags=""))
    assert await tags_of(database, bob.id) == set()
    assert await count(database, shop, {"field": "tags", "op": "exists", "value": False}) == 1


async def test_an_order_fills_the_place_only_while_the_profile_has_none(hooks, database):
    shop = await hooks.shop("shopify", country="UA")
    order = fixture_json("shopify/orders/create.json")
    await hooks.deliver(shop, "orders/create", order)
    john = await profile(database, email="john@example.com")
    assert (john.country, john.city) == ("CA", "Ottawa")
    elsewhere = json.loads(json.dumps(order))
    elsewhere["customer"]["default_address"].update(country_code="PL", city="Kraków")
    elsewhere.update(id=1, admin_graphql_api_id="gid://shopify/Order/1")
    await hooks.deliver(shop, "orders/create", elsewhere)
    john = await profile(database, id=john.id)
    assert (john.country, john.city) == ("CA", "Ottawa")  # an order only fills gaps


async def test_a_country_that_is_no_iso_code_is_dropped_with_a_log_line(hooks, database, caplog):
    caplog.set_level("INFO", logger="bot.store.commerce")
    shop = await hooks.shop("shopify", country="UA")
    exemplar = fixture_json("shopify/exemplars/2025-04_customers_1.json")  # "example string"
    await hooks.deliver(shop, "customers/create", exemplar)
    customer = await profile(database, external_id="123")
    assert customer.country is None and customer.city == "example string"
    assert "country 'example string' of customer 123 is not an ISO 3166-1 alpha-2" in caplog.text

    update = shopify_customer("2025-01-01", default_address={"country_code": "XX", "city": "Y"})
    await hooks.deliver(shop, "customers/update", update)
    bob = await profile(database, email="bob@biller.com")
    assert (bob.country, bob.city) == (None, "Y")


async def test_woocommerce_customer_and_order_places(hooks, database):
    shop = await hooks.shop("woocommerce", country="PL")
    await hooks.deliver(
        shop, "customer.created", fixture_json("woocommerce/customer.created.json")
    )
    john = await profile(database, external_id="25")
    assert (john.country, john.city) == ("US", "San Francisco")
    assert await count(database, shop, {"field": "country", "op": "=", "value": "US"}) == 1
    assert await count(database, shop, {"field": "city", "op": "contains", "value": "franc"}) == 1


async def test_generic_customer_place_and_tags(hooks, database):
    shop = await hooks.shop("generic", country="UA")
    data = {
        "id": "1001",
        "email": "olena@example.com",
        "country": "ua",
        "city": " Київ ",
        "tags": ["VIP", " vip ", "Оптовий   покупець"],
    }
    body = {"id": "evt-c-1", "occurred_at": "2025-05-01T09:30:00+03:00", "data": data}
    await hooks.deliver(shop, "customer.upserted", body)
    olena = await profile(database, external_id="1001")
    assert (olena.country, olena.city) == ("UA", "Київ")
    assert await tags_of(database, olena.id) == {"vip", "оптовий покупець"}
    assert await count(database, shop, {"field": "country", "op": "=", "value": "UA"}) == 1
    assert await count(database, shop, {"field": "city", "op": "=", "value": "Київ"}) == 1
    condition = {"field": "tags", "op": "contains", "value": "ОПТОВИЙ ПОКУПЕЦЬ"}
    assert await count(database, shop, condition) == 1
    condition = {"field": "tags", "op": "in", "value": ["retail", "VIP"]}
    assert await count(database, shop, condition) == 1

    # an order's customer never touches tags, and fills no place the profile already has
    order = {
        "id": "evt-o-1",
        "occurred_at": "2025-05-02T09:30:00Z",
        "data": {
            "order_id": "9001",
            "items": [{"product_id": "1", "title": "Shirt", "price": "10", "quantity": 1}],
            "total": "10",
            "currency": "UAH",
            "customer": {"id": "1001", "country": "PL", "city": "Kraków", "tags": []},
        },
    }
    await hooks.deliver(shop, "order.placed", order)
    olena = await profile(database, external_id="1001")
    assert (olena.country, olena.city) == ("UA", "Київ")
    assert await tags_of(database, olena.id) == {"vip", "оптовий покупець"}

    # the next upsert replaces the set; [] clears it
    body = {"id": "evt-c-2", "occurred_at": "2025-05-03T09:30:00Z", "data": {**data, "tags": []}}
    await hooks.deliver(shop, "customer.upserted", body)
    assert await tags_of(database, olena.id) == set()


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("country", "Ukraine", "data.country: must be an ISO 3166-1 alpha-2 country code"),
        ("country", "XX", "data.country: must be an ISO 3166-1 alpha-2 country code"),
        ("city", "x" * 201, "data.city: must be a string of 1-200 characters"),
        ("tags", "vip", "data.tags: must be a list of strings"),
        ("tags", ["ok", "x" * 201], "data.tags: tag 1: is 201 characters long; at most 200"),
        ("tags", [f"t{n}" for n in range(251)], "data.tags: has 251 tags; at most 250"),
        ("tags", ["bad\x00"], "data.tags: tag 0: contains a NUL character"),
    ],
)
async def test_generic_refuses_what_it_cannot_store_and_writes_nothing(
    hooks, database, field, value, reason
):
    shop = await hooks.shop("generic", country="UA")
    data = {"id": "1001", field: value}
    body = {"id": "evt-bad", "occurred_at": "2025-05-01T09:30:00Z", "data": data}
    status, answer = await hooks.post(shop, "customer.upserted", body)
    assert status == 400 and reason in answer["error"], answer
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 0
        assert await session.scalar(select(func.count()).select_from(Inbox)) == 0


async def test_shopify_tags_no_column_holds_park_the_update_and_keep_the_profile(hooks, database):
    shop = await hooks.shop("shopify", country="UA")
    await hooks.deliver(shop, "customers/update", shopify_customer("2025-01-01", tags="vip"))
    bob = await profile(database, email="bob@biller.com")
    status, answer = await hooks.post(
        shop, "customers/update", shopify_customer("2025-01-02", tags="ok," + "x" * 300)
    )
    assert (status, answer) == (200, {"status": "parked"})
    assert await tags_of(database, bob.id) == {"vip"}
    async with database.sessions() as session:
        row = (await session.scalars(select(Inbox).where(Inbox.state == "parked"))).one()
    assert "customer.tags.1: is 300 characters long; at most 200" in row.last_error

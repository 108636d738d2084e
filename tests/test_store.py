"""The profile store keeps exact money, aware times, and one shop's data apart from another's."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bot.db import transaction
from bot.models import Cart, CartItem, Customer, Exclusion, Order
from bot.store.customers import (
    add_customer,
    find_by_chat,
    find_by_email,
    get_customer,
    list_events,
    record_event,
)
from bot.store.shops import ShopNotFound, create_shop, get_shop, update_shop


async def test_money_and_time_round_trip_exactly(database, clock):
    async with transaction(database.sessions) as session:
        shop = await create_shop(
            session=session, name="Kvitka", platform="shopify", now=clock.now()
        )
        cart = Cart(
            shop_id=shop.id,
            token="c1",
            total=Decimal("1234.56"),
            currency="UAH",
            created_at=clock.now(),
            updated_at=clock.now(),
        )
        session.add(cart)
        await session.flush()
        for price in ("0.10", "0.20", "1999.99"):
            session.add(CartItem(shop_id=shop.id, cart_id=cart.id, price=Decimal(price)))
    async with database.sessions() as session:
        stored = (await session.scalars(select(Cart))).one()
        total = await session.scalar(select(func.sum(CartItem.price)))
    assert stored.total == Decimal("1234.56")
    assert total == Decimal("2000.29")
    assert stored.created_at == clock.now()
    assert stored.created_at.tzinfo is not None


async def test_naive_datetime_is_refused(database, clock):
    with pytest.raises(Exception, match="naive datetime"):
        async with transaction(database.sessions) as session:
            await create_shop(
                session=session, name="X", platform="generic", now=datetime(2026, 1, 1)
            )


async def test_customers_are_found_by_chat_and_email_within_their_shop_only(database, clock):
    async with transaction(database.sessions) as session:
        a = await create_shop(session=session, name="A", platform="shopify", now=clock.now())
        b = await create_shop(session=session, name="B", platform="woocommerce", now=clock.now())
        olena = await add_customer(
            session=session,
            shop_id=a.id,
            now=clock.now(),
            email=" Olena@Example.COM ",
            telegram_chat_id=1001,
            birthday=date(1990, 3, 12),
        )
        await add_customer(
            session=session,
            shop_id=b.id,
            now=clock.now(),
            email="olena@example.com",
            telegram_chat_id=1001,
        )
    async with database.sessions() as session:
        assert (await find_by_chat(session=session, shop_id=a.id, chat_id=1001)).id == olena.id
        found = await find_by_email(session=session, shop_id=a.id, email="OLENA@example.com")
        assert found.id == olena.id and found.email == "olena@example.com"
        assert found.birthday == date(1990, 3, 12)
        assert await get_customer(session=session, shop_id=b.id, customer_id=olena.id) is None


async def test_one_chat_links_to_one_customer_per_shop(database, clock):
    async with transaction(database.sessions) as session:
        shop = await create_shop(session=session, name="A", platform="shopify", now=clock.now())
        await add_customer(session=session, shop_id=shop.id, now=clock.now(), telegram_chat_id=7)
    with pytest.raises(IntegrityError):
        async with transaction(database.sessions) as session:
            await add_customer(
                session=session, shop_id=shop.id, now=clock.now(), telegram_chat_id=7
            )


async def test_exclusion_topic_is_unique_per_customer(database, clock):
    async with transaction(database.sessions) as session:
        shop = await create_shop(session=session, name="A", platform="shopify", now=clock.now())
        customer = await add_customer(session=session, shop_id=shop.id, now=clock.now())
        session.add(
            Exclusion(
                shop_id=shop.id, customer_id=customer.id, topic="shoes", created_at=clock.now()
            )
        )
    with pytest.raises(IntegrityError):
        async with transaction(database.sessions) as session:
            session.add(
                Exclusion(
                    shop_id=shop.id, customer_id=customer.id, topic="shoes", created_at=clock.now()
                )
            )


async def test_events_are_listed_newest_first(database, clock):
    async with transaction(database.sessions) as session:
        shop = await create_shop(session=session, name="A", platform="shopify", now=clock.now())
        customer = await add_customer(session=session, shop_id=shop.id, now=clock.now())
        for n in range(3):
            await record_event(
                session=session,
                shop_id=shop.id,
                customer_id=customer.id,
                type=f"t{n}",
                source="test",
                occurred_at=clock.now() + timedelta(minutes=n),
                payload={"n": n, "text": "привіт"},
            )
    async with database.sessions() as session:
        events = await list_events(session=session, shop_id=shop.id, customer_id=customer.id)
    assert [e.type for e in events] == ["t2", "t1", "t0"]
    assert events[0].payload == {"n": 2, "text": "привіт"}


async def test_shop_settings_are_validated_and_typed(database, clock):
    async with transaction(database.sessions) as session:
        shop = await create_shop(session=session, name="A", platform="shopify", now=clock.now())
        await update_shop(
            session=session, shop_id=shop.id, key="abandoned_cart_delay", value="90s"
        )
        await update_shop(session=session, shop_id=shop.id, key="currency", value="pln")
        with pytest.raises(ValueError, match="not a duration"):
            await update_shop(
                session=session, shop_id=shop.id, key="followup_delay", value="later"
            )
        with pytest.raises(ShopNotFound):
            await get_shop(session=session, shop_id=999)
    async with database.sessions() as session:
        stored = await get_shop(session=session, shop_id=shop.id)
    assert stored.settings == {"abandoned_cart_delay": "90s"}
    assert stored.currency == "PLN"


async def test_orders_keep_discount_codes_and_deleting_a_shop_deletes_its_rows(database, clock):
    async with transaction(database.sessions) as session:
        shop = await create_shop(session=session, name="A", platform="shopify", now=clock.now())
        customer = await add_customer(session=session, shop_id=shop.id, now=clock.now())
        session.add(
            Order(
                shop_id=shop.id,
                customer_id=customer.id,
                external_id="1001",
                total=Decimal("10"),
                discount_codes=["SPRING-ABC123"],
                placed_at=datetime(2026, 3, 1, tzinfo=UTC),
                updated_at=clock.now(),
            )
        )
    async with database.sessions() as session:
        order = (await session.scalars(select(Order))).one()
        assert order.discount_codes == ["SPRING-ABC123"]
    async with transaction(database.sessions) as session:
        await session.delete(await get_shop(session=session, shop_id=shop.id))
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 0
        assert await session.scalar(select(func.count()).select_from(Order)) == 0

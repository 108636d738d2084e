"""Promo codes: imported or generated, each issued to one customer at most, even under races."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from bot.db import transaction
from bot.models import PromoCode
from bot.store.codes import (
    CodeError,
    check_pattern,
    import_codes,
    issue_code,
    make_code,
    pool_status,
)
from bot.store.customers import add_customer
from bot.store.shops import create_shop


async def _shop_with_customers(database, clock, n):
    async with transaction(database.sessions) as session:
        shop = await create_shop(
            session=session, name="Kvitka", platform="shopify", now=clock.now()
        )
        customers = [
            await add_customer(session=session, shop_id=shop.id, now=clock.now()) for _ in range(n)
        ]
    return shop, customers


async def test_imported_codes_are_issued_once_and_a_customer_keeps_theirs(database, clock):
    shop, (olena, taras) = await _shop_with_customers(database, clock, 2)
    async with transaction(database.sessions) as session:
        added, skipped = await import_codes(
            session=session,
            shop_id=shop.id,
            pool="cart",
            now=clock.now(),
            codes=["CART-AAA1", "CART-AAA2", "CART-AAA1", " "],
        )
    assert (added, skipped) == (2, 1)
    async with transaction(database.sessions) as session:
        first = await issue_code(
            session=session, shop_id=shop.id, pool="cart", customer_id=olena.id, now=clock.now()
        )
        again = await issue_code(
            session=session, shop_id=shop.id, pool="cart", customer_id=olena.id, now=clock.now()
        )
        second = await issue_code(
            session=session, shop_id=shop.id, pool="cart", customer_id=taras.id, now=clock.now()
        )
        nothing = await issue_code(
            session=session,
            shop_id=shop.id,
            pool="cart",
            customer_id=taras.id + 1000,
            now=clock.now(),
        )
        status = await pool_status(session=session, shop_id=shop.id)
    assert first == again == "CART-AAA1"
    assert second == "CART-AAA2"
    assert nothing is None, "an exhausted pool gives no code, never an empty one"
    assert status[0].available == 0 and status[0].issued == 2


async def test_importing_into_another_shop_is_separate_and_bad_codes_are_refused(database, clock):
    shop, _ = await _shop_with_customers(database, clock, 0)
    async with transaction(database.sessions) as session:
        other = await create_shop(session=session, name="B", platform="generic", now=clock.now())
        await import_codes(
            session=session, shop_id=shop.id, pool="p", codes=["SAME1"], now=clock.now()
        )
        added, _ = await import_codes(
            session=session, shop_id=other.id, pool="p", codes=["SAME1"], now=clock.now()
        )
        assert added == 1
        with pytest.raises(CodeError, match="not a usable promo code"):
            await import_codes(
                session=session,
                shop_id=shop.id,
                pool="p",
                codes=["ok-code", "bad code!"],
                now=clock.now(),
            )


async def test_generated_codes_follow_the_pattern(database, clock):
    from bot.store.codes import ensure_pool

    shop, customers = await _shop_with_customers(database, clock, 5)
    async with transaction(database.sessions) as session:
        await ensure_pool(
            session=session,
            shop_id=shop.id,
            name="followup",
            now=clock.now(),
            pattern=check_pattern("spring-xxxxxx"),
        )
        codes = [
            await issue_code(
                session=session,
                shop_id=shop.id,
                pool="followup",
                customer_id=c.id,
                now=clock.now(),
            )
            for c in customers
        ]
    assert len(set(codes)) == 5
    assert all(c.startswith("SPRING-") and len(c) == 13 for c in codes)
    assert not any(ch in "01ILO" for c in codes for ch in c[7:])


def test_patterns_need_enough_random_characters():
    assert check_pattern("SALE-XXXX") == "SALE-XXXX"
    for bad in ("SALE-XX", "SALE XXXXX", "", "ŻÓŁW-XXXX"):
        with pytest.raises(CodeError):
            check_pattern(bad)
    assert make_code("AB-XXXX")[:3] == "AB-"


async def test_concurrent_dispatchers_never_issue_the_same_code(database, clock):
    shop, customers = await _shop_with_customers(database, clock, 30)
    async with transaction(database.sessions) as session:
        await import_codes(
            session=session,
            shop_id=shop.id,
            pool="cart",
            now=clock.now(),
            codes=[f"RACE-{n:04d}" for n in range(20)],
        )

    async def one(customer):
        async with transaction(database.sessions) as session:
            code = await issue_code(
                session=session,
                shop_id=shop.id,
                pool="cart",
                customer_id=customer.id,
                now=clock.now(),
            )
            await asyncio.sleep(0.01)  # hold the row lock while others try
            return code

    results = await asyncio.gather(*(one(c) for c in customers))
    issued = [r for r in results if r is not None]
    assert len(issued) == 20 and len(set(issued)) == 20
    async with database.sessions() as session:
        owners = await session.scalar(
            select(func.count(func.distinct(PromoCode.customer_id))).where(
                PromoCode.customer_id.is_not(None)
            )
        )
    assert owners == 20

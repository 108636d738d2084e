"""The segment language: every field and operator, nesting, `not`, saved segments, errors.

Each case is counted by the database (SQLite and PostgreSQL) against a small hand-built shop
whose answers are known: the people below, at NOW.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from bot.db import transaction
from bot.models import (
    Cart,
    CartStatus,
    Click,
    Consent,
    CustomerEvent,
    CustomerMetrics,
    CustomerTag,
    Exclusion,
    Order,
    OrderItem,
    OrderStatus,
    Outbox,
    OutboxState,
    Product,
)
from bot.segments import FIELDS, SegmentError, check
from bot.store.customers import add_customer
from bot.store.segments import (
    count_audience,
    delete_segment,
    preview_audience,
    save_segment,
)
from bot.store.shops import create_shop

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def linked(chat: int, **fields):
    return {"telegram_chat_id": chat, "consent": Consent.OPTED_IN, "linked_at": NOW - 10 * DAY} | (
        fields
    )


# name -> profile, metrics, extras. Olena: active VIP dress buyer; Taras: at-risk; Anna: a
# Polish prospect with an open cart; Ivan: lapsed, opted out; Oksana: new, blocked the bot.
PEOPLE = {
    "olena": (
        linked(1, locale="uk", country="UA", city="Kyiv", birthday=date(1990, 3, 8), nps_score=10),
        {
            "orders_count": 5,
            "revenue": Decimal("12000.50"),
            "aov": Decimal("2400.10"),
            "first_order_at": NOW - 400 * DAY,
            "last_order_at": NOW - 12 * DAY,
            "expected_next_order_at": NOW + 20 * DAY,
            "rfm_r": 5,
            "rfm_f": 4,
            "rfm_m": 5,
            "rfm_cell": "545",
            "stage": "active",
        },
    ),
    "taras": (
        linked(2, locale="uk", country="UA", city="Lviv", birthday=date(1985, 11, 2), nps_score=3),
        {
            "orders_count": 2,
            "revenue": Decimal("900"),
            "aov": Decimal("450"),
            "first_order_at": NOW - 200 * DAY,
            "last_order_at": NOW - 90 * DAY,
            "expected_next_order_at": NOW - 30 * DAY,
            "rfm_r": 2,
            "rfm_f": 2,
            "rfm_m": 2,
            "rfm_cell": "222",
            "stage": "at_risk",
        },
    ),
    "anna": (linked(3, locale="pl", country="PL", city="Kraków"), None),
    "ivan": (
        {"telegram_chat_id": 4, "consent": Consent.OPTED_OUT, "locale": "ru", "country": "KZ"},
        {
            "orders_count": 1,
            "revenue": Decimal("100"),
            "aov": Decimal("100"),
            "first_order_at": NOW - 500 * DAY,
            "last_order_at": NOW - 500 * DAY,
            "rfm_r": 1,
            "rfm_f": 1,
            "rfm_m": 1,
            "rfm_cell": "111",
            "stage": "lapsed",
        },
    ),
    "oksana": (
        linked(5, locale="uk", unreachable_since=NOW - DAY),
        {
            "orders_count": 1,
            "revenue": Decimal("300"),
            "aov": Decimal("300"),
            "first_order_at": NOW - 3 * DAY,
            "last_order_at": NOW - 3 * DAY,
            "stage": "new",
        },
    ),
}


@pytest.fixture
async def shop(database):
    """Build the shop above; return (database, shop id, ids by name)."""
    async with transaction(database.sessions) as session:
        shop = await create_shop(session=session, name="Kvitka", platform="generic", now=NOW)
        ids = {}
        for name, (profile, metrics) in PEOPLE.items():
            customer = await add_customer(
                session=session, shop_id=shop.id, now=NOW, first_name=name.title(), **profile
            )
            ids[name] = customer.id
            if metrics is not None:
                session.add(
                    CustomerMetrics(
                        customer_id=customer.id, shop_id=shop.id, refreshed_at=NOW, **metrics
                    )
                )
        s = shop.id
        session.add_all(
            [
                CustomerTag(shop_id=s, customer_id=ids["olena"], tag="VIP"),
                CustomerTag(shop_id=s, customer_id=ids["olena"], tag="wholesale"),
                CustomerTag(shop_id=s, customer_id=ids["taras"], tag="vip"),
                Exclusion(shop_id=s, customer_id=ids["taras"], topic="Dresses", created_at=NOW),
                Cart(shop_id=s, customer_id=ids["anna"], token="c1", status=CartStatus.OPEN),
                Cart(shop_id=s, customer_id=ids["olena"], token="c2", status=CartStatus.CONVERTED),
                Product(shop_id=s, external_id="p1", title="Linen dress", category="Dresses"),
                Product(shop_id=s, external_id="p2", title="Scarf", category="Accessories"),
            ]
        )
        await session.flush()
        dress = Order(
            shop_id=s, customer_id=ids["olena"], external_id="o1", status=OrderStatus.PLACED
        )
        scarf = Order(
            shop_id=s, customer_id=ids["taras"], external_id="o2", status=OrderStatus.CANCELLED
        )
        session.add_all([dress, scarf])
        await session.flush()
        session.add_all(
            [
                OrderItem(shop_id=s, order_id=dress.id, title="Linen dress", category="Dresses"),
                OrderItem(shop_id=s, order_id=scarf.id, title="Scarf", category="Accessories"),
                CustomerEvent(
                    shop_id=s,
                    customer_id=ids["anna"],
                    type="product_viewed",
                    source="storefront",
                    payload={"product_id": "p2"},
                    occurred_at=NOW - DAY,
                ),
            ]
        )
        sent = Outbox(
            shop_id=s,
            customer_id=ids["olena"],
            kind="promo",
            dedupe_key="x1",
            due_at=NOW - 2 * DAY,
            state=OutboxState.SENT,
            sent_at=NOW - 2 * DAY,
        )
        session.add(sent)
        await session.flush()
        session.add(
            Click(
                shop_id=s,
                outbox_id=sent.id,
                customer_id=ids["olena"],
                target="catalog",
                clicked_at=NOW - 2 * DAY + timedelta(hours=1),
            )
        )
    return database, shop.id, ids


async def members(shop, definition) -> set[str]:
    """Return who (by name) the definition holds; the count query must agree."""
    from sqlalchemy import select

    from bot.models import Customer
    from bot.segments import audience
    from bot.store.segments import scope_for

    database, shop_id, ids = shop
    async with database.sessions() as session:
        scope = await scope_for(session=session, shop_id=shop_id, now=NOW)
        found = set((await session.scalars(audience(definition, scope))).all())
        names = {name for name, cid in ids.items() if cid in found}
        total = await count_audience(
            session=session, shop_id=shop_id, definition=definition, now=NOW
        )
        assert total == len(found)
        assert (await session.scalar(select(Customer.id).limit(1))) is not None
    return names


EVERYONE = {"olena", "taras", "anna", "ivan", "oksana"}
CASES = [
    # field, op, value, who (reachable_only false, so the whole shop is visible)
    ("locale", "=", "uk", {"olena", "taras", "oksana"}),
    ("locale", "!=", "uk", {"anna", "ivan"}),
    ("locale", "in", ["pl", "ru"], {"anna", "ivan"}),
    ("locale", "not_in", ["uk"], {"anna", "ivan"}),
    ("locale", "exists", True, EVERYONE),
    ("country", "=", "ua", {"olena", "taras"}),
    ("country", "!=", "UA", {"anna", "ivan", "oksana"}),
    ("country", "exists", False, {"oksana"}),
    ("city", "contains", "kr", {"anna"}),
    ("city", "=", "Kyiv", {"olena"}),
    ("tags", "contains", "vip", {"olena", "taras"}),
    ("tags", "=", "Wholesale", {"olena"}),
    ("tags", "in", ["wholesale", "none"], {"olena"}),
    ("tags", "not_in", ["vip"], {"anna", "ivan", "oksana"}),
    ("tags", "exists", False, {"anna", "ivan", "oksana"}),
    ("consent", "=", "opted_out", {"ivan"}),
    ("stage", "=", "prospect", {"anna"}),
    ("stage", "in", ["active", "new"], {"olena", "oksana"}),
    ("stage", "!=", "lapsed", {"olena", "taras", "anna", "oksana"}),
    ("rfm_r", ">=", 2, {"olena", "taras"}),
    ("rfm_m", "<", 2, {"ivan"}),
    ("rfm_f", "in", [4, 1], {"olena", "ivan"}),
    ("rfm_cell", "=", "545", {"olena"}),
    ("orders_count", "=", 0, {"anna"}),
    ("orders_count", ">", 1, {"olena", "taras"}),
    ("orders_count", "<=", 1, {"anna", "ivan", "oksana"}),
    ("revenue", ">", "899.99", {"olena", "taras"}),
    ("revenue", ">=", 12000.5, {"olena"}),
    ("aov", "<", 300, {"ivan"}),
    ("aov", "exists", False, {"anna"}),
    ("last_order_days", ">", 30, {"taras", "ivan"}),
    ("last_order_days", "<=", 12, {"olena", "oksana"}),
    ("last_order_days", "=", 12, {"olena"}),
    ("last_order_days", "<", 12, {"oksana"}),
    ("last_order_days", ">=", 90, {"taras", "ivan"}),
    ("last_order_days", "!=", 3, {"olena", "taras", "anna", "ivan"}),
    ("last_order_days", "in", [3, 90], {"taras", "oksana"}),
    ("first_order_days", ">", 365, {"olena", "ivan"}),
    ("expected_next_order_in_days", "<", 0, {"taras"}),
    ("expected_next_order_in_days", "=", 20, {"olena"}),
    ("expected_next_order_in_days", ">=", 20, {"olena"}),
    ("expected_next_order_in_days", "<=", 19, {"taras"}),
    ("bought_category", "contains", "dresses", {"olena"}),
    ("bought_category", "=", "Accessories", set()),  # Taras's order was cancelled
    ("bought_category", "not_in", ["Dresses"], {"taras", "anna", "ivan", "oksana"}),
    ("viewed_category", "=", "accessories", {"anna"}),
    ("cart_open", "=", True, {"anna"}),
    ("cart_open", "=", False, {"olena", "taras", "ivan", "oksana"}),
    ("cart_open", "!=", True, {"olena", "taras", "ivan", "oksana"}),
    ("birthday_month", "=", 3, {"olena"}),
    ("birthday_month", "in", [11, 12], {"taras"}),
    ("nps", ">=", 9, {"olena"}),
    ("nps", "<=", 6, {"taras"}),
    ("nps", "exists", False, {"anna", "ivan", "oksana"}),
    ("not_interested_topic", "contains", "dresses", {"taras"}),
    ("not_interested_topic", "!=", "Dresses", {"olena", "anna", "ivan", "oksana"}),
    ("linked_days", ">=", 10, {"olena", "taras", "anna", "oksana"}),
    ("linked_days", "exists", False, {"ivan"}),
    ("last_message_days", "<=", 2, {"olena"}),
    ("last_message_days", "exists", False, {"taras", "anna", "ivan", "oksana"}),
    ("last_click_days", "<", 2, {"olena"}),
    ("last_click_days", "=", 1, {"olena"}),
]


@pytest.mark.parametrize(("field", "op", "value", "who"), CASES)
async def test_each_field_and_operator_selects_the_right_customers(shop, field, op, value, who):
    definition = {"field": field, "op": op, "value": value, "reachable_only": False}
    assert await members(shop, definition) == who


def test_the_cases_cover_every_field_and_every_operator():
    assert {case[0] for case in CASES} >= set(FIELDS) - {"segment"}
    assert {case[1] for case in CASES} == {
        "=",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "in",
        "not_in",
        "contains",
        "exists",
    }


async def test_by_default_only_customers_a_promo_can_reach_are_in_the_audience(shop):
    # Ivan opted out, Oksana blocked the bot
    assert await members(shop, {"all": []}) == {"olena", "taras", "anna"}
    assert await members(shop, {"all": [], "reachable_only": False}) == EVERYONE


async def test_nesting_and_not_are_exact_complements(shop):
    uk_or_vip = {
        "any": [
            {"field": "locale", "op": "=", "value": "pl"},
            {
                "all": [
                    {"field": "tags", "op": "contains", "value": "vip"},
                    {"field": "rfm_r", "op": ">=", "value": 4},
                ]
            },
        ]
    }
    assert await members(shop, uk_or_vip | {"reachable_only": False}) == {"olena", "anna"}
    negated = {"not": uk_or_vip, "reachable_only": False}
    assert await members(shop, negated) == EVERYONE - {"olena", "anna"}
    # a missing value: not (rfm_r >= 2) holds those without a score too
    no_score = {"not": {"field": "rfm_r", "op": ">=", "value": 2}, "reachable_only": False}
    assert await members(shop, no_score) == {"anna", "ivan", "oksana"}
    assert await members(shop, {"any": [], "reachable_only": False}) == set()


async def test_saved_segments_nest_and_refuse_cycles_and_dangling_deletes(shop):
    database, shop_id, _ids = shop
    async with transaction(database.sessions) as session:
        await save_segment(
            session=session,
            shop_id=shop_id,
            name="vip",
            definition={"field": "tags", "op": "contains", "value": "vip"},
            now=NOW,
        )
        await save_segment(
            session=session,
            shop_id=shop_id,
            name="vip at risk",
            definition={
                "all": [
                    {"field": "segment", "op": "=", "value": "vip"},
                    {"field": "stage", "op": "=", "value": "at_risk"},
                ]
            },
            now=NOW,
        )
    assert await members(shop, {"field": "segment", "op": "=", "value": "vip at risk"}) == {
        "taras"
    }
    assert await members(shop, {"field": "segment", "op": "!=", "value": "vip"}) == {"anna"}
    async with transaction(database.sessions) as session:
        with pytest.raises(SegmentError, match="refers to itself"):
            await save_segment(
                session=session,
                shop_id=shop_id,
                name="vip",
                definition={"field": "segment", "op": "=", "value": "vip at risk"},
                now=NOW,
            )
        with pytest.raises(SegmentError, match="refers to 'vip'"):
            await delete_segment(session=session, shop_id=shop_id, name="vip")
        assert await delete_segment(session=session, shop_id=shop_id, name="vip at risk")


async def test_preview_counts_and_splits_by_locale_and_stage(shop):
    database, shop_id, _ids = shop
    async with database.sessions() as session:
        preview = await preview_audience(
            session=session,
            shop_id=shop_id,
            definition={"field": "country", "op": "exists", "value": True},
            now=NOW,
            sample=2,
        )
    assert preview.count == 3  # Olena, Taras, Anna (Ivan opted out)
    assert preview.by_locale == {"uk": 2, "pl": 1}
    assert preview.by_stage == {"active": 1, "at_risk": 1, "prospect": 1}
    assert [p["name"] for p in preview.sample] == ["Olena", "Taras"]


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"field": "stag", "op": "=", "value": "new"}, "unknown field 'stag'"),
        ({"field": "stage", "op": "~", "value": "new"}, "unknown operator '~'"),
        ({"field": "stage", "op": "<", "value": "new"}, "does not take '<'"),
        ({"field": "stage", "op": "=", "value": "gone"}, "'gone' is not one of"),
        ({"field": "rfm_r", "op": "=", "value": 7}, "expected 1 to 5"),
        ({"field": "orders_count", "op": "=", "value": "many"}, "expected a number"),
        ({"field": "orders_count", "op": "=", "value": True}, "expected a number"),
        ({"field": "revenue", "op": ">", "value": "1e400"}, "out of range"),
        # beyond what the columns hold: refused here, never a database error (a 500)
        ({"field": "aov", "op": ">", "value": 10**11}, "amount out of range"),
        ({"field": "orders_count", "op": ">", "value": 2**31}, "number out of range"),
        ({"field": "last_order_days", "op": "in", "value": [1, 10**9]}, "days is out of range"),
        ({"field": "locale", "op": "in", "value": []}, "expected a list"),
        ({"field": "city", "op": "=", "value": "Ky\x00iv"}, "without NUL"),
        ({"field": "city", "op": "=", "value": "\ud800"}, "not valid Unicode"),
        ({"field": "segment", "op": "=", "value": "nope"}, "no saved segment named 'nope'"),
        ({"all": {"field": "locale"}}, "all: expected a list"),
        ({"all": [{"any": [{"field": "x", "op": "=", "value": 1}]}]}, "all[0].any[0]: unknown"),
        ({"all": [], "any": []}, "stands alone"),
        ({"field": "locale", "op": "=", "value": "uk", "extra": 1}, "unknown key 'extra'"),
        ({"field": "locale", "op": "="}, "a value is missing"),
        ({"reachable_only": "no", "all": []}, "reachable_only"),
        ([], "is a JSON object"),
    ],
)
def test_a_definition_that_cannot_compile_is_refused_naming_the_place(definition, message):
    with pytest.raises(SegmentError) as caught:
        check(definition)
    assert message in str(caught.value)


def test_deep_nesting_is_refused_not_a_recursion_error():
    node: dict = {"field": "locale", "op": "=", "value": "uk"}
    for _ in range(5000):
        node = {"not": node}
    with pytest.raises(SegmentError, match="nested deeper"):
        check(node)

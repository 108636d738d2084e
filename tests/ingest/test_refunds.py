"""Refunds from every platform: counted once per refund id, net of revenue, full ones count for
nothing, and a refund of an order not seen yet waits for it. Signed deliveries through /hooks,
applied by the worker, on SQLite and PostgreSQL.

Hand-computed figures are in the comments next to each assertion.
"""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from ingest_helpers import fixture_json
from sqlalchemy import func, select

from bot.inbox_worker import InboxWorker
from bot.models import Customer, CustomerEvent, CustomerMetrics, Order, OrderRefund
from integrations import ADAPTERS, OrderCancelled, OrderPlaced, OrderRefunded, ParseContext
from integrations.base import InvalidValue, ParseError

SHOPIFY_ORDER_ID = "820982911946154500"  # what refunds/create.json names (see its SOURCES)
RECEIVED = datetime(2025, 6, 1, tzinfo=UTC)


async def order_row(database, external_id: str) -> Order | None:
    async with database.sessions() as session:
        query = select(Order).where(Order.external_id == external_id)
        return (await session.scalars(query)).first()


async def metrics(database) -> CustomerMetrics:
    async with database.sessions() as session:
        (row,) = (await session.scalars(select(CustomerMetrics))).all()
        return row


async def refunds(database) -> list[OrderRefund]:
    async with database.sessions() as session:
        return list((await session.scalars(select(OrderRefund).order_by(OrderRefund.id))).all())


async def events(database, kind: str) -> list[dict]:
    async with database.sessions() as session:
        query = select(CustomerEvent.payload).where(CustomerEvent.type == kind)
        return list((await session.scalars(query.order_by(CustomerEvent.id))).all())


def shopify_order() -> dict:
    """Shopify's orders/create sample with the id its refunds/create sample refers to.

    The scraped samples rounded 64-bit ids (…508 became …500 in `id`, while the gid kept …508);
    the refund sample names the rounded one, so the order is given that id here.
    """
    order = fixture_json("shopify/orders/create.json")
    order["id"] = int(SHOPIFY_ORDER_ID)
    order["admin_graphql_api_id"] = f"gid://shopify/Order/{SHOPIFY_ORDER_ID}"
    return order


def generic(topic_id: str, when: str, data: dict) -> dict:
    return {"id": topic_id, "occurred_at": when, "data": data}


def generic_order(order_id: str, total: str, when: str) -> dict:
    return generic(
        f"evt-order-{order_id}-{when}",
        when,
        {
            "order_id": order_id,
            "items": [{"product_id": "501", "title": "Shirt", "price": total, "quantity": 1}],
            "total": total,
            "currency": "EUR",
            "customer": {"id": "1001", "email": "olena@example.com"},
        },
    )


def generic_refund(order_id: str, refund_id: str, amount: str, when: str, **extra) -> dict:
    data = {"order_id": order_id, "refund_id": refund_id, "amount": amount, **extra}
    return generic(f"evt-refund-{refund_id}-{when}", when, data)


# --- adapters (pure) --------------------------------------------------------------------------


def test_shopify_refund_sample_reads_as_the_money_its_successful_refund_transactions_gave():
    ctx = ParseContext(received_at=RECEIVED)
    payload = fixture_json("shopify/refunds/create.json")
    (event,) = ADAPTERS["shopify"].parse("refunds/create", {}, payload, ctx)
    assert event == OrderRefunded(
        order_id=SHOPIFY_ORDER_ID,
        refund_id="890088186047892319",  # the gid's exact id, not the rounded `id`
        amount=Decimal("85.00"),  # 75.00 + 10.00 (transactions), not the lines' 414.95
        currency=None,
        reason="Things were damaged",
        occurred_at=datetime(2022, 1, 1, tzinfo=UTC),  # processed_at 2021-12-31T19:00-05:00
    )
    failed = copy.deepcopy(payload)
    failed["transactions"][1]["status"] = "failure"
    (event,) = ADAPTERS["shopify"].parse("refunds/create", {}, failed, ctx)
    assert event.amount == Decimal("75.00")
    unknown = {k: v for k, v in payload.items() if k != "transactions"}
    (event,) = ADAPTERS["shopify"].parse("refunds/create", {}, unknown, ctx)
    assert event.amount is None  # not said: never guessed from the lines
    with pytest.raises(ParseError, match="refunds/create: the refund has no 'order_id'"):
        ADAPTERS["shopify"].parse("refunds/create", {}, {"id": 5}, ctx)


def test_shopify_order_payloads_carry_their_refunds_too():
    ctx = ParseContext(received_at=RECEIVED)
    order = shopify_order()
    order["refunds"] = [fixture_json("shopify/refunds/create.json"), {"note": "no id"}]
    placed, refund = ADAPTERS["shopify"].parse("orders/paid", {}, order, ctx)
    assert isinstance(placed, OrderPlaced) and isinstance(refund, OrderRefunded)
    assert (refund.order_id, refund.amount) == (SHOPIFY_ORDER_ID, Decimal("85.00"))
    cancelled, refund = ADAPTERS["shopify"].parse("orders/cancelled", {}, order, ctx)
    assert isinstance(cancelled, OrderCancelled) and refund.refund_id == "890088186047892319"


def test_woocommerce_refunds_are_read_from_the_order_with_their_negative_totals():
    ctx = ParseContext(received_at=RECEIVED)
    # The REST controller writes each refund as {id, reason, total: "-" + amount}
    # (woocommerce/woocommerce, WC_REST_Orders_Controller::get_order_refunds / get_refunds).
    refunds = [{"id": 730, "reason": "Scratched", "total": "-10.00"}, {"id": 0, "total": "-1"}]
    order = dict(fixture_json("woocommerce/order.updated.json"), refunds=refunds)
    placed, refund = ADAPTERS["woocommerce"].parse("order.updated", {}, order, ctx)
    assert isinstance(placed, OrderPlaced)
    assert refund == OrderRefunded(
        order_id="727",
        refund_id="730",
        amount=Decimal("10.00"),
        currency="USD",
        reason="Scratched",
        occurred_at=datetime(2017, 3, 22, 19, 30, 35, tzinfo=UTC),
    )
    refunded = dict(order, status="refunded")
    cancelled, refund = ADAPTERS["woocommerce"].parse("order.updated", {}, refunded, ctx)
    assert isinstance(cancelled, OrderCancelled) and cancelled.reason == "refunded"
    assert refund.full is True


# --- end to end -------------------------------------------------------------------------------


async def test_shopify_refund_counts_once_however_often_it_is_delivered(hooks, database):
    hooks.clock.set(datetime(2022, 1, 2, tzinfo=UTC))
    shop = await hooks.shop("shopify", country="CA")
    await hooks.deliver(shop, "orders/create", shopify_order())
    assert (await metrics(database)).revenue == Decimal("404.95")

    refund = json.dumps(fixture_json("shopify/refunds/create.json")).encode()
    await hooks.deliver(shop, "refunds/create", refund, event_id="refund-event-1")
    status, answer = await hooks.post(shop, "refunds/create", refund, event_id="refund-event-1")
    assert (status, answer["status"]) == (200, "duplicate")
    # another event id for the same refund (a re-sent webhook): the refund id decides
    await hooks.deliver(shop, "refunds/create", refund, event_id="refund-event-2")
    # and the same refund listed inside a later order payload
    order = shopify_order()
    order["refunds"] = [fixture_json("shopify/refunds/create.json")]
    await hooks.deliver(shop, "orders/paid", order)

    (row,) = await refunds(database)
    assert (row.external_id, row.amount, row.full) == ("890088186047892319", Decimal("85"), False)
    stored = await order_row(database, SHOPIFY_ORDER_ID)
    assert (stored.status, stored.refunded_total) == ("placed", Decimal("85.0000"))
    m = await metrics(database)
    assert (m.orders_count, m.revenue, m.aov) == (1, Decimal("319.95"), Decimal("319.95"))
    assert len(await events(database, "order_refunded")) == 1


async def test_partial_and_full_refunds_move_revenue_orders_and_stage(hooks, database):
    hooks.clock.set(datetime(2025, 5, 20, tzinfo=UTC))
    shop = await hooks.shop("generic", country="UA")
    await hooks.deliver(shop, "order.placed", generic_order("A", "100.00", "2025-05-01T10:00:00Z"))
    await hooks.deliver(shop, "order.placed", generic_order("B", "50.00", "2025-05-11T10:00:00Z"))
    m = await metrics(database)
    assert (m.orders_count, m.revenue, m.aov, m.stage) == (2, Decimal(150), Decimal(75), "active")

    # partial: 30 back on A → revenue 150 - 30 = 120 over 2 orders, AOV 60
    await hooks.deliver(
        shop, "order.refunded", generic_refund("A", "r-a1", "30.00", "2025-05-12T09:00:00Z")
    )
    m = await metrics(database)
    assert (m.orders_count, m.revenue, m.aov) == (2, Decimal(120), Decimal(60))

    # full, said by the platform: B counts for nothing → A alone: 1 order, 100 - 30 = 70
    await hooks.deliver(
        shop,
        "order.refunded",
        generic_refund("B", "r-b1", "50.00", "2025-05-13T09:00:00Z", full=True),
    )
    m = await metrics(database)
    assert (m.orders_count, m.revenue, m.aov, m.stage) == (1, Decimal(70), Decimal(70), "new")
    assert (await order_row(database, "B")).status == "refunded"

    # B delivered again later (a paid update): still refunded, still nothing
    await hooks.deliver(shop, "order.placed", generic_order("B", "50.00", "2025-05-14T10:00:00Z"))
    assert (await order_row(database, "B")).status == "refunded"
    assert (await metrics(database)).orders_count == 1

    # refunds reaching A's total make it full without saying so: 30 + 70 = 100
    await hooks.deliver(
        shop, "order.refunded", generic_refund("A", "r-a2", "70.00", "2025-05-15T09:00:00Z")
    )
    m = await metrics(database)
    assert (m.orders_count, m.revenue, m.stage) == (0, Decimal(0), "prospect")
    a = await order_row(database, "A")
    assert (a.status, a.refunded_total) == ("refunded", Decimal(100))
    moves = await events(database, "stage_changed")
    assert moves[-1] == {"from": "new", "to": "prospect"}


async def test_refund_of_an_unknown_order_waits_for_the_order(hooks, database, caplog):
    hooks.clock.set(datetime(2025, 5, 20, tzinfo=UTC))
    shop = await hooks.shop("generic", country="UA")
    caplog.set_level("INFO", logger="bot.inbox_worker")
    await hooks.deliver(
        shop, "order.refunded", generic_refund("C", "r-c1", "20.00", "2025-05-02T09:00:00Z")
    )
    assert await order_row(database, "C") is None
    assert len(await refunds(database)) == 1
    assert "refund r-c1 of order C, not known yet, is kept for it" in caplog.text

    await hooks.deliver(shop, "order.placed", generic_order("C", "80.00", "2025-05-01T10:00:00Z"))
    c = await order_row(database, "C")
    assert (c.status, c.refunded_total) == ("placed", Decimal(20))
    m = await metrics(database)
    assert (m.orders_count, m.revenue) == (1, Decimal(60))  # 80 - 20


async def test_refund_in_another_currency_is_kept_but_not_subtracted(hooks, database):
    hooks.clock.set(datetime(2025, 5, 20, tzinfo=UTC))
    shop = await hooks.shop("generic", country="UA")
    await hooks.deliver(shop, "order.placed", generic_order("D", "80.00", "2025-05-01T10:00:00Z"))
    await hooks.deliver(
        shop,
        "order.refunded",
        generic_refund("D", "r-d1", "20.00", "2025-05-02T09:00:00Z", currency="USD"),
    )
    assert (await order_row(database, "D")).refunded_total == Decimal(0)
    assert (await metrics(database)).revenue == Decimal(80)


async def test_woocommerce_partial_then_full_refund(hooks, database):
    hooks.clock.set(datetime(2017, 3, 23, tzinfo=UTC))
    shop = await hooks.shop("woocommerce", country="US")
    order = fixture_json("woocommerce/order.updated.json")  # completed, 29.35 USD
    await hooks.deliver(shop, "order.updated", order)
    partial = dict(
        order,
        date_modified_gmt="2017-03-22T20:00:00",
        refunds=[{"id": 730, "reason": "Scratched", "total": "-10.00"}],
    )
    await hooks.deliver(shop, "order.updated", partial)
    m = await metrics(database)
    assert (m.orders_count, m.revenue) == (1, Decimal("19.35"))  # 29.35 - 10.00

    full = dict(
        partial,
        status="refunded",
        date_modified_gmt="2017-03-22T21:00:00",
        refunds=[*partial["refunds"], {"id": 731, "reason": "", "total": "-19.35"}],
    )
    await hooks.deliver(shop, "order.updated", full)
    status, answer = await hooks.post(shop, "order.updated", full)
    assert (status, answer["status"]) == (200, "duplicate")
    m = await metrics(database)
    assert (m.orders_count, m.revenue, m.stage) == (0, Decimal(0), "prospect")
    rows = await refunds(database)
    assert [(r.external_id, r.amount, r.full) for r in rows] == [
        ("730", Decimal(10), True),
        ("731", Decimal("19.35"), True),
    ]
    stored = await order_row(database, "727")
    assert (stored.status, stored.refunded_total) == ("cancelled", Decimal("29.35"))
    assert len(await events(database, "order_refunded")) == 2


async def test_generic_refund_without_its_id_is_refused_and_nothing_is_written(hooks, database):
    shop = await hooks.shop("generic", country="UA")
    body = generic("evt-x", "2025-05-02T09:00:00Z", {"order_id": "9", "amount": "1"})
    status, answer = await hooks.post(shop, "order.refunded", body)
    assert status == 400
    assert "order.refunded: data.refund_id: Field required" in answer["error"]
    body = dict(generic_refund("9", "r\x00", "1", "2025-05-02T09:00:00Z"), id="evt-nul")
    status, answer = await hooks.post(shop, "order.refunded", body)
    assert status == 400 and "data.refund_id" in answer["error"]
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OrderRefund)) == 0


async def test_refunds_survive_in_order_and_the_customer_stays_one(hooks, database):
    """Redelivered out of order (refund, order, refund again), the same figures come out."""
    hooks.clock.set(datetime(2025, 5, 20, tzinfo=UTC))
    shop = await hooks.shop("generic", country="UA")
    refund = generic_refund("E", "r-e1", "5.00", "2025-05-02T09:00:00Z")
    await hooks.deliver(shop, "order.refunded", refund)
    await hooks.deliver(shop, "order.placed", generic_order("E", "25.00", "2025-05-01T10:00:00Z"))
    hooks.clock.advance(timedelta(minutes=1))
    await hooks.deliver(shop, "order.refunded", dict(refund, id="evt-refund-e1-again"))
    m = await metrics(database)
    assert (m.orders_count, m.revenue) == (1, Decimal(20))
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 1


def test_a_refund_no_column_can_hold_is_refused_with_the_reason():
    payload = fixture_json("shopify/refunds/create.json")
    payload["transactions"][0]["amount"] = "99999999999.00"
    with pytest.raises(
        InvalidValue, match=r"refunds/create: amount: 100000000009\.00 is more than the largest"
    ):
        ADAPTERS["shopify"].parse(
            "refunds/create", {}, payload, ParseContext(received_at=RECEIVED)
        )


async def test_refunds_and_orders_of_one_customer_on_two_workers_agree(hooks, database):
    """A refund names no customer, so two workers may apply it beside the customer's next order:
    whichever commits last must refresh the metrics seeing both."""
    hooks.clock.set(datetime(2025, 5, 30, tzinfo=UTC))
    shop = await hooks.shop("generic", country="UA")
    for n in range(6):
        order = generic_order(f"P{n}", "100.00", f"2025-05-0{n + 1}T10:00:00Z")
        await hooks.deliver(shop, "order.placed", order)
    for n in range(6):  # stored, not applied: refunds of P0..P5 between new orders N0..N5
        status, _ = await hooks.post(
            shop, "order.placed", generic_order(f"N{n}", "10.00", f"2025-05-1{n}T10:00:00Z")
        )
        assert status == 200
        refund = generic_refund(f"P{n}", f"r-{n}", "40.00", f"2025-05-2{n}T09:00:00Z")
        status, _ = await hooks.post(shop, "order.refunded", refund)
        assert status == 200
    second = InboxWorker(database.sessions, hooks.clock, max_attempts=3)
    for _ in range(20):
        reports = await asyncio.gather(hooks.worker.run_once(), second.run_once())
        if not any(r.handled or r.deferred for r in reports):
            break
    assert not [e for r in reports for e in r.errors]
    m = await metrics(database)
    # 6 × (100 - 40) + 6 × 10 = 420 over 12 orders
    assert (m.orders_count, m.revenue) == (12, Decimal(420))

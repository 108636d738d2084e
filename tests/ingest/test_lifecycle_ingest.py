"""An order arriving by webhook moves the customer's metrics and stage in the same transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from ingest_helpers import fixture_bytes
from sqlalchemy import select

from bot.models import CustomerEvent, CustomerMetrics


async def _metrics(database) -> CustomerMetrics:
    async with database.sessions() as session:
        (row,) = (await session.scalars(select(CustomerMetrics))).all()
        return row


async def test_an_order_and_its_cancellation_refresh_the_customer(hooks, database):
    hooks.clock.set(datetime(2025, 5, 1, 13, 0, tzinfo=UTC))  # an hour after the order
    shop = await hooks.shop("generic", country="UA")
    await hooks.deliver(shop, "customer.upserted", fixture_bytes("generic/customer.upserted.json"))
    await hooks.deliver(shop, "order.placed", fixture_bytes("generic/order.placed.json"))
    metrics = await _metrics(database)
    assert metrics.stage == "new" and metrics.orders_count == 1
    assert metrics.revenue == Decimal("104.80")

    await hooks.deliver(shop, "order.cancelled", fixture_bytes("generic/order.cancelled.json"))
    metrics = await _metrics(database)
    assert metrics.stage == "prospect" and metrics.orders_count == 0

    async with database.sessions() as session:
        moves = (
            await session.scalars(
                select(CustomerEvent.payload).where(CustomerEvent.type == "stage_changed")
            )
        ).all()
    assert moves == [{"from": "prospect", "to": "new"}, {"from": "new", "to": "prospect"}]

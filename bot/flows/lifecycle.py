"""Keep customer metrics and stages current: after each order or cancellation, and daily.

An order or a cancellation refreshes that customer in the same transaction that applied it,
so a segment counted a moment later already sees it. Time alone also moves stages (a customer
who stops ordering drifts to at_risk, then lapsed), and RFM ranks a customer among every buyer:
a background loop refreshes each shop whole every `REFRESH_INTERVAL`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web
from sqlalchemy import select

from bot.db import transaction
from bot.flows import FlowContext, on
from bot.flows.post_purchase import plan_restock
from bot.flows.winback import event_mark, plan_after_periodic_refresh, plan_winbacks
from bot.lifecycle import refresh_metrics
from bot.models import Shop
from integrations.base import OrderCancelled, OrderPlaced, OrderRefunded

log = logging.getLogger(__name__)
REFRESH_INTERVAL = timedelta(hours=6)


@on(OrderPlaced, OrderCancelled, OrderRefunded)
async def order_changed(ctx: FlowContext, event: OrderPlaced | OrderCancelled) -> None:
    """Refresh the metrics and stage of the customer whose order this is."""
    applied = ctx.applied
    customer = getattr(applied, "customer", None)
    if getattr(applied, "stale", False) or getattr(customer, "id", None) is None:
        return
    if getattr(customer, "redacted_hash", None) is not None:
        return
    assert ctx.shop.id is not None
    mark = await event_mark(ctx.session)
    await refresh_metrics(
        session=ctx.session,
        shop_id=ctx.shop.id,
        now=ctx.clock.now(),
        customer_ids=[customer.id],
        source="order",
    )
    # the flows that follow the refreshed metrics: restock (post_purchase.py), win-back
    await plan_restock(session=ctx.session, shop=ctx.shop, customer=customer, now=ctx.clock.now())
    await plan_winbacks(session=ctx.session, shop=ctx.shop, now=ctx.clock.now(), after=mark)


async def refresh_all_shops(services: object) -> int:
    """Refresh every installed shop whole, each in its own transaction; return how many."""
    sessions, clock = services.sessions, services.clock  # type: ignore[attr-defined]
    async with sessions() as session:
        ids = (await session.scalars(select(Shop.id).where(Shop.uninstalled_at.is_(None)))).all()
    for shop_id in ids:
        try:
            async with transaction(sessions) as session:
                now, mark = clock.now(), await event_mark(session)
                report = await refresh_metrics(session=session, shop_id=shop_id, now=now)
                shop = await session.get(Shop, shop_id)
                if shop is not None:
                    await plan_after_periodic_refresh(
                        session=session, shop=shop, now=now, mark=mark
                    )
            log.info(
                "shop %s: metrics refreshed for %s customers, %s stage changes",
                shop_id,
                report.customers,
                report.stage_changes,
            )
        except Exception:  # one shop's failure must not stop the others
            log.exception("shop %s: metrics refresh failed", shop_id)
    return len(ids)


async def metrics_refresher(app: web.Application) -> AsyncIterator[None]:
    """Worker (an aiohttp cleanup context): refresh every shop's metrics periodically."""
    from bot.web.keys import SERVICES

    async def loop() -> None:
        while True:
            await refresh_all_shops(app[SERVICES])
            await asyncio.sleep(REFRESH_INTERVAL.total_seconds())

    task = asyncio.create_task(loop(), name="metrics-refresher")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

"""Attribution: credit an order to the message the customer clicked or received before it."""

from __future__ import annotations

from bot.flows import FlowContext, on
from bot.shop_settings import load_shop_settings
from bot.store.commerce import find_order
from bot.store.offers import attribute_order
from integrations.base import OrderPlaced


@on(OrderPlaced)
async def credit_order(ctx: FlowContext, event: OrderPlaced) -> None:
    """Attribute a placed order within the shop's attribution window."""
    assert ctx.shop.id is not None
    order = await find_order(session=ctx.session, shop_id=ctx.shop.id, external_id=event.order_id)
    if order is None:
        return
    window = load_shop_settings(ctx.shop.settings).attribution_window
    await attribute_order(session=ctx.session, order=order, window=window)

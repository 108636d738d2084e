"""What a customer did, newest first: their events and their carts (the card has the rest).

The console's customer page shows it beside `customer_card`: a shop owner asking "what happened
with this customer?" reads the timeline (carts updated, orders placed, buttons tapped, surveys
answered) and the carts with their items. Both are bounded (the newest `limit`), so a customer
with years of history opens as fast as a new one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Cart, CartItem, CustomerEvent

EVENTS_SHOWN = 50
CARTS_SHOWN = 10


async def customer_history(
    *,
    session: AsyncSession,
    shop_id: int,
    customer_id: int,
    events: int = EVENTS_SHOWN,
    carts: int = CARTS_SHOWN,
) -> dict[str, Any]:
    """Return the customer's newest events and carts (with their items)."""
    found_events = (
        await session.scalars(
            select(CustomerEvent)
            .where(CustomerEvent.shop_id == shop_id, CustomerEvent.customer_id == customer_id)
            .order_by(CustomerEvent.occurred_at.desc(), CustomerEvent.id.desc())  # type: ignore[attr-defined,union-attr]
            .limit(events)
        )
    ).all()
    found_carts = (
        await session.scalars(
            select(Cart)
            .where(Cart.shop_id == shop_id, Cart.customer_id == customer_id)
            .order_by(Cart.updated_at.desc(), Cart.id.desc())  # type: ignore[attr-defined,union-attr]
            .limit(carts)
        )
    ).all()
    items: dict[int, list[CartItem]] = {}
    if found_carts:
        rows = await session.scalars(
            select(CartItem)
            .where(
                CartItem.shop_id == shop_id,
                CartItem.cart_id.in_([c.id for c in found_carts]),  # type: ignore[attr-defined]
            )
            .order_by(CartItem.cart_id, CartItem.position)
        )
        for item in rows:
            items.setdefault(item.cart_id, []).append(item)
    return {
        "events": [
            {
                "type": e.type,
                "source": e.source,
                "occurred_at": e.occurred_at,
                "detail": _detail(e.payload),
            }
            for e in found_events
        ],
        "carts": [
            {
                "id": c.id,
                "status": c.status,
                "total": c.total,
                "currency": c.currency,
                "updated_at": c.updated_at,
                "items": [
                    {"title": i.title, "quantity": i.quantity, "price": i.price}
                    for i in items.get(c.id or 0, [])
                ],
            }
            for c in found_carts
        ],
    }


def _detail(payload: Any, limit: int = 120) -> str:
    """Say an event's payload in one short line (key: value, the first few)."""
    if not isinstance(payload, dict):
        return ""
    parts = []
    for key, value in payload.items():
        if isinstance(value, dict | list) or value in (None, ""):
            continue
        parts.append(f"{key}: {value}")
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"

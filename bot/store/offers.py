"""SQL of offers: exclusions ("not interested"), clicks, reminder rescheduling, attribution."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import (
    Cart,
    CartItem,
    CartStatus,
    Click,
    Exclusion,
    Inbox,
    InboxState,
    Order,
    Outbox,
    OutboxState,
)


async def add_exclusion(
    *,
    session: AsyncSession,
    shop_id: int,
    customer_id: int,
    topic: str,
    outbox_id: int | None,
    now: datetime,
) -> int | None:
    """Exclude the customer from a topic; return the new exclusion's id, None if already."""
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(Exclusion)
        .values(
            shop_id=shop_id,
            customer_id=customer_id,
            topic=topic,
            outbox_id=outbox_id,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["shop_id", "customer_id", "topic"])
        .returning(Exclusion.id)
    )
    return await session.scalar(statement)


async def remove_exclusion(
    *, session: AsyncSession, shop_id: int, customer_id: int, topic: str
) -> bool:
    """Let the customer hear about a topic again; return False when nothing was excluded."""
    result = await session.execute(
        delete(Exclusion).where(
            Exclusion.shop_id == shop_id,
            Exclusion.customer_id == customer_id,
            Exclusion.topic == topic,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def list_exclusions(
    *, session: AsyncSession, shop_id: int, customer_id: int
) -> list[Exclusion]:
    """Return the customer's exclusions, oldest first."""
    query = (
        select(Exclusion)
        .where(Exclusion.shop_id == shop_id, Exclusion.customer_id == customer_id)
        .order_by(Exclusion.created_at, Exclusion.id)
    )
    return list((await session.scalars(query)).all())


async def is_excluded(
    *, session: AsyncSession, shop_id: int, customer_id: int, topic: str
) -> bool:
    """Tell whether the customer said "not interested" to this topic."""
    query = select(Exclusion.id).where(
        Exclusion.shop_id == shop_id,
        Exclusion.customer_id == customer_id,
        Exclusion.topic == topic,
    )
    return (await session.scalar(query)) is not None


async def newest_delivery_headers(
    *, session: AsyncSession, shop_id: int, platform: str
) -> dict[str, str] | None:
    """Return the stored headers of the shop's newest applied delivery from its platform."""
    query = (
        select(Inbox.headers)
        .where(
            Inbox.shop_id == shop_id,
            Inbox.platform == platform,
            Inbox.state == InboxState.DONE,
        )
        .order_by(Inbox.id.desc())  # type: ignore[union-attr]
        .limit(1)
    )
    headers = await session.scalar(query)
    return dict(headers) if isinstance(headers, dict) else None


async def record_click(
    *, session: AsyncSession, outbox: Outbox, target: str, now: datetime
) -> Click:
    """Log a tap on a tracked link."""
    click = Click(
        shop_id=outbox.shop_id,
        outbox_id=outbox.id,  # type: ignore[arg-type]
        customer_id=outbox.customer_id,
        target=target,
        clicked_at=now,
    )
    session.add(click)
    await session.flush()
    return click


async def reschedule(
    *, session: AsyncSession, shop_id: int, dedupe_key: str, due_at: datetime, now: datetime
) -> bool:
    """Move a still-scheduled row to a new due time; return False when it is not scheduled."""
    result = await session.execute(
        update(Outbox)
        .where(
            Outbox.shop_id == shop_id,
            Outbox.dedupe_key == dedupe_key,
            Outbox.state == OutboxState.SCHEDULED,
        )
        .values(due_at=due_at, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def revive(
    *, session: AsyncSession, shop_id: int, dedupe_key: str, due_at: datetime, now: datetime
) -> bool:
    """Schedule a cancelled row again for a new time; return False when it is not cancelled."""
    result = await session.execute(
        update(Outbox)
        .where(
            Outbox.shop_id == shop_id,
            Outbox.dedupe_key == dedupe_key,
            Outbox.state == OutboxState.CANCELLED,
        )
        .values(state=OutboxState.SCHEDULED, skip_reason=None, due_at=due_at, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def cart_with_items(
    *, session: AsyncSession, shop_id: int, cart_id: int
) -> tuple[Cart, list[CartItem]] | None:
    """Return a cart and its lines in order, or None."""
    cart = await session.get(Cart, cart_id)
    if cart is None or cart.shop_id != shop_id:
        return None
    items = (
        await session.scalars(
            select(CartItem).where(CartItem.cart_id == cart_id).order_by(CartItem.position)
        )
    ).all()
    return cart, list(items)


async def open_carts_of(*, session: AsyncSession, shop_id: int, customer_id: int) -> list[Cart]:
    """Return the customer's open carts, newest first."""
    query = (
        select(Cart)
        .where(
            Cart.shop_id == shop_id,
            Cart.customer_id == customer_id,
            Cart.status == CartStatus.OPEN,
        )
        .order_by(Cart.updated_at.desc())  # type: ignore[attr-defined]
    )
    return list((await session.scalars(query)).all())


async def carts_of_order(*, session: AsyncSession, order: Order) -> list[Cart]:
    """Return the carts an order converted."""
    query = select(Cart).where(Cart.shop_id == order.shop_id, Cart.order_id == order.id)
    return list((await session.scalars(query)).all())


async def attribute_order(*, session: AsyncSession, order: Order, window: timedelta) -> int | None:
    """Credit the order to the message the customer last clicked, else last received, in window.

    Only messages sent before the order count; an order is credited once.
    """
    if order.customer_id is None or order.attributed_outbox_id is not None:
        return order.attributed_outbox_id
    since = order.placed_at - window
    clicked = await session.scalar(
        select(Click.outbox_id)
        .where(
            Click.shop_id == order.shop_id,
            Click.customer_id == order.customer_id,
            Click.clicked_at >= since,
            Click.clicked_at <= order.placed_at,
        )
        .order_by(Click.clicked_at.desc())  # type: ignore[attr-defined]
        .limit(1)
    )
    chosen = clicked
    if chosen is None:
        chosen = await session.scalar(
            select(Outbox.id)
            .where(
                Outbox.shop_id == order.shop_id,
                Outbox.customer_id == order.customer_id,
                Outbox.state == OutboxState.SENT,
                Outbox.sent_at >= since,  # type: ignore[operator]
                Outbox.sent_at <= order.placed_at,  # type: ignore[operator]
            )
            .order_by(Outbox.sent_at.desc())  # type: ignore[union-attr]
            .limit(1)
        )
    if chosen is not None:
        order.attributed_outbox_id = chosen
        session.add(order)
        await session.flush()
    return chosen

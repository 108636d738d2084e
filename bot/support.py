"""The support path: customers' messages to the shop, the inbox, and the shop's answers.

A customer's free text, photo or voice note becomes a `reply` event linked to the message it
answers; `nudge support inbox` lists who waits, and `nudge support reply` answers through an
outbox row in the transactional lane (the dispatcher sends it at once, day or night).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db import transaction
from bot.messages import replies as texts
from bot.messages.render import RenderContext, Rendered, register_kind
from bot.models import Customer, CustomerEvent, Lane, Outbox
from bot.services import Services
from bot.store import preferences
from bot.store import support as store
from bot.store.customers import get_customer
from bot.store.outbox import schedule

REPLY_KIND = "support.reply"


class CustomerNotFound(LookupError):
    """No such customer (in that shop)."""


async def record_customer_message(
    services: Services,
    *,
    customer: Customer,
    content: str,
    text: str | None,
    file_id: str | None,
    message_id: int,
    reply_to_message_id: int | None,
) -> CustomerEvent:
    """Write what the customer sent to their profile, linked to the message it answers."""
    async with transaction(services.sessions) as session:
        answered = None
        if reply_to_message_id is not None:
            answered = await store.answered_message(
                session=session,
                shop_id=customer.shop_id,
                customer_id=customer.id,  # type: ignore[arg-type]
                telegram_message_id=reply_to_message_id,
            )
        return await store.record_reply(
            session=session,
            customer=customer,
            content=content,
            text=text,
            file_id=file_id,
            message_id=message_id,
            answered=answered,
            reply_to_message_id=reply_to_message_id,
            now=services.clock.now(),
        )


async def _customer(session: AsyncSession, customer_id: int, shop_id: int | None) -> Customer:
    customer = await session.get(Customer, customer_id)
    if customer is not None and shop_id is not None:
        customer = await get_customer(session=session, shop_id=shop_id, customer_id=customer_id)
    if customer is None:
        raise CustomerNotFound(f"no customer with id {customer_id}")
    return customer


async def reply(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    customer_id: int,
    text: str,
    shop_id: int | None = None,
) -> Outbox:
    """Answer a customer through the bot: a transactional outbox row and a log entry."""
    now = clock.now()
    async with transaction(sessions) as session:
        customer = await _customer(session, customer_id, shop_id)
        event = await store.record_support_reply(
            session=session, customer=customer, text=text, outbox_id=None, now=now
        )
        row = await schedule(
            session=session,
            shop_id=customer.shop_id,
            customer_id=customer_id,
            kind=REPLY_KIND,
            dedupe_key=f"support:{customer_id}:{event.id}",
            due_at=now,
            lane=Lane.TRANSACTIONAL,
            payload={"text": text},
            now=now,
        )
        assert row is not None
        event.payload = {**event.payload, "outbox_id": row.id}
        session.add(event)
    return row


async def resolve(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    customer_id: int,
    shop_id: int | None = None,
) -> tuple[Customer, bool]:
    """Clear a customer's follow-up flag (promos resume); return it and whether it was set."""
    async with transaction(sessions) as session:
        customer = await _customer(session, customer_id, shop_id)
        was_set = await preferences.resolve_follow_up(
            session=session, customer=customer, now=clock.now()
        )
    return customer, was_set


async def inbox(
    sessions: async_sessionmaker[AsyncSession], *, shop_id: int, since: datetime | None = None
) -> list[store.Conversation]:
    """Return who waits for the shop: flagged detractors and unanswered messages."""
    async with sessions() as session:
        return await store.support_inbox(session=session, shop_id=shop_id, since=since)


def render_reply(ctx: RenderContext) -> Rendered:
    """Render the shop's answer to a customer."""
    return Rendered(text=texts.support_answer(ctx.shop.name, str(ctx.payload.get("text") or "")))


register_kind(REPLY_KIND, render=render_reply)

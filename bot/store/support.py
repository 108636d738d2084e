"""What customers wrote to the shop (replies, detractor feedback) and the shop's answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Customer, CustomerEvent, Outbox
from bot.store.customers import log_customer_event

OPEN_TYPES = ("reply", "nps_feedback")
CLOSING_TYPES = ("support_reply", "follow_up_resolved")


async def answered_message(
    *, session: AsyncSession, shop_id: int, customer_id: int, telegram_message_id: int
) -> Outbox | None:
    """Return the outbox row that sent the message the customer replied to, if any."""
    query = select(Outbox).where(
        Outbox.shop_id == shop_id,
        Outbox.customer_id == customer_id,
        Outbox.telegram_message_id == telegram_message_id,
    )
    return (await session.scalars(query.limit(1))).first()


async def record_reply(
    *,
    session: AsyncSession,
    customer: Customer,
    content: str,
    text: str | None,
    file_id: str | None,
    message_id: int,
    answered: Outbox | None,
    reply_to_message_id: int | None,
    now: datetime,
) -> CustomerEvent:
    """Log a customer's message to the shop, linked to the message it answers."""
    return await log_customer_event(
        session=session,
        customer=customer,
        type="reply",
        source="telegram",
        occurred_at=now,
        payload={
            "content": content,
            "text": text,
            "file_id": file_id,
            "message_id": message_id,
            "reply_to_message_id": reply_to_message_id,
            "outbox_id": answered.id if answered else None,
            "offer_kind": answered.kind if answered else None,
            "offer_topic": answered.topic if answered else None,
        },
    )


async def record_support_reply(
    *, session: AsyncSession, customer: Customer, text: str, outbox_id: int | None, now: datetime
) -> CustomerEvent:
    """Log the shop's answer to a customer."""
    return await log_customer_event(
        session=session,
        customer=customer,
        type="support_reply",
        source="cli",
        occurred_at=now,
        payload={"text": text, "outbox_id": outbox_id},
    )


@dataclass(slots=True)
class Conversation:
    """One customer waiting for the shop: what they wrote since the shop last answered."""

    customer: Customer
    items: list[CustomerEvent] = field(default_factory=list)

    @property
    def last_at(self) -> datetime | None:
        """Return when the customer last wrote."""
        return self.items[-1].occurred_at if self.items else None

    def as_dict(self) -> dict[str, Any]:
        """Describe the conversation for the CLI."""
        c = self.customer
        name = " ".join(part for part in (c.first_name, c.last_name) if part) or None
        return {
            "customer_id": c.id,
            "name": name,
            "email": c.email,
            "phone": c.phone,
            "telegram_username": c.telegram_username,
            "needs_follow_up": c.needs_follow_up,
            "nps_score": c.nps_score,
            "messages": [
                {
                    "at": e.occurred_at.isoformat(),
                    "type": e.type,
                    "content": e.payload.get("content", "text"),
                    "text": e.payload.get("text"),
                    "score": e.payload.get("score"),
                    "order_id": e.payload.get("order_id"),
                    "outbox_id": e.payload.get("outbox_id"),
                    "offer_kind": e.payload.get("offer_kind"),
                    "offer_topic": e.payload.get("offer_topic"),
                }
                for e in self.items
            ],
        }


async def support_inbox(
    *, session: AsyncSession, shop_id: int, since: datetime | None = None
) -> list[Conversation]:
    """Return customers flagged for follow-up or waiting for an answer, oldest wait first."""
    query = select(CustomerEvent).where(
        CustomerEvent.shop_id == shop_id,
        CustomerEvent.type.in_(OPEN_TYPES + CLOSING_TYPES),  # type: ignore[attr-defined]
    )
    if since is not None:
        query = query.where(CustomerEvent.occurred_at >= since)
    query = query.order_by(CustomerEvent.occurred_at, CustomerEvent.id)  # type: ignore[arg-type]
    waiting: dict[int, list[CustomerEvent]] = {}
    for event in await session.scalars(query):
        if event.customer_id is None:
            continue
        if event.type in CLOSING_TYPES:
            waiting.pop(event.customer_id, None)
        else:
            waiting.setdefault(event.customer_id, []).append(event)
    flagged = select(Customer).where(Customer.shop_id == shop_id, Customer.needs_follow_up)
    customers = {c.id: c for c in await session.scalars(flagged)}
    missing = [cid for cid in waiting if cid not in customers]
    if missing:
        more = select(Customer).where(Customer.shop_id == shop_id, Customer.id.in_(missing))  # type: ignore[union-attr]
        customers.update({c.id: c for c in await session.scalars(more)})
    conversations = [
        Conversation(customer, waiting.get(cid, [])) for cid, customer in customers.items()
    ]
    conversations.sort(key=lambda c: (c.last_at is None, c.last_at or c.customer.updated_at))
    return conversations

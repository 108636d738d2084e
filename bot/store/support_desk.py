"""The support desk's SQL: conversations, forum topics, and the messages relayed either way."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import (
    Customer,
    SupportConversation,
    SupportMessage,
    SupportState,
    SupportTopic,
)

PENDING, SENDING, DONE, UNDELIVERED, NONE = "pending", "sending", "done", "undelivered", "none"


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


async def open_conversation(
    *,
    session: AsyncSession,
    shop_id: int,
    telegram_user_id: int,
    customer_id: int | None,
    now: datetime,
) -> tuple[SupportConversation, bool]:
    """Return the user's open conversation, opening one if none; and whether it is new."""
    conversation = await current_conversation(
        session=session, shop_id=shop_id, telegram_user_id=telegram_user_id
    )
    opened = False
    if conversation is None:
        # A concurrent first message may open it first: the partial unique index makes this
        # insert do nothing then (PostgreSQL waits for the other to commit), and we join it.
        opened_id = await session.scalar(
            _insert(session)(SupportConversation)
            .values(
                shop_id=shop_id,
                customer_id=customer_id,
                telegram_user_id=telegram_user_id,
                state=SupportState.OPEN.value,
                opened_at=now,
                undelivered=0,
            )
            .on_conflict_do_nothing(
                index_elements=["shop_id", "telegram_user_id"],
                index_where=text("state = 'open'"),
            )
            .returning(SupportConversation.id)
        )
        opened = opened_id is not None
        conversation = await current_conversation(
            session=session, shop_id=shop_id, telegram_user_id=telegram_user_id
        )
        assert conversation is not None
    if customer_id is not None:
        conversation.customer_id = customer_id
    conversation.last_customer_at = now
    session.add(conversation)
    await session.flush()
    return conversation, opened


async def current_conversation(
    *, session: AsyncSession, shop_id: int, telegram_user_id: int
) -> SupportConversation | None:
    """Return the user's open conversation, if any (the newest, should two ever exist)."""
    query = (
        select(SupportConversation)
        .where(
            SupportConversation.shop_id == shop_id,
            SupportConversation.telegram_user_id == telegram_user_id,
            SupportConversation.state == SupportState.OPEN,
        )
        .order_by(SupportConversation.id.desc())  # type: ignore[union-attr]
        .limit(1)
    )
    return (await session.scalars(query)).first()


async def add_message(*, session: AsyncSession, **values: Any) -> SupportMessage | None:
    """Store a message; None when its source message was stored before (a redelivery)."""
    values.setdefault("relay", NONE)
    values.setdefault("attempts", 0)
    statement = (
        _insert(session)(SupportMessage)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["shop_id", "source_chat_id", "source_message_id"])
        .returning(SupportMessage)
    )
    return (await session.scalars(statement)).first()


async def topic_of_user(
    *, session: AsyncSession, shop_id: int, chat_id: int, telegram_user_id: int
) -> SupportTopic | None:
    """Return the user's topic in this group."""
    query = select(SupportTopic).where(
        SupportTopic.shop_id == shop_id,
        SupportTopic.chat_id == chat_id,
        SupportTopic.telegram_user_id == telegram_user_id,
    )
    return (await session.scalars(query)).first()


async def topic_of_thread(
    *, session: AsyncSession, shop_id: int, chat_id: int, thread_id: int
) -> SupportTopic | None:
    """Return the topic with this thread id in this group."""
    query = select(SupportTopic).where(
        SupportTopic.shop_id == shop_id,
        SupportTopic.chat_id == chat_id,
        SupportTopic.thread_id == thread_id,
    )
    return (await session.scalars(query)).first()


async def claim_relays(
    *, session: AsyncSession, now: datetime, limit: int, lease: timedelta
) -> list[SupportMessage]:
    """Take due messages waiting for the group (and ones a dead relay left), oldest first."""
    due = (
        select(SupportMessage.id)
        .where(
            or_(
                SupportMessage.relay == PENDING,
                (SupportMessage.relay == SENDING) & (SupportMessage.next_attempt_at < now - lease),  # type: ignore[operator]
            ),
            or_(
                SupportMessage.next_attempt_at.is_(None),  # type: ignore[union-attr]
                SupportMessage.next_attempt_at <= now,  # type: ignore[operator]
            ),
        )
        .order_by(SupportMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(SupportMessage)
        .where(SupportMessage.id.in_(due.scalar_subquery()))  # type: ignore[union-attr]
        .values(relay=SENDING, next_attempt_at=now, attempts=SupportMessage.attempts + 1)
        .returning(SupportMessage)
        .execution_options(synchronize_session=False)
    )
    rows = list((await session.scalars(statement)).all())
    rows.sort(key=lambda row: row.id or 0)
    return rows


async def find_by_source(
    *, session: AsyncSession, shop_id: int, chat_id: int, message_id: int
) -> SupportMessage | None:
    """Return the stored message that came from this chat message."""
    query = select(SupportMessage).where(
        SupportMessage.shop_id == shop_id,
        SupportMessage.source_chat_id == chat_id,
        SupportMessage.source_message_id == message_id,
    )
    return (await session.scalars(query)).first()


async def conversation_messages(
    *, session: AsyncSession, conversation_id: int
) -> list[SupportMessage]:
    """Return a conversation's messages in order."""
    query = (
        select(SupportMessage)
        .where(SupportMessage.conversation_id == conversation_id)
        .order_by(SupportMessage.id)  # type: ignore[arg-type]
    )
    return list((await session.scalars(query)).all())


def _open_with_customers(shop_id: int) -> Any:
    """Select the shop's open conversations, each with its customer (None: not linked)."""
    return (
        select(SupportConversation, Customer)
        .outerjoin(Customer, Customer.id == SupportConversation.customer_id)  # type: ignore[arg-type]
        .where(
            SupportConversation.shop_id == shop_id,
            SupportConversation.state == SupportState.OPEN,
        )
    )


async def open_conversations(
    *, session: AsyncSession, shop_id: int
) -> list[tuple[SupportConversation, Customer | None]]:
    """Return the shop's open conversations with their customers, the newest first."""
    query = _open_with_customers(shop_id).order_by(SupportConversation.id.desc())  # type: ignore[union-attr]
    return [(c, customer) for c, customer in (await session.execute(query)).all()]


async def waiting_conversations(
    *, session: AsyncSession, shop_id: int
) -> list[tuple[SupportConversation, Customer | None]]:
    """Return open conversations still waiting: unanswered, or with an undelivered answer."""
    query = _open_with_customers(shop_id).order_by(
        SupportConversation.last_customer_at,  # type: ignore[arg-type]
        SupportConversation.id,  # type: ignore[arg-type]
    )
    found = []
    for conversation, customer in (await session.execute(query)).all():
        answered = conversation.last_answer_at
        waiting = answered is None or (
            conversation.last_customer_at is not None and conversation.last_customer_at > answered
        )
        if waiting or conversation.undelivered:
            found.append((conversation, customer))
    return found


@dataclass(frozen=True, slots=True)
class SupportFigures:
    """What `nudge report support` shows."""

    opened: int
    answered: int
    median_first_response_seconds: float | None
    open_now: int
    undelivered: int

    def as_dict(self) -> dict[str, Any]:
        """Return the figures as plain data."""
        return {
            "opened": self.opened,
            "answered": self.answered,
            "median_first_response_seconds": self.median_first_response_seconds,
            "open_now": self.open_now,
            "undelivered": self.undelivered,
        }


async def support_figures(
    *, session: AsyncSession, shop_id: int, since: datetime | None = None
) -> SupportFigures:
    """Count conversations opened (since), answered, open now; the median first response."""
    query = select(
        SupportConversation.opened_at,
        SupportConversation.first_response_at,
        SupportConversation.state,
        SupportConversation.undelivered,
    ).where(SupportConversation.shop_id == shop_id)
    if since is not None:
        query = query.where(SupportConversation.opened_at >= since)
    opened = answered = 0
    waits: list[float] = []
    for opened_at, first_response_at, _state, _undelivered in await session.execute(query):
        opened += 1
        if first_response_at is not None:
            answered += 1
            waits.append(max(0.0, (first_response_at - opened_at).total_seconds()))
    open_now, undelivered = (
        await session.execute(
            select(
                func.count(), func.coalesce(func.sum(SupportConversation.undelivered), 0)
            ).where(
                SupportConversation.shop_id == shop_id,
                SupportConversation.state == SupportState.OPEN,
            )
        )
    ).one()
    return SupportFigures(
        opened=opened,
        answered=answered,
        median_first_response_seconds=round(statistics.median(waits), 1) if waits else None,
        open_now=int(open_now or 0),
        undelivered=int(undelivered or 0),
    )

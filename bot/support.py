"""The support desk: customers' messages to the shop, agents' answers, and the relay between.

- **Customer → shop.** Every message a customer writes that no other handler took (a command,
  a button, a survey answer) opens or continues a *conversation*, linked to a profile or only
  to the Telegram user. It is stored (`support_messages`, and a `reply` event on a linked
  profile) before the customer is answered. When the shop connected a support group, the
  message waits in the relay queue; `SupportRelay` copies it into the customer's forum topic
  (created on first need, the profile card as its first post) within the group's send limit,
  retrying until it gets there.
- **Shop → customer.** An agent's message in the topic, or `nudge support reply`, is an
  answer: transactional (consent does not stop it: `/stop` ends marketing, not support), sent
  at once, its outcome recorded. An answer that cannot be delivered is marked on the
  conversation, which stays open and in `nudge support inbox`, and the agent or the CLI is
  told at once.
- **Promos wait** while a conversation is open (`support_open_since`, a send-time rule).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import Message
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db import transaction
from bot.delivery.limiter import SlidingWindowLimiter
from bot.i18n import customer_locale, format_datetime, format_money, get_i18n
from bot.messages import replies as texts
from bot.messages import support as desk_texts
from bot.messages.render import RenderContext, Rendered, SkipMessage, register_kind
from bot.models import (
    Cart,
    CartItem,
    CartStatus,
    Customer,
    CustomerEvent,
    CustomerMetrics,
    Lane,
    Outbox,
    OutboxState,
    Shop,
    SupportConversation,
    SupportMessage,
    SupportState,
    SupportTopic,
)
from bot.services import Services
from bot.shop_settings import ShopSettings, load_shop_settings
from bot.store import outbox as outbox_store
from bot.store import preferences
from bot.store import support as store
from bot.store import support_desk as desk
from bot.store.customer_card import customer_card
from bot.store.customers import get_customer, log_customer_event
from bot.store.outbox import schedule
from bot.telegram import BotPool

log = logging.getLogger(__name__)

REPLY_KIND = "support.reply"
COPY_KIND = "support.copy"
CONTENT_KINDS = ("photo", "document", "voice", "video", "video_note", "audio", "animation")
SEND_TRIES = 3
STUCK_AFTER = timedelta(minutes=5)


class CustomerNotFound(LookupError):
    """No such customer (in that shop)."""


class ConversationNotFound(LookupError):
    """Nobody with that Telegram id wrote to the shop."""


# ---------------------------------------------------------------------------- contents


def message_content(message: Message) -> tuple[str, str | None, str | None]:
    """Return (content kind, text or caption, file id) of a customer's or agent's message."""
    if message.text is not None:
        return "text", message.text, None
    if message.photo:
        return "photo", message.caption, message.photo[-1].file_id
    if message.sticker is not None:
        return "sticker", message.sticker.emoji, message.sticker.file_id
    for kind in CONTENT_KINDS[1:]:
        media = getattr(message, kind, None)
        if media is not None:
            return kind, message.caption, media.file_id
    return "other", message.caption, None


def _clip(text: str | None, limit: int = 5000) -> str | None:
    """Make text storable anywhere: no lone surrogates, no NUL (PostgreSQL refuses it)."""
    if text is None:
        return None
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")[:limit]


# ---------------------------------------------------------------------- working hours


def next_opening(settings: ShopSettings, zone_name: str, now: datetime) -> datetime | None:
    """Return when the team is next at work, or None when it is at work now."""
    hours = settings.support_hours
    days = settings.support_days
    if hours is None and len(days) == 7:
        return None
    try:
        zone = ZoneInfo(zone_name or "UTC")
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    opens, closes = hours or (time(0, 0), time(0, 0))
    names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    local = now.astimezone(zone)

    def at_work(moment: datetime) -> bool:
        clock = moment.time().replace(tzinfo=None)
        if hours is None:
            inside, day = True, moment.date()
        elif opens < closes:
            inside, day = opens <= clock < closes, moment.date()
        else:  # a night shift, 22:00-06:00: the early hours belong to the day before
            inside = clock >= opens or clock < closes
            day = moment.date() - timedelta(days=1) if clock < closes else moment.date()
        return inside and names[day.weekday()] in days

    if at_work(local):
        return None
    for offset in range(0, 9):
        day = local.date() + timedelta(days=offset)
        start = datetime.combine(day, opens, tzinfo=zone)
        if start > local and names[day.weekday()] in days:
            return start.astimezone(UTC)
    return None


# --------------------------------------------------------------------- customer side


@dataclass(slots=True)
class Received:
    """What storing a customer's message came to."""

    conversation: SupportConversation
    message: SupportMessage | None  # None: this message was stored before (a redelivery)
    opened: bool
    group_chat_id: int | None
    answer_after: datetime | None  # outside working hours: when the team is back


async def receive(
    services: Services,
    *,
    shop: Shop,
    customer: Customer | None,
    message: Message,
    locale: str | None = None,
) -> Received:
    """Store a customer's message in their conversation (opening one), queued for the group."""
    assert message.from_user is not None
    now = services.clock.now()
    settings = load_shop_settings(shop.settings)
    group = settings.support_chat_id
    content, text, file_id = message_content(message)
    replied = message.reply_to_message
    async with transaction(services.sessions) as session:
        conversation, opened = await desk.open_conversation(
            session=session,
            shop_id=shop.id,  # type: ignore[arg-type]
            telegram_user_id=message.from_user.id,
            customer_id=customer.id if customer else None,
            now=now,
        )
        name = _clip(message.from_user.full_name, 200)
        if (locale and conversation.locale != locale) or conversation.name != name:
            conversation.locale = locale or conversation.locale
            conversation.name = name
            session.add(conversation)
        answered = None
        if customer is not None and replied is not None:
            answered = await store.answered_message(
                session=session,
                shop_id=shop.id,  # type: ignore[arg-type]
                customer_id=customer.id,  # type: ignore[arg-type]
                telegram_message_id=replied.message_id,
            )
        stored = await desk.add_message(
            session=session,
            shop_id=shop.id,
            conversation_id=conversation.id,
            direction="in",
            content=content,
            text=_clip(text),
            file_id=file_id,
            source_chat_id=message.chat.id,
            source_message_id=message.message_id,
            outbox_id=answered.id if answered else None,
            relay=desk.PENDING if group else desk.NONE,
            next_attempt_at=now,
            created_at=now,
        )
        if stored is not None and customer is not None:
            await store.record_reply(
                session=session,
                customer=customer,
                content=content,
                text=_clip(text),
                file_id=file_id,
                message_id=message.message_id,
                answered=answered,
                reply_to_message_id=replied.message_id if replied else None,
                now=now,
            )
            if customer.support_open_since is None:
                await session.execute(
                    update(Customer)
                    .where(Customer.id == customer.id)  # type: ignore[arg-type]
                    .values(support_open_since=now)
                    .execution_options(synchronize_session=False)
                )
    return Received(
        conversation=conversation,
        message=stored,
        opened=opened,
        group_chat_id=group,
        answer_after=next_opening(settings, shop.timezone, now),
    )


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


# --------------------------------------------------------------------- sending


@dataclass(frozen=True, slots=True)
class Sent:
    """The outcome of one send to Telegram."""

    status: str  # sent | unreachable | failed | retry
    message_id: int | None = None
    error: str | None = None


async def call_telegram(send: Callable[[], Any], *, tries: int = SEND_TRIES) -> Sent:
    """Run one Bot API call, waiting out short 429s; classify what went wrong."""
    for attempt in range(tries):
        try:
            result = await send()
        except TelegramRetryAfter as exc:
            if attempt + 1 < tries and exc.retry_after <= 30:
                await asyncio.sleep(exc.retry_after)
                continue
            return Sent("retry", error=f"429: retry after {exc.retry_after}s")
        except TelegramForbiddenError as exc:
            return Sent("unreachable", error=exc.message)
        except TelegramBadRequest as exc:
            if "chat not found" in exc.message.lower():
                return Sent("unreachable", error=exc.message)
            return Sent("failed", error=exc.message)
        except (TelegramServerError, TelegramNetworkError, TimeoutError, ConnectionError) as exc:
            if attempt + 1 < tries:
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            return Sent("retry", error=f"{type(exc).__name__}: {exc}")
        message_id = getattr(result, "message_id", None)
        return Sent("sent", message_id=message_id)
    return Sent("retry", error="gave up")  # pragma: no cover - the loop always returns


@dataclass(slots=True)
class Answer:
    """What an answer to a customer came to: delivered, queued again, or not delivered."""

    conversation_id: int | None
    delivered: bool
    state: str  # sent | queued | undelivered
    reason: str | None = None  # unreachable | failed | retry
    error: str | None = None
    outbox_id: int | None = None
    message_id: int | None = None
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Describe the answer for the CLI."""
        return {
            "conversation_id": self.conversation_id,
            "delivered": self.delivered,
            "state": self.state,
            "reason": self.reason,
            "error": self.error,
            "outbox_id": self.outbox_id,
            "telegram_message_id": self.message_id,
        }


def _customer_locale(shop: Shop, customer: Customer | None, conversation: Any) -> str:
    return customer_locale(
        shop, customer.locale if customer else None, getattr(conversation, "locale", None)
    )


async def answer(
    services: Services,
    *,
    shop: Shop,
    conversation: SupportConversation,
    text: Callable[[], str] | None = None,
    copy_of: tuple[int, int] | None = None,
    agent_user_id: int | None = None,
    source: tuple[int, int] | None = None,
    stored_text: str | None = None,
    content: str = "text",
    release_when_unsure: bool = False,
) -> Answer:
    """Send an answer to the conversation's customer now and record what happened.

    `text` renders the message in the customer's locale; `copy_of` (chat id, message id) copies
    an agent's message instead. `source` is the agent's message, so a redelivered update never
    answers twice. With `release_when_unsure`, an answer Telegram could not take right now goes
    back to the outbox for the dispatcher to send (a linked customer's only).
    """
    now = services.clock.now()
    async with transaction(services.sessions) as session:
        customer = (
            await session.get(Customer, conversation.customer_id)
            if conversation.customer_id
            else None
        )
        row = None
        if customer is not None:
            row = await schedule(
                session=session,
                shop_id=shop.id,  # type: ignore[arg-type]
                customer_id=customer.id,  # type: ignore[arg-type]
                kind=COPY_KIND if copy_of else REPLY_KIND,
                dedupe_key=f"support:{conversation.id}:{source or ('cli', now.timestamp())}"[:255],
                due_at=now,
                lane=Lane.TRANSACTIONAL,
                payload={"text": stored_text or "", "conversation_id": conversation.id},
                now=now,
            )
            if row is None:
                return Answer(conversation.id, False, "duplicate", duplicate=True)
            await session.execute(
                update(Outbox)
                .where(Outbox.id == row.id)  # type: ignore[arg-type]
                .values(state=OutboxState.SENDING, claimed_at=now, attempts=1)
                .execution_options(synchronize_session=False)
            )
        stored = await desk.add_message(
            session=session,
            shop_id=shop.id,
            conversation_id=conversation.id,
            direction="out",
            content=content,
            text=_clip(stored_text),
            source_chat_id=source[0] if source else None,
            source_message_id=source[1] if source else None,
            agent_user_id=agent_user_id,
            outbox_id=row.id if row else None,
            relay=desk.SENDING,
            created_at=now,
        )
        if stored is None:
            return Answer(conversation.id, False, "duplicate", duplicate=True)
        if conversation.first_response_at is None:
            conversation.first_response_at = now
        conversation.last_answer_at = now
        session.add(conversation)
        chat_id = customer.telegram_chat_id if customer else conversation.telegram_user_id
        locale = _customer_locale(shop, customer, conversation)
    assert shop.bot_token is not None
    bot = services.bots.get(shop.bot_token)
    if chat_id is None:
        sent = Sent("failed", error="the customer has no Telegram chat")
    elif copy_of is not None:
        sent = await call_telegram(
            lambda: bot.copy_message(
                chat_id=chat_id, from_chat_id=copy_of[0], message_id=copy_of[1]
            )
        )
    else:
        assert text is not None
        i18n = get_i18n()
        with i18n.context(), i18n.use_locale(locale):
            body = text()
        sent = await call_telegram(lambda: bot.send_message(chat_id=chat_id, text=body))
    return await _record_answer(
        services, shop, conversation, customer, stored, row, sent, release_when_unsure
    )


async def _record_answer(
    services: Services,
    shop: Shop,
    conversation: SupportConversation,
    customer: Customer | None,
    stored: SupportMessage,
    row: Outbox | None,
    sent: Sent,
    release: bool,
) -> Answer:
    now = services.clock.now()
    queued = sent.status == "retry" and release and row is not None
    async with transaction(services.sessions) as session:
        fresh = await session.get(SupportConversation, conversation.id)
        assert fresh is not None
        message = await session.get(SupportMessage, stored.id)
        assert message is not None
        if sent.status == "sent":
            message.relay = desk.DONE
            message.copy_chat_id = (
                customer.telegram_chat_id if customer else conversation.telegram_user_id
            )
            message.copy_message_id = sent.message_id
            message.relayed_at = now
        elif queued:
            message.relay = desk.NONE  # the outbox row carries it from here
            message.error = sent.error
        else:
            message.relay = desk.UNDELIVERED
            message.error = (sent.error or "")[:2000]
            fresh.undelivered += 1
        session.add_all([message, fresh])
        if row is not None:
            if queued:
                outcome = outbox_store.Outcome(
                    row.id,  # type: ignore[arg-type]
                    OutboxState.SCHEDULED,
                    error=sent.error,
                    next_attempt_at=now,
                    release_attempt=True,
                )
            elif sent.status == "sent":
                outcome = outbox_store.Outcome(
                    row.id,  # type: ignore[arg-type]
                    OutboxState.SENT,
                    message_id=sent.message_id,
                    sent_at=now,
                )
            elif sent.status == "unreachable":
                outcome = outbox_store.Outcome(row.id, OutboxState.BLOCKED, error=sent.error)  # type: ignore[arg-type]
            else:
                outcome = outbox_store.Outcome(row.id, OutboxState.FAILED, error=sent.error)  # type: ignore[arg-type]
            await outbox_store.record_outcomes(session=session, outcomes=[outcome], now=now)
        if customer is not None:
            fresh_customer = await session.get(Customer, customer.id)
            assert fresh_customer is not None
            await log_customer_event(
                session=session,
                customer=fresh_customer,
                type="support_reply" if sent.status == "sent" else "support_reply_undelivered",
                source="support",
                occurred_at=now,
                payload={
                    "text": message.text,
                    "outbox_id": row.id if row else None,
                    "error": sent.error,
                },
            )
            if sent.status == "unreachable":
                await outbox_store.mark_unreachable(
                    session=session,
                    shop_id=shop.id,  # type: ignore[arg-type]
                    customer_id=customer.id,  # type: ignore[arg-type]
                    now=now,
                )
    if sent.status == "sent":
        state = "sent"
    elif queued:
        state = "queued"
    else:
        state = "undelivered"
    return Answer(
        conversation_id=conversation.id,
        delivered=sent.status == "sent",
        state=state,
        reason=None if sent.status == "sent" else sent.status,
        error=sent.error,
        outbox_id=row.id if row else None,
        message_id=sent.message_id,
    )


async def _customer(session: AsyncSession, customer_id: int, shop_id: int | None) -> Customer:
    customer = await session.get(Customer, customer_id)
    if customer is not None and shop_id is not None:
        customer = await get_customer(session=session, shop_id=shop_id, customer_id=customer_id)
    if customer is None:
        raise CustomerNotFound(f"no customer with id {customer_id}")
    return customer


async def _conversation_for(
    session: AsyncSession, shop_id: int, customer: Customer | None, telegram_user_id: int | None
) -> SupportConversation:
    """Return the open conversation to answer in, else the latest, else a new one."""
    query = select(SupportConversation).where(SupportConversation.shop_id == shop_id)
    if customer is not None:
        query = query.where(SupportConversation.customer_id == customer.id)
    else:
        query = query.where(SupportConversation.telegram_user_id == telegram_user_id)
    rows = list(
        (await session.scalars(query.order_by(SupportConversation.id.desc()))).all()  # type: ignore[union-attr]
    )
    for row in rows:
        if row.state == SupportState.OPEN:
            return row
    if rows:
        return rows[0]
    if customer is None:
        raise ConversationNotFound(f"Telegram user {telegram_user_id} never wrote to the shop")
    conversation = SupportConversation(
        shop_id=shop_id,
        customer_id=customer.id,
        telegram_user_id=customer.telegram_chat_id or 0,
        opened_at=datetime.now(UTC),
        state=SupportState.CLOSED,
    )
    session.add(conversation)
    await session.flush()
    return conversation


# An agent's answer is sent inside "Message from {shop}: …", within Telegram's 4,096 characters.
ANSWER_LIMIT = 3500


async def reply(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    customer_id: int | None = None,
    text: str,
    shop_id: int | None = None,
    telegram_user_id: int | None = None,
    bots: BotPool | None = None,
    settings: Any = None,
) -> Answer:
    """Answer a customer (a profile id, or the Telegram id of someone not linked yet).

    With `bots`, the answer is sent now and the outcome returned (an undeliverable answer is
    marked on the conversation); without, it is queued for the dispatcher (linked customers).
    """
    now = clock.now()
    async with transaction(sessions) as session:
        customer = None
        if customer_id is not None:
            customer = await _customer(session, customer_id, shop_id)
            shop_id = customer.shop_id
        if shop_id is None:
            raise ConversationNotFound("give --shop with a Telegram user id")
        conversation = await _conversation_for(session, shop_id, customer, telegram_user_id)
        shop = await session.get(Shop, shop_id)
        assert shop is not None
        if bots is None:
            if customer is None:
                raise ConversationNotFound("answering someone not linked needs Telegram now")
            event = await store.record_support_reply(
                session=session, customer=customer, text=text, outbox_id=None, now=now
            )
            row = await schedule(
                session=session,
                shop_id=customer.shop_id,
                customer_id=customer.id,  # type: ignore[arg-type]
                kind=REPLY_KIND,
                dedupe_key=f"support:{customer.id}:{event.id}",
                due_at=now,
                lane=Lane.TRANSACTIONAL,
                payload={"text": text, "conversation_id": conversation.id},
                now=now,
            )
            assert row is not None
            event.payload = {**event.payload, "outbox_id": row.id}
            session.add(event)
            await desk.add_message(
                session=session,
                shop_id=shop_id,
                conversation_id=conversation.id,
                direction="out",
                content="text",
                text=_clip(text),
                outbox_id=row.id,
                relay=desk.NONE,
                created_at=now,
            )
            if conversation.first_response_at is None:
                conversation.first_response_at = now
            conversation.last_answer_at = now
            session.add(conversation)
            return Answer(conversation.id, False, "queued", outbox_id=row.id)
    services = Services(sessions=sessions, clock=clock, settings=settings, bots=bots)
    shop_name = shop.name
    return await answer(
        services,
        shop=shop,
        conversation=conversation,
        text=lambda: texts.support_answer(shop_name, text),
        stored_text=text,
        release_when_unsure=True,
    )


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


async def close_conversation(
    services: Services, *, shop: Shop, conversation: SupportConversation
) -> Sent:
    """Close a conversation: promos may resume; the customer is told (localized)."""
    now = services.clock.now()
    async with transaction(services.sessions) as session:
        fresh = await session.get(SupportConversation, conversation.id)
        assert fresh is not None
        fresh.state = SupportState.CLOSED
        fresh.closed_at = now
        session.add(fresh)
        customer = None
        if fresh.customer_id is not None:
            customer = await session.get(Customer, fresh.customer_id)
            await session.execute(
                update(Customer)
                .where(Customer.id == fresh.customer_id)  # type: ignore[arg-type]
                .values(support_open_since=None)
                .execution_options(synchronize_session=False)
            )
        chat_id = customer.telegram_chat_id if customer else fresh.telegram_user_id
        locale = _customer_locale(shop, customer, fresh)
    assert shop.bot_token is not None
    bot = services.bots.get(shop.bot_token)
    i18n = get_i18n()
    with i18n.context(), i18n.use_locale(locale):
        body = desk_texts.closed()
    return await call_telegram(lambda: bot.send_message(chat_id=chat_id, text=body))


# ------------------------------------------------------------------ the group's rights


async def support_group_problems(bot: Bot, chat_id: int) -> list[str]:
    """Say what keeps the bot from running support in a group; empty when nothing does."""
    try:
        chat = await bot.get_chat(chat_id=chat_id)
        me = await bot.get_chat_member(chat_id=chat_id, user_id=bot.id)
    except (TelegramBadRequest, TelegramForbiddenError) as exc:
        return [f"the bot in the group ({exc.message})"]
    problems = []
    if chat.type != "supergroup" or not chat.is_forum:
        problems.append("topics (turn on Topics in the group settings)")
    if me.status == "creator":
        return problems
    if me.status in ("left", "kicked"):
        return [*problems, "the bot in the group"]
    if me.status != "administrator":
        problems.append("administrator rights")
    if not getattr(me, "can_manage_topics", False):
        problems.append("the right to manage topics")
    if me.status == "restricted" and not getattr(me, "can_send_messages", True):
        problems.append("the right to post messages")
    return problems


# --------------------------------------------------------------------------- the inbox


@dataclass(slots=True)
class Conversation:
    """One customer waiting for the shop: what they wrote since the shop last answered."""

    customer: Customer | None
    items: list[CustomerEvent | SupportMessage] = field(default_factory=list)
    conversation: SupportConversation | None = None
    answers: list[tuple[SupportMessage, str | None]] = field(default_factory=list)
    offers: dict[int, Outbox] = field(default_factory=dict)

    @property
    def last_at(self) -> datetime | None:
        """Return when the customer last wrote."""
        if not self.items:
            return self.conversation.last_customer_at if self.conversation else None
        item = self.items[-1]
        return item.occurred_at if isinstance(item, CustomerEvent) else item.created_at

    def as_dict(self) -> dict[str, Any]:
        """Describe the conversation for the CLI."""
        c = self.customer
        conv = self.conversation
        name = None
        if c is not None:
            name = " ".join(part for part in (c.first_name, c.last_name) if part) or None
        undelivered = [
            {"at": m.created_at.isoformat(), "text": m.text, "error": m.error, "state": state}
            for m, state in self.answers
        ]
        return {
            "customer_id": c.id if c else None,
            "linked": c is not None,
            "telegram_user_id": conv.telegram_user_id
            if conv
            else c.telegram_chat_id
            if c
            else None,
            "conversation_id": conv.id if conv else None,
            "name": name,
            "email": c.email if c else None,
            "phone": c.phone if c else None,
            "telegram_username": c.telegram_username if c else None,
            "needs_follow_up": c.needs_follow_up if c else False,
            "nps_score": c.nps_score if c else None,
            "undelivered": undelivered,
            "messages": [self._item(i) for i in self.items],
        }

    def _item(self, item: CustomerEvent | SupportMessage) -> dict[str, Any]:
        if isinstance(item, CustomerEvent):
            p = item.payload
            return {
                "at": item.occurred_at.isoformat(),
                "type": item.type,
                "content": p.get("content", "text"),
                "text": p.get("text"),
                "score": p.get("score"),
                "order_id": p.get("order_id"),
                "outbox_id": p.get("outbox_id"),
                "offer_kind": p.get("offer_kind"),
                "offer_topic": p.get("offer_topic"),
            }
        offer = self.offers.get(item.outbox_id or 0)
        return {
            "at": item.created_at.isoformat(),
            "type": "reply",
            "content": item.content,
            "text": item.text,
            "score": None,
            "order_id": None,
            "outbox_id": item.outbox_id,
            "offer_kind": offer.kind if offer else None,
            "offer_topic": offer.topic if offer else None,
        }


_FAILED_OUTBOX = {
    OutboxState.BLOCKED,
    OutboxState.FAILED,
    OutboxState.SKIPPED,
    OutboxState.CANCELLED,
    OutboxState.UNKNOWN,
}


async def inbox(
    sessions: async_sessionmaker[AsyncSession], *, shop_id: int, since: datetime | None = None
) -> list[Conversation]:
    """Return who waits for the shop: open conversations not answered (or answered but not
    delivered), linked or not, and flagged NPS detractors; the longest wait first."""
    async with sessions() as session:
        legacy = await store.support_inbox(session=session, shop_id=shop_id, since=since)
        found: dict[Any, Conversation] = {}
        query = (
            select(SupportConversation, Customer)
            .outerjoin(Customer, Customer.id == SupportConversation.customer_id)  # type: ignore[arg-type]
            .where(
                SupportConversation.shop_id == shop_id,
                SupportConversation.state == SupportState.OPEN,
            )
            .order_by(SupportConversation.id)  # type: ignore[arg-type]
        )
        for conversation, customer in (await session.execute(query)).all():
            messages = await desk.conversation_messages(
                session=session,
                conversation_id=conversation.id,  # type: ignore[arg-type]
            )
            outbox_ids = [m.outbox_id for m in messages if m.outbox_id]
            states: dict[int, Outbox] = {}
            if outbox_ids:
                rows = await session.scalars(select(Outbox).where(Outbox.id.in_(outbox_ids)))  # type: ignore[union-attr]
                states = {r.id: r for r in rows if r.id is not None}
            waiting: list[SupportMessage] = []
            failed: list[tuple[SupportMessage, str | None]] = []
            for m in messages:
                if m.direction == "in":
                    if since is None or m.created_at >= since:
                        waiting.append(m)
                elif m.direction == "out":
                    row = states.get(m.outbox_id or 0)
                    state = row.state if row is not None else None
                    stuck = (
                        m.relay == desk.SENDING
                        and m.outbox_id is None
                        and (m.created_at < datetime.now(UTC) - STUCK_AFTER)
                    )  # the sender died mid-send: whether it arrived is unknown
                    if m.relay == desk.UNDELIVERED or state in _FAILED_OUTBOX or stuck:
                        failed.append((m, state or ("unknown" if stuck else None)))
                    else:
                        waiting = []
            if not waiting and not failed:
                continue
            key = customer.id if customer else ("tg", conversation.telegram_user_id)
            found[key] = Conversation(
                customer=customer,
                items=list(waiting),
                conversation=conversation,
                answers=failed,
                offers={k: v for k, v in states.items()},
            )
        for item in legacy:
            existing = found.get(item.customer.id)
            extra = [e for e in item.items if e.type != "reply"]
            if existing is not None:
                existing.items = sorted(
                    [*existing.items, *extra],
                    key=lambda i: i.occurred_at if isinstance(i, CustomerEvent) else i.created_at,
                )
            elif extra or item.customer.needs_follow_up:
                found[item.customer.id] = Conversation(customer=item.customer, items=extra)
    result = list(found.values())
    result.sort(key=lambda c: (c.last_at is None, c.last_at or datetime.max.replace(tzinfo=UTC)))
    return result


# ------------------------------------------------------------------------ the card


async def profile_card(
    session: AsyncSession, shop: Shop, conversation: SupportConversation
) -> str:
    """Render the profile card agents see as a topic's first post (and on /profile)."""
    e = desk_texts.e
    lines: list[str] = []
    locale = conversation.locale or "?"
    if conversation.customer_id is None:
        who = e(conversation.name or "—")
        lines.append(
            f"👤 <b>{who}</b> · not linked · Telegram user {conversation.telegram_user_id}"
        )
        lines.append(f"Locale: {e(locale)}")
        lines.append(desk_texts.NOT_LINKED)
        return "\n".join(lines)
    card = await customer_card(
        session=session, customer_id=conversation.customer_id, shop_id=shop.id
    )
    if card is None:
        return f"Customer #{conversation.customer_id} (profile gone)"
    p, consent = card["profile"], card["consent"]
    name = " ".join(x for x in (p["first_name"], p["last_name"]) if x) or "—"
    lines.append(f"👤 <b>{e(name)}</b> · customer #{card['customer_id']}")
    lines.append(f"Locale: {e(p['locale'] or locale)}")
    contacts = [x for x in (p["email"], p["phone"]) if x]
    if consent["telegram_username"]:
        contacts.append("@" + consent["telegram_username"])
    lines.append("Contacts: " + (e(", ".join(contacts)) if contacts else "—"))
    state = consent["consent"]
    if consent["unreachable_since"]:
        state += ", blocked the bot"
    if consent["promos_paused_until"]:
        state += f", promos paused until {consent['promos_paused_until'][:10]}"
    lines.append(f"Consent: {e(state)}")
    exclusions = ", ".join(x["topic"] for x in card["exclusions"]) or "—"
    lines.append(f"Not interested in: {e(exclusions)}")
    cart = (
        await session.scalars(
            select(Cart)
            .where(
                Cart.shop_id == shop.id,
                Cart.customer_id == conversation.customer_id,
                Cart.status == CartStatus.OPEN,
            )
            .order_by(Cart.updated_at.desc())  # type: ignore[attr-defined]
            .limit(1)
        )
    ).first()
    if cart is not None:
        items = list(
            (await session.scalars(select(CartItem).where(CartItem.cart_id == cart.id))).all()
        )
        total = (
            format_money(cart.total, cart.currency or shop.currency, "en")
            if cart.total is not None
            else "?"
        )
        titles = ", ".join(f"{i.title} ×{i.quantity}" for i in items[:5])
        lines.append(f"Open cart: {e(total)} — {e(titles) or 'empty'}")
    else:
        lines.append("Open cart: —")
    metrics = await session.get(CustomerMetrics, conversation.customer_id)
    orders = len([o for o in card["orders"] if o["status"] != "cancelled"])
    if metrics is not None:
        revenue = format_money(metrics.revenue, shop.currency, "en")
        lines.append(f"Orders: {metrics.orders_count} · revenue {e(revenue)}")
        lines.append(f"Stage: {e(metrics.stage)}")
    else:
        lines.append(f"Orders: {orders}")
        lines.append("Stage: —")
    lines.append(f"Last NPS: {p['nps_score'] if p['nps_score'] is not None else '—'}")
    codes = ", ".join(f"{c['code']} ({c['pool']})" for c in card["codes"]) or "—"
    lines.append(f"Codes: {e(codes)}")
    sent = (
        await session.scalars(
            select(Outbox)
            .where(
                Outbox.shop_id == shop.id,
                Outbox.customer_id == conversation.customer_id,
                Outbox.state == OutboxState.SENT,
                Outbox.kind.not_in((REPLY_KIND, COPY_KIND)),  # type: ignore[attr-defined]
            )
            .order_by(Outbox.sent_at.desc(), Outbox.id.desc())  # type: ignore[union-attr]
            .limit(1)
        )
    ).first()
    if sent is not None:
        when = format_datetime(sent.sent_at, "en", shop.timezone) if sent.sent_at else "?"
        about = f" ({sent.topic})" if sent.topic else ""
        lines.append(f"Last message from us: {e(sent.kind)}{e(about)}, {e(when)}")
    else:
        lines.append("Last message from us: —")
    return "\n".join(lines)


def topic_name(conversation: SupportConversation, customer: Customer | None, first: str) -> str:
    """Name a customer's topic: their name, locale and shop customer id (or "not linked")."""
    name = first
    if customer is not None:
        name = " ".join(x for x in (customer.first_name, customer.last_name) if x) or first
    locale = (customer.locale if customer else None) or conversation.locale or "?"
    who = f"#{customer.id}" if customer else "not linked"
    title = f"{name} · {locale} · {who}"
    return title if len(title) <= 128 else title[:127] + "…"


# ------------------------------------------------------------------------ the relay


@dataclass
class RelayCounts:
    """What relay cycles did."""

    relayed: int = 0
    topics: int = 0
    retried: int = 0


class SupportRelay:
    """Copies queued messages into the support group's topics, within the group's limit.

    Telegram lets a bot post about 20 messages a minute in one group; every post (copies, cards,
    notices) waits for the group's window. A message Telegram refuses now is tried again later
    with a growing pause: never dropped.
    """

    def __init__(
        self,
        services: Services,
        *,
        per_group: int = 20,
        window: float = 60.0,
        batch: int = 50,
        lease: timedelta = timedelta(minutes=2),
        max_backoff: timedelta = timedelta(minutes=10),
    ) -> None:
        self.services = services
        self.limiter = SlidingWindowLimiter(per_group / window, None, window=window)
        self.batch = batch
        self.lease = lease
        self.max_backoff = max_backoff
        self.counts = RelayCounts()

    async def run_once(self) -> int:
        """Relay one batch of due messages in order; return how many were taken."""
        now = self.services.clock.now()
        async with transaction(self.services.sessions) as session:
            rows = await desk.claim_relays(
                session=session, now=now, limit=self.batch, lease=self.lease
            )
        for row in rows:
            try:
                await self._relay(row)
            except Exception as exc:  # one bad message must not stop the others
                log.exception("support relay of message %s failed", row.id)
                await self._later(row, f"{type(exc).__name__}: {exc}")
        return len(rows)

    async def drain(self, *, max_cycles: int = 1000) -> RelayCounts:
        """Relay until nothing is due."""
        for _ in range(max_cycles):
            if not await self.run_once():
                break
        return self.counts

    async def run_forever(self, stop: asyncio.Event, poll: float = 1.0) -> None:
        """Relay until `stop` is set."""
        while not stop.is_set():
            try:
                taken = await self.run_once()
            except Exception:
                log.exception("support relay cycle failed")
                taken = 0
            if not taken:
                try:
                    await asyncio.wait_for(stop.wait(), poll)
                except TimeoutError:
                    pass

    async def _later(self, row: SupportMessage, error: str, delay: float | None = None) -> None:
        now = self.services.clock.now()
        if delay is None:
            delay = min(self.max_backoff.total_seconds(), 5.0 * 2 ** max(0, row.attempts - 1))
        self.counts.retried += 1
        async with transaction(self.services.sessions) as session:
            await session.execute(
                update(SupportMessage)
                .where(SupportMessage.id == row.id)  # type: ignore[arg-type]
                .values(
                    relay=desk.PENDING,
                    error=error[:2000],
                    next_attempt_at=now + timedelta(seconds=delay),
                )
                .execution_options(synchronize_session=False)
            )

    async def _post(self, bot: Bot, group: int, send: Callable[[], Any]) -> Sent:
        await self.limiter.acquire(("group", bot.id, group), group)
        return await call_telegram(send)

    async def _relay(self, row: SupportMessage) -> None:
        async with self.services.sessions() as session:
            shop = await session.get(Shop, row.shop_id)
            conversation = await session.get(SupportConversation, row.conversation_id)
        assert shop is not None and conversation is not None
        group = load_shop_settings(shop.settings).support_chat_id
        if group is None or not shop.bot_token or shop.uninstalled_at is not None:
            await self._later(row, "no support group connected", delay=60.0)
            return
        bot = self.services.bots.get(shop.bot_token)
        topic, problem = await self._topic(bot, shop, group, conversation)
        if topic is None:
            await self._later(row, problem or "could not open a topic")
            return
        thread = topic.thread_id
        if row.direction == "in" and row.source_chat_id and row.source_message_id:
            source_chat, source_message = row.source_chat_id, row.source_message_id
            sent = await self._post(
                bot,
                group,
                lambda: bot.copy_message(
                    chat_id=group,
                    from_chat_id=source_chat,
                    message_id=source_message,
                    message_thread_id=thread,
                ),
            )
            if sent.status == "failed" and "not found" in (sent.error or "").lower():
                if "thread" in (sent.error or "").lower():
                    await self._forget_topic(topic)
                    await self._later(row, sent.error or "", delay=0.0)
                    return
                text = f"[{row.content}] {row.text or ''}".strip()
                sent = await self._post(
                    bot,
                    group,
                    lambda: bot.send_message(
                        chat_id=group, text=desk_texts.e(text), message_thread_id=thread
                    ),
                )
        else:
            body = row.text or ""
            sent = await self._post(
                bot,
                group,
                lambda: bot.send_message(chat_id=group, text=body, message_thread_id=thread),
            )
        if sent.status == "sent":
            now = self.services.clock.now()
            async with transaction(self.services.sessions) as session:
                await session.execute(
                    update(SupportMessage)
                    .where(SupportMessage.id == row.id)  # type: ignore[arg-type]
                    .values(
                        relay=desk.DONE,
                        copy_chat_id=group,
                        copy_message_id=sent.message_id,
                        relayed_at=now,
                        error=None,
                    )
                    .execution_options(synchronize_session=False)
                )
            self.counts.relayed += 1
            return
        if "thread" in (sent.error or "").lower():
            await self._forget_topic(topic)
            await self._later(row, sent.error or "", delay=0.0)
            return
        await self._later(row, sent.error or sent.status)

    async def _forget_topic(self, topic: SupportTopic) -> None:
        async with transaction(self.services.sessions) as session:
            fresh = await session.get(SupportTopic, topic.id)
            if fresh is not None:
                await session.delete(fresh)

    async def _topic(
        self, bot: Bot, shop: Shop, group: int, conversation: SupportConversation
    ) -> tuple[SupportTopic | None, str | None]:
        """Return the user's topic in the group: created with the card, or reopened."""
        async with self.services.sessions() as session:
            topic = await desk.topic_of_user(
                session=session,
                shop_id=shop.id,  # type: ignore[arg-type]
                chat_id=group,
                telegram_user_id=conversation.telegram_user_id,
            )
            customer = (
                await session.get(Customer, conversation.customer_id)
                if conversation.customer_id
                else None
            )
            if topic is None:
                first = await self._first_name(session, conversation)
                name = topic_name(conversation, customer, first)
                card = await profile_card(session, shop, conversation)
        if topic is not None:
            if topic.closed:
                result = await call_telegram(
                    lambda: bot.reopen_forum_topic(
                        chat_id=group,
                        message_thread_id=topic.thread_id,  # type: ignore[arg-type]
                    )
                )
                if (
                    result.status == "failed"
                    and "not_modified" not in (result.error or "").lower()
                ):
                    if "topic_id_invalid" in (result.error or "").lower():
                        await self._forget_topic(topic)
                        return None, result.error
                async with transaction(self.services.sessions) as session:
                    await session.execute(
                        update(SupportTopic)
                        .where(SupportTopic.id == topic.id)  # type: ignore[arg-type]
                        .values(closed=False)
                        .execution_options(synchronize_session=False)
                    )
                topic.closed = False
            return topic, None
        await self.limiter.acquire(("group", bot.id, group), group)
        created: dict[str, Any] = {}

        async def create() -> Any:
            made = await bot.create_forum_topic(chat_id=group, name=name)
            created["thread"] = made.message_thread_id
            return made

        result = await call_telegram(create)
        if result.status != "sent" or "thread" not in created:
            return None, result.error
        now = self.services.clock.now()
        async with transaction(self.services.sessions) as session:
            topic = SupportTopic(
                shop_id=shop.id,  # type: ignore[arg-type]
                chat_id=group,
                telegram_user_id=conversation.telegram_user_id,
                thread_id=created["thread"],
                name=name,
                created_at=now,
            )
            session.add(topic)
            await session.flush()
        self.counts.topics += 1
        posted = await self._post(
            bot,
            group,
            lambda: bot.send_message(
                chat_id=group, text=card, message_thread_id=created["thread"]
            ),
        )
        if posted.status != "sent":
            log.warning(
                "profile card for topic %s not posted: %s", created["thread"], posted.error
            )
        return topic, None

    async def _first_name(self, session: AsyncSession, conversation: SupportConversation) -> str:
        return conversation.name or f"Telegram {conversation.telegram_user_id}"


async def queue_post(
    services: Services, *, shop: Shop, conversation: SupportConversation, text: str, kind: str
) -> None:
    """Queue a post for the agents in the customer's topic (a card or a notice)."""
    now = services.clock.now()
    async with transaction(services.sessions) as session:
        await desk.add_message(
            session=session,
            shop_id=shop.id,
            conversation_id=conversation.id,
            direction=kind,
            content="text",
            text=text[:4000],
            relay=desk.PENDING,
            next_attempt_at=now,
            created_at=now,
        )


async def relay_context(app: Any) -> Any:
    """Run the support relay beside the web app."""
    from bot.web.keys import SERVICES

    relay = SupportRelay(app[SERVICES])
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run_forever(stop), name="nudge-support-relay")
    yield
    stop.set()
    try:
        await asyncio.wait_for(task, timeout=10)
    except TimeoutError:
        log.error("the support relay did not stop within 10 s")


# ------------------------------------------------------------------ message kinds


def render_reply(ctx: RenderContext) -> Rendered:
    """Render the shop's answer to a customer."""
    return Rendered(text=texts.support_answer(ctx.shop.name, str(ctx.payload.get("text") or "")))


def render_copy(ctx: RenderContext) -> Rendered:
    """An agent's copy is sent by the support desk itself, never by the dispatcher."""
    raise SkipMessage("support_copy")


register_kind(REPLY_KIND, render=render_reply)
register_kind(COPY_KIND, render=render_copy)

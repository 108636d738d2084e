"""The support group: `/connect_support`, and agents answering customers in their topics.

Only the shop's connected group counts, and in it only messages inside a customer's topic
from a member of the group; the general topic, other groups and people outside are ignored.
In a topic: a message goes to the customer as a copy (an edit follows as an edit); `#note …`
stays internal; `/close`, `/profile`, `/code [pool]`, `/stop_promos` and `/link e-mail|phone`
act on the customer.
"""

from __future__ import annotations

import re
from datetime import timedelta

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy import select

from bot.db import transaction
from bot.messages import support as texts
from bot.models import Customer, Shop, SupportConversation, SupportState, SupportTopic
from bot.services import Services
from bot.shop_settings import apply_setting, load_shop_settings
from bot.store import preferences as preference_store
from bot.store import support_desk as desk
from bot.store.codes import issue_code
from bot.store.customers import bind_chat, find_by_email, find_by_phone
from bot.support import (
    answer,
    call_telegram,
    close_conversation,
    message_content,
    profile_card,
    queue_post,
    support_group_problems,
)

GROUP_TYPES = {"group", "supergroup"}
AGENT_STATUSES = {"creator", "administrator", "member", "restricted"}
NOTE = re.compile(r"\s*#note\b", re.IGNORECASE)
STOP_PROMOS_FOR = timedelta(days=365)


def build_router() -> Router:
    """Return a fresh router for group chats (the support group)."""
    router = Router(name=__name__)
    router.message.filter(F.chat.type.in_(GROUP_TYPES))
    router.edited_message.filter(F.chat.type.in_(GROUP_TYPES))
    router.message.register(connect_support, Command("connect_support"))
    router.message.register(topic_message)
    router.edited_message.register(topic_edit)
    return router


async def connect_support(message: Message, bot: Bot, shop: Shop, services: Services) -> None:
    """Connect this forum group as the shop's support desk, if the bot's rights allow it."""
    if message.from_user is None:
        return
    sender = await bot.get_chat_member(chat_id=message.chat.id, user_id=message.from_user.id)
    if sender.status not in ("creator", "administrator"):
        await message.reply(texts.NOT_ADMIN)
        return
    if not message.chat.is_forum:
        await message.reply(texts.NOT_FORUM)
        return
    missing = await support_group_problems(bot, message.chat.id)
    if missing:
        await message.reply(texts.MISSING.format(missing=", ".join(missing)))
        return
    async with transaction(services.sessions) as session:
        fresh = await session.get(Shop, shop.id)
        assert fresh is not None
        fresh.settings = apply_setting(fresh.settings, "support_chat_id", str(message.chat.id))
        session.add(fresh)
    await message.reply(texts.CONNECTED)


async def _in_topic(
    message: Message, bot: Bot, shop: Shop, services: Services
) -> tuple[SupportTopic, SupportConversation] | None:
    """Return the customer's topic and conversation a group message belongs to, or None."""
    group = load_shop_settings(shop.settings).support_chat_id
    if group is None or message.chat.id != group:
        return None
    if message.from_user is None or message.from_user.is_bot:
        return None
    thread = message.message_thread_id
    if not message.is_topic_message or thread is None:
        return None
    if message.forum_topic_created or message.forum_topic_closed or message.forum_topic_reopened:
        return None
    async with services.sessions() as session:
        topic = await desk.topic_of_thread(
            session=session,
            shop_id=shop.id,  # type: ignore[arg-type]
            chat_id=group,
            thread_id=thread,
        )
        if topic is None:
            return None
        query = (
            select(SupportConversation)
            .where(
                SupportConversation.shop_id == shop.id,
                SupportConversation.telegram_user_id == topic.telegram_user_id,
            )
            .order_by(SupportConversation.id.desc())  # type: ignore[union-attr]
            .limit(1)
        )
        conversation = (await session.scalars(query)).first()
    if conversation is None:
        return None
    member = await bot.get_chat_member(chat_id=group, user_id=message.from_user.id)
    if member.status not in AGENT_STATUSES:
        return None
    return topic, conversation


async def topic_message(message: Message, bot: Bot, shop: Shop, services: Services) -> None:
    """Handle an agent's message in a customer's topic: answer, note or command."""
    found = await _in_topic(message, bot, shop, services)
    if found is None:
        return
    _topic, conversation = found
    text = message.text or ""
    command = text.split(maxsplit=1)[0].split("@", 1)[0].lower() if text.startswith("/") else ""
    argument = text.split(maxsplit=1)[1].strip() if len(text.split(maxsplit=1)) > 1 else ""
    if command in COMMANDS:
        await COMMANDS[command](message, shop, services, conversation, argument)
        return
    content, body, file_id = message_content(message)
    if NOTE.match(message.text or message.caption or ""):
        async with transaction(services.sessions) as session:
            await desk.add_message(
                session=session,
                shop_id=shop.id,
                conversation_id=conversation.id,
                direction="note",
                content=content,
                text=body,
                file_id=file_id,
                source_chat_id=message.chat.id,
                source_message_id=message.message_id,
                agent_user_id=message.from_user.id if message.from_user else None,
                created_at=services.clock.now(),
            )
        return
    result = await answer(
        services,
        shop=shop,
        conversation=conversation,
        copy_of=(message.chat.id, message.message_id),
        agent_user_id=message.from_user.id if message.from_user else None,
        source=(message.chat.id, message.message_id),
        stored_text=body,
        content=content,
    )
    if not result.delivered and not result.duplicate:
        reason = texts.DELIVERY_REASONS.get(result.reason or "", result.error or "unknown")
        await queue_post(
            services,
            shop=shop,
            conversation=conversation,
            text=texts.UNDELIVERED.format(reason=texts.e(reason)),
            kind="notice",
        )


async def topic_edit(message: Message, bot: Bot, shop: Shop, services: Services) -> None:
    """Relay an agent's edit to the copy the customer got."""
    found = await _in_topic(message, bot, shop, services)
    if found is None:
        return
    async with services.sessions() as session:
        stored = await desk.find_by_source(
            session=session,
            shop_id=shop.id,  # type: ignore[arg-type]
            chat_id=message.chat.id,
            message_id=message.message_id,
        )
    if stored is None or stored.direction != "out" or stored.copy_message_id is None:
        return
    chat_id, copy_id = stored.copy_chat_id, stored.copy_message_id
    assert chat_id is not None
    if message.text is not None:
        sent = await call_telegram(
            lambda: bot.edit_message_text(
                chat_id=chat_id,
                message_id=copy_id,
                text=message.text or "",
                entities=message.entities,
                parse_mode=None,
            )
        )
    else:
        sent = await call_telegram(
            lambda: bot.edit_message_caption(
                chat_id=chat_id,
                message_id=copy_id,
                caption=message.caption or "",
                caption_entities=message.caption_entities,
                parse_mode=None,
            )
        )
    if sent.status == "sent" or "not modified" in (sent.error or "").lower():
        async with transaction(services.sessions) as session:
            fresh = await session.get(type(stored), stored.id)
            if fresh is not None:
                fresh.text = message.text or message.caption
                session.add(fresh)


# -------------------------------------------------------------------------- commands


async def close_command(
    message: Message, shop: Shop, services: Services, conversation: SupportConversation, _: str
) -> None:
    """/close: end the conversation, tell the customer, close the topic."""
    if conversation.state == SupportState.OPEN:
        await close_conversation(services, shop=shop, conversation=conversation)
    bot = message.bot
    assert bot is not None and message.message_thread_id is not None
    thread = message.message_thread_id
    await message.reply(texts.CLOSED)
    closed = await call_telegram(
        lambda: bot.close_forum_topic(chat_id=message.chat.id, message_thread_id=thread)
    )
    if closed.status == "sent" or "not_modified" in (closed.error or "").lower():
        async with transaction(services.sessions) as session:
            topic = await desk.topic_of_thread(
                session=session,
                shop_id=shop.id,  # type: ignore[arg-type]
                chat_id=message.chat.id,
                thread_id=thread,
            )
            if topic is not None:
                topic.closed = True
                session.add(topic)


async def profile_command(
    message: Message, shop: Shop, services: Services, conversation: SupportConversation, _: str
) -> None:
    """/profile: post a fresh profile card in the topic."""
    async with services.sessions() as session:
        card = await profile_card(session, shop, conversation)
    await queue_post(services, shop=shop, conversation=conversation, text=card, kind="card")


async def _linked(
    message: Message, services: Services, conversation: SupportConversation
) -> Customer | None:
    if conversation.customer_id is None:
        await message.reply(texts.NOT_LINKED)
        return None
    async with services.sessions() as session:
        return await session.get(Customer, conversation.customer_id)


async def code_command(
    message: Message,
    shop: Shop,
    services: Services,
    conversation: SupportConversation,
    argument: str,
) -> None:
    """/code [pool]: give the customer a personal code from the pool and send it."""
    customer = await _linked(message, services, conversation)
    if customer is None:
        return
    pool = argument.split()[0] if argument else load_shop_settings(shop.settings).support_code_pool
    async with transaction(services.sessions) as session:
        code = await issue_code(
            session=session,
            shop_id=shop.id,  # type: ignore[arg-type]
            pool=pool,
            customer_id=customer.id,  # type: ignore[arg-type]
            now=services.clock.now(),
        )
    if code is None:
        await message.reply(texts.NO_CODE.format(pool=texts.e(pool)))
        return
    result = await answer(
        services,
        shop=shop,
        conversation=conversation,
        text=lambda: texts.personal_code(code),
        source=(message.chat.id, message.message_id),
        stored_text=f"code {code}",
        agent_user_id=message.from_user.id if message.from_user else None,
    )
    if result.delivered:
        await message.reply(texts.CODE_SENT.format(code=texts.e(code), pool=texts.e(pool)))
    elif not result.duplicate:
        reason = texts.DELIVERY_REASONS.get(result.reason or "", result.error or "unknown")
        await message.reply(texts.UNDELIVERED.format(reason=texts.e(reason)))


async def stop_promos_command(
    message: Message, shop: Shop, services: Services, conversation: SupportConversation, _: str
) -> None:
    """/stop_promos: pause automated promos to the customer (a year; /settings resumes)."""
    customer = await _linked(message, services, conversation)
    if customer is None:
        return
    until = services.clock.now() + STOP_PROMOS_FOR
    async with transaction(services.sessions) as session:
        fresh = await session.get(Customer, customer.id)
        assert fresh is not None
        await preference_store.pause_promos(
            session=session, customer=fresh, until=until, now=services.clock.now()
        )
    await message.reply(texts.PROMOS_STOPPED.format(until=until.date().isoformat()))


async def link_command(
    message: Message,
    shop: Shop,
    services: Services,
    conversation: SupportConversation,
    argument: str,
) -> None:
    """/link e-mail|phone: bind the customer's chat to the shop profile (consent unchanged)."""
    wanted = argument.strip()
    async with transaction(services.sessions) as session:
        if "@" in wanted:
            customer = await find_by_email(
                session=session,
                shop_id=shop.id,  # type: ignore[arg-type]
                email=wanted.lower(),
            )
        else:
            customer = await find_by_phone(
                session=session,
                shop_id=shop.id,  # type: ignore[arg-type]
                phone=re.sub(r"[^\d+]", "", wanted),
            )
        if customer is None:
            await message.reply(texts.LINK_NOT_FOUND)
            return
        bound = await bind_chat(
            session=session,
            customer=customer,
            chat_id=conversation.telegram_user_id,
            username=None,
            now=services.clock.now(),
        )
        if bound is None:
            await message.reply(texts.LINK_TAKEN)
            return
        fresh = await session.get(SupportConversation, conversation.id)
        assert fresh is not None
        fresh.customer_id = customer.id
        session.add(fresh)
        if fresh.state == SupportState.OPEN:
            customer.support_open_since = customer.support_open_since or services.clock.now()
            session.add(customer)
    await message.reply(texts.LINKED.format(id=customer.id))


COMMANDS = {
    "/close": close_command,
    "/profile": profile_command,
    "/code": code_command,
    "/stop_promos": stop_promos_command,
    "/link": link_command,
}

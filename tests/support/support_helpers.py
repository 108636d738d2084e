"""Helpers for the support desk tests: people, a connected forum group, the relay, the CLI."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select, text

from bot.cli import cli
from bot.db import transaction
from bot.migrate import head_revision
from bot.models import (
    Customer,
    Outbox,
    Shop,
    SupportConversation,
    SupportMessage,
    SupportTopic,
)
from bot.playground import Playground
from bot.sandbox import Customer as Chat
from bot.sandbox import ForumGroup
from bot.store.customers import add_customer
from bot.store.outbox import schedule
from bot.support import SupportRelay

LOCALES = ["en", "ru", "uk", "pl"]
AGENT_ID = 500
# What a customer is told when their conversation opens, per locale.
RECEIVED = {
    "en": "Thank you! We have passed your message to our team; they will answer here.",
    "ru": "Спасибо! Мы передали ваше сообщение",
    "uk": "Дякуємо! Ми передали ваше повідомлення",
    "pl": "Dziękujemy! Przekazaliśmy Twoją wiadomość",
}
QUESTIONS = {
    "en": "Hello, do you ship to Canada?",
    "ru": "Здравствуйте, доставляете в Казахстан?",
    "uk": "Де моє замовлення #1001?",
    "pl": "Dzień dobry, czy wysyłacie do Polski?",
}
NAMES = {"en": "Emma", "ru": "Ольга", "uk": "Олена", "pl": "Zofia"}


@dataclass
class Person:
    """A linked, subscribed customer: their profile id and their chat."""

    id: int
    chat: Chat


async def person(pg: Playground, shop: Shop, user_id: int, locale: str = "en", **fields: Any):
    """Create a subscribed profile linked to a new chat (as if they had followed the link)."""
    first_name = fields.pop("first_name", NAMES[locale])
    async with transaction(pg.services.sessions) as session:
        profile = await add_customer(
            session=session,
            shop_id=shop.id,
            now=pg.clock.now(),
            first_name=first_name,
            telegram_chat_id=user_id,
            consent="opted_in",
            consent_source="deep_link",
            consent_at=pg.clock.now(),
            locale=locale,
            **fields,
        )
    chat = pg.customer(shop, user_id=user_id, first_name=first_name, language_code=locale)
    return Person(profile.id, chat)


def stranger(pg: Playground, shop: Shop, user_id: int, locale: str) -> Chat:
    """A Telegram user who never linked their chat."""
    return pg.customer(shop, user_id=user_id, first_name=NAMES[locale], language_code=locale)


async def connect(pg: Playground, shop: Shop, chat_id: int = -1001234567890) -> ForumGroup:
    """Create the shop's forum group with an admin agent and connect it with /connect_support."""
    assert shop.bot_token is not None
    group = pg.sandbox.forum_group(shop.bot_token, "Kvitka support", chat_id)
    group.add_member(AGENT_ID, "Ira", status="administrator")
    await group.post(AGENT_ID, "/connect_support")
    await pg.settle()
    reply = group.last_message()
    assert reply is not None and reply.text.startswith("✅"), reply
    return group


def relay_for(pg: Playground, *, per_group: int = 20, window: float = 60.0) -> SupportRelay:
    """The relay the service runs, driven step by step."""
    return SupportRelay(pg.services, per_group=per_group, window=window)


async def relay(pg: Playground, **limits: Any) -> None:
    """Copy every queued message into the group, then let the bot settle."""
    await relay_for(pg, **limits).drain()
    await pg.settle()


async def fresh_shop(pg: Playground, shop: Shop) -> Shop:
    async with pg.services.sessions() as session:
        found = await session.get(Shop, shop.id)
        assert found is not None
        return found


async def profile(pg: Playground, customer_id: int) -> Customer:
    async with pg.services.sessions() as session:
        found = await session.get(Customer, customer_id)
        assert found is not None
        return found


async def conversations(pg: Playground, shop: Shop) -> list[SupportConversation]:
    async with pg.services.sessions() as session:
        query = select(SupportConversation).where(SupportConversation.shop_id == shop.id)
        return list((await session.scalars(query.order_by(SupportConversation.id))).all())


async def support_messages(pg: Playground, shop: Shop) -> list[SupportMessage]:
    async with pg.services.sessions() as session:
        query = select(SupportMessage).where(SupportMessage.shop_id == shop.id)
        return list((await session.scalars(query.order_by(SupportMessage.id))).all())


async def topic_of(pg: Playground, shop: Shop, telegram_user_id: int) -> SupportTopic:
    async with pg.services.sessions() as session:
        query = select(SupportTopic).where(
            SupportTopic.shop_id == shop.id, SupportTopic.telegram_user_id == telegram_user_id
        )
        found = (await session.scalars(query)).first()
        assert found is not None, f"no topic for {telegram_user_id}"
        return found


async def promo(pg: Playground, shop: Shop, customer_id: int, key: str, lane: str = "promo"):
    """Schedule a plain text to the customer, due now; return the row."""
    async with transaction(pg.services.sessions) as session:
        return await schedule(
            session=session,
            shop_id=shop.id,
            customer_id=customer_id,
            kind="text",
            dedupe_key=key,
            due_at=pg.clock.now(),
            lane=lane,
            payload={"text": f"Offer {key}"},
            now=pg.clock.now(),
        )


async def outbox_row(pg: Playground, row_id: int) -> Outbox:
    async with pg.services.sessions() as session:
        found = await session.get(Outbox, row_id)
        assert found is not None
        return found


def topic_posts(group: ForumGroup, thread_id: int) -> list[Any]:
    """The non-service messages of a topic, in order."""
    return [e for e in group.transcript(thread_id) if e.service is None]


# ----------------------------------------------------------------------------- the CLI


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


async def nudge(*args: str) -> tuple[int, str]:
    """Run a `nudge` command in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(_invoke, *args)


async def stamp_head(database) -> None:
    """Mark the test database as migrated, as `nudge` commands expect."""
    async with database.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS alembic_version (version_num TEXT)"))
        await conn.execute(text("DELETE FROM alembic_version"))
        await conn.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": head_revision()})


async def unstamp(database) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))

"""Erasing a customer erases what they wrote to support, before and after linking."""

from __future__ import annotations

from sqlalchemy import select
from support_helpers import QUESTIONS, person, stranger

from bot.db import transaction
from bot.models import Consent, SupportConversation, SupportMessage
from bot.store.customers import add_customer
from bot.store.privacy import erase_customers


async def test_support_conversations_go_with_the_customer(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", default_locale="uk")
    zofia = stranger(pg, shop, 2001, "pl")
    await zofia.send(QUESTIONS["pl"])  # never linked: stays
    taras = stranger(pg, shop, 2003, "uk")
    await taras.send("Чи є розмір 44?")  # written before his chat was linked to a profile
    olena = await person(pg, shop, 2002, "uk")
    await olena.chat.send(QUESTIONS["uk"])
    await pg.settle()
    async with transaction(pg.services.sessions) as session:
        profile = await add_customer(
            session=session,
            shop_id=shop.id,
            now=pg.clock.now(),
            first_name="Тарас",
            telegram_chat_id=2003,
            consent=Consent.OPTED_IN,
        )
    async with transaction(pg.services.sessions) as session:
        await erase_customers(
            session=session,
            shop_id=shop.id,
            customer_ids=[olena.id, profile.id],
            now=pg.clock.now(),
        )
    async with pg.services.sessions() as session:
        left = (await session.scalars(select(SupportConversation.telegram_user_id))).all()
        texts = (await session.scalars(select(SupportMessage.text))).all()
    assert left == [2001]
    assert QUESTIONS["pl"] in texts
    assert QUESTIONS["uk"] not in texts and "Чи є розмір 44?" not in texts

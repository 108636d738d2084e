"""A customer links their Telegram chat by deep link or by sharing their phone, in every locale."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.db import transaction
from bot.linking import make_link_token
from bot.models import Customer, CustomerEvent
from bot.playground import Playground
from bot.store.customers import add_customer

WELCOME = {
    "en": "Hello, Olena! You are subscribed to updates from Kvitka",
    "ru": "Здравствуйте, Olena! Вы подписаны на уведомления магазина Kvitka",
    "uk": "Вітаємо, Olena! Ви підписані на сповіщення магазину Kvitka",
    "pl": "Dzień dobry, Olena! Zapisaliśmy Cię do powiadomień sklepu Kvitka",
}
INVALID = {
    "en": "Sorry, this link doesn't work.",
    "ru": "К сожалению, эта ссылка не работает.",
    "uk": "На жаль, це посилання не працює.",
    "pl": "Niestety ten link nie działa.",
}
SHARE_PHONE = {
    "en": "Share phone number",
    "ru": "Поделиться номером телефона",
    "uk": "Поділитися номером телефону",
    "pl": "Udostępnij numer telefonu",
}


@pytest.fixture
async def playground(database, clock):
    async with Playground(database.url, engine=database.engine, clock=clock) as pg:
        yield pg


async def _customer(pg, shop, **fields):
    async with transaction(pg.services.sessions) as session:
        return await add_customer(session=session, shop_id=shop.id, now=pg.clock.now(), **fields)


def _token(pg, shop, customer, ttl=timedelta(days=30)):
    return make_link_token(
        secret_key=pg.services.secret_key,
        shop_id=shop.id,
        customer_id=customer.id,
        now=pg.clock.now(),
        ttl=ttl,
    )


async def _stored(pg, customer_id):
    async with pg.services.sessions() as session:
        return await session.get(Customer, customer_id)


@pytest.mark.parametrize("locale", ["en", "ru", "uk", "pl"])
async def test_deep_link_links_the_chat_and_records_consent(playground, locale):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", country="UA", currency="UAH")
    profile = await _customer(pg, shop, first_name="Olena", email="olena@example.com")
    token = _token(pg, shop, profile)
    assert len(token) <= 64
    olena = pg.customer(shop, user_id=1001, first_name="Olena", language_code=locale)

    await olena.start(token)
    await pg.settle()

    assert olena.last_message().text.startswith(WELCOME[locale])
    stored = await _stored(pg, profile.id)
    assert stored.telegram_chat_id == olena.chat_id
    assert stored.consent == "opted_in" and stored.consent_source == "deep_link"
    assert stored.consent_at == pg.clock.now()

    await olena.start(token)  # the same link again: idempotent
    await pg.settle()
    async with pg.services.sessions() as session:
        events = (await session.scalars(select(CustomerEvent))).all()
    assert [e.type for e in events] == ["telegram_linked"]


@pytest.mark.parametrize("locale", ["en", "ru", "uk", "pl"])
async def test_invalid_expired_and_foreign_tokens_link_nothing(playground, locale):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    other = await pg.add_shop(name="Sklep")
    profile = await _customer(pg, shop, first_name="Olena")
    stranger = await _customer(pg, other, first_name="Marta")
    olena = pg.customer(shop, user_id=1001, first_name="Olena", language_code=locale)

    expired = _token(pg, shop, profile, ttl=timedelta(minutes=5))
    pg.clock.advance(timedelta(minutes=6))
    forged = _token(pg, shop, profile)[:-2] + "AA"
    foreign = _token(pg, other, stranger)
    for token in (expired, forged, foreign, "garbage"):
        await olena.start(token)
        await pg.settle()
    texts = [m.text for m in olena.bot_messages()]
    assert len(texts) == 4
    assert texts[0] != texts[1]  # expired says so
    for text in texts[1:]:
        assert text.startswith(INVALID[locale])
    assert olena.reply_keyboard["keyboard"][0][0]["text"] == SHARE_PHONE[locale]
    assert (await _stored(pg, profile.id)).telegram_chat_id is None
    assert (await _stored(pg, stranger.id)).telegram_chat_id is None


@pytest.mark.parametrize("locale", ["en", "ru", "uk", "pl"])
async def test_sharing_a_phone_links_to_the_customer_with_that_phone(playground, locale):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", country="UA")
    profile = await _customer(pg, shop, first_name="Olena", phone="+380501234567")
    olena = pg.customer(shop, user_id=1001, first_name="Olena", language_code=locale)

    await olena.start()
    await pg.settle()
    assert olena.reply_keyboard["keyboard"][0][0]["text"] == SHARE_PHONE[locale]
    assert olena.reply_keyboard["keyboard"][0][0]["request_contact"] is True

    await olena.share_contact("380501234567")  # Telegram sends digits without '+'
    await pg.settle()
    assert olena.last_message().text.startswith(WELCOME[locale])
    stored = await _stored(pg, profile.id)
    assert stored.telegram_chat_id == olena.chat_id and stored.consent_source == "phone"


async def test_someone_elses_contact_is_refused(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", country="UA")
    profile = await _customer(pg, shop, phone="+380501234567")
    olena = pg.customer(shop, user_id=1001, first_name="Olena", language_code="uk")
    await olena.share_contact("+380501234567", user_id=999)
    await pg.settle()
    assert (
        olena.last_message().text
        == "Будь ласка, поділіться власним номером телефону кнопкою нижче."
    )
    assert (await _stored(pg, profile.id)).telegram_chat_id is None


async def test_moving_a_chat_to_another_customer_needs_a_valid_token(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    first = await _customer(pg, shop, first_name="Olena")
    second = await _customer(pg, shop, first_name="Olena")
    chat = pg.customer(shop, user_id=1001, first_name="Olena", language_code="en")
    await chat.start(_token(pg, shop, first))
    await pg.settle()
    await chat.start(_token(pg, shop, second))
    await pg.settle()
    assert (await _stored(pg, first.id)).telegram_chat_id is None
    assert (await _stored(pg, second.id)).telegram_chat_id == chat.chat_id


async def test_the_webhook_refuses_a_wrong_secret(playground):
    import aiohttp

    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{pg.settings.public_base}/tg/{shop.id}",
            json={"update_id": 1},
            headers={"X-Telegram-Bot-Api-Secret-Token": "nope"},
        ) as response:
            assert response.status == 401

"""A customer links their Telegram chat by deep link or by sharing their phone, in every locale."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.db import transaction
from bot.linking import make_link_token
from bot.models import Customer, CustomerEvent
from bot.playground import Playground
from bot.store.customers import add_customer, find_by_chat

WELCOME = {
    "en": "Hello, Olena! You are subscribed to updates from Kvitka",
    "ru": "Здравствуйте, Olena! Вы подписаны на уведомления магазина Kvitka",
    "uk": "Вітаємо! Ви підписані на сповіщення магазину Kvitka",  # no vocative for a Latin name
    "pl": "Cześć, Oleno! Masz włączone powiadomienia sklepu Kvitka",
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


LINK_TAKEN = {
    "en": "This link is already connected to another Telegram account, so we can't use it here. "
    "If it's yours, please contact Kvitka and we'll sort it out.",
    "ru": "Эта ссылка уже привязана к другому аккаунту Telegram, поэтому использовать её здесь "
    "не получится. Если это ваша ссылка, свяжитесь с магазином Kvitka, и мы всё уладим.",
    "uk": "Це посилання вже привʼязане до іншого акаунта Telegram, тому використати його тут "
    "не вийде. Якщо це ваше посилання, звʼяжіться з магазином Kvitka, і ми все владнаємо.",
    "pl": "Ten link jest już połączony z innym kontem Telegram, więc nie możemy go tu użyć. "
    "Jeśli to Twój link, skontaktuj się ze sklepem Kvitka, a wszystko wyjaśnimy.",
}
PHONE_TAKEN = {
    "en": "This phone number is already connected to another Telegram account, so we can't "
    "link it here. If it's yours, please contact Kvitka and we'll sort it out.",
    "ru": "Этот номер телефона уже привязан к другому аккаунту Telegram, поэтому подключить его "
    "здесь не получится. Если это ваш номер, свяжитесь с магазином Kvitka, и мы всё уладим.",
    "uk": "Цей номер телефону вже привʼязаний до іншого акаунта Telegram, тому підключити його "
    "тут не вийде. Якщо це ваш номер, звʼяжіться з магазином Kvitka, і ми все владнаємо.",
    "pl": "Ten numer telefonu jest już połączony z innym kontem Telegram, więc nie możemy go tu "
    "podłączyć. Jeśli to Twój numer, skontaktuj się ze sklepem Kvitka, a wszystko wyjaśnimy.",
}
ALREADY = {
    "en": "Welcome back! You are already subscribed to updates from Kvitka.",
    "ru": "С возвращением! Вы уже подписаны на уведомления магазина Kvitka.",
    "uk": "З поверненням! Ви вже підписані на сповіщення магазину Kvitka.",
    "pl": "Witaj ponownie! Masz już włączone powiadomienia sklepu Kvitka.",
}
ASK_AGAIN = {
    "en": ("You unsubscribed earlier. Subscribe to updates from Kvitka again?", "Yes, subscribe"),
    "ru": (
        "Ранее вы отписались. Снова подписаться на уведомления магазина Kvitka?",
        "Да, подписаться",
    ),
    "uk": (
        "Раніше ви відписалися. Знову підписатися на сповіщення магазину Kvitka?",
        "Так, підписатися",
    ),
    "pl": (
        "Twoja subskrypcja jest wyłączona. "
        "Czy chcesz znowu otrzymywać powiadomienia sklepu Kvitka?",
        "Tak, zapisz mnie",
    ),
}


async def _events(pg, customer_id):
    async with pg.services.sessions() as session:
        query = select(CustomerEvent).where(CustomerEvent.customer_id == customer_id)
        return [e.type for e in (await session.scalars(query.order_by(CustomerEvent.id))).all()]


@pytest.mark.parametrize("locale", ["en", "ru", "uk", "pl"])
async def test_a_link_opened_in_a_second_chat_changes_nothing(playground, locale):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    profile = await _customer(pg, shop, first_name="Olena")
    token = _token(pg, shop, profile)
    olena = pg.customer(shop, user_id=1001, first_name="Olena", language_code=locale)
    mallory = pg.customer(shop, user_id=2002, first_name="Mallory", language_code=locale)
    await olena.start(token)
    await pg.settle()
    linked = await _stored(pg, profile.id)

    await mallory.start(token)  # the link was forwarded, or seen over a shoulder
    await pg.settle()

    assert mallory.last_message().text == LINK_TAKEN[locale]
    stored = await _stored(pg, profile.id)
    assert stored.telegram_chat_id == olena.chat_id
    assert (stored.consent, stored.consent_source, stored.consent_at) == (
        linked.consent,
        linked.consent_source,
        linked.consent_at,
    )
    async with pg.services.sessions() as session:
        found = await find_by_chat(session=session, shop_id=shop.id, chat_id=mallory.chat_id)
    assert found is None
    assert await _events(pg, profile.id) == ["telegram_linked", "telegram_link_refused"]

    await olena.start(token)  # the customer's own chat may open it again
    await pg.settle()
    assert olena.last_message().text == ALREADY[locale]
    assert (await _stored(pg, profile.id)).telegram_chat_id == olena.chat_id


@pytest.mark.parametrize("locale", ["en", "ru", "uk", "pl"])
async def test_a_link_resubscribes_an_unsubscribed_customer_only_when_they_confirm(
    playground, locale
):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    profile = await _customer(pg, shop, first_name="Olena")
    token = _token(pg, shop, profile)
    olena = pg.customer(shop, user_id=1001, first_name="Olena", language_code=locale)
    mallory = pg.customer(shop, user_id=2002, first_name="Mallory", language_code=locale)
    await olena.start(token)
    await olena.send("/stop")
    await pg.settle()
    assert (await _stored(pg, profile.id)).consent == "opted_out"

    await mallory.start(token)
    await pg.settle()
    assert mallory.last_message().text == LINK_TAKEN[locale]
    assert (await _stored(pg, profile.id)).consent == "opted_out"

    question, yes = ASK_AGAIN[locale]
    await olena.start(token)
    await pg.settle()
    assert olena.last_message().text == question
    assert (await _stored(pg, profile.id)).consent == "opted_out"
    await olena.tap(yes)
    await pg.settle()
    stored = await _stored(pg, profile.id)
    assert (stored.consent, stored.consent_source) == ("opted_in", "resubscribe")
    assert stored.telegram_chat_id == olena.chat_id


@pytest.mark.parametrize("locale", ["en", "ru", "uk", "pl"])
async def test_linking_a_profile_that_unsubscribed_elsewhere_asks_first(playground, locale):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    profile = await _customer(  # unsubscribed through the shop, never linked
        pg, shop, first_name="Olena", consent="opted_out", consent_source="shopify"
    )
    olena = pg.customer(shop, user_id=1001, first_name="Olena", language_code=locale)

    await olena.start(_token(pg, shop, profile))
    await pg.settle()

    question, yes = ASK_AGAIN[locale]
    assert olena.last_message().text == question
    stored = await _stored(pg, profile.id)
    assert stored.telegram_chat_id == olena.chat_id
    assert (stored.consent, stored.consent_source) == ("opted_out", "shopify")
    await olena.tap(yes)
    await pg.settle()
    assert (await _stored(pg, profile.id)).consent == "opted_in"


@pytest.mark.parametrize("locale", ["en", "ru", "uk", "pl"])
async def test_sharing_a_phone_does_not_take_over_a_profile_linked_elsewhere(playground, locale):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", country="UA")
    profile = await _customer(pg, shop, first_name="Olena", phone="+380501234567")
    olena = pg.customer(shop, user_id=1001, first_name="Olena", language_code=locale)
    await olena.start(_token(pg, shop, profile))
    await pg.settle()
    newcomer = pg.customer(shop, user_id=2002, first_name="Olena", language_code=locale)

    await newcomer.share_contact("380501234567")  # a recycled number, or a second account
    await pg.settle()

    assert newcomer.last_message().text == PHONE_TAKEN[locale]
    assert (await _stored(pg, profile.id)).telegram_chat_id == olena.chat_id
    async with pg.services.sessions() as session:
        assert len((await session.scalars(select(Customer))).all()) == 1

    await olena.share_contact("380501234567")  # the owner's own chat: fine
    await pg.settle()
    assert olena.last_message().text == ALREADY[locale]


async def test_two_chats_racing_for_one_link_bind_only_one(playground):
    import asyncio
    import json

    import aiohttp

    from bot.bots import webhook_secret

    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    profile = await _customer(pg, shop, first_name="Olena")
    token = _token(pg, shop, profile)
    chats = [pg.customer(shop, user_id=uid, language_code="en") for uid in (1001, 2002, 3003)]
    url = f"{pg.settings.public_base}/tg/{shop.id}"
    headers = {"X-Telegram-Bot-Api-Secret-Token": webhook_secret(pg.services.secret_key, shop.id)}

    def update(number, chat):
        user = {"id": chat.chat_id, "is_bot": False, "first_name": "Customer"}
        message = {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": chat.chat_id, "type": "private", "first_name": "Customer"},
            "from": user,
            "text": f"/start {token}",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        }
        return {"update_id": 9000 + number, "message": message}

    async def deliver(http, body):  # as Telegram does: again until it gets a 2xx
        for _ in range(20):
            async with http.post(url, json=body, headers=headers) as response:
                if response.status == 200:
                    return
            await asyncio.sleep(0.05)
        raise AssertionError("never acknowledged")

    async with aiohttp.ClientSession() as http:
        bodies = [update(n, chat) for n, chat in enumerate(chats)]
        await asyncio.gather(*(deliver(http, json.loads(json.dumps(b))) for b in bodies))
    await pg.settle()

    bound = (await _stored(pg, profile.id)).telegram_chat_id
    assert bound in {chat.chat_id for chat in chats}
    texts = {chat.chat_id: chat.last_message().text for chat in chats}
    assert texts.pop(bound).startswith("Hello, Olena! You are subscribed to updates from Kvitka")
    assert set(texts.values()) == {LINK_TAKEN["en"]}

"""One language per customer: settled at linking, used by every reply and scheduled message.

A Russian-speaking Telegram user linked to a Ukrainian shop once got the welcome in Russian,
the birthday question in Ukrainian and the retry prompt in Russian again. Now the language is
resolved once, among the languages the shop offers, and kept on the profile until the
customer picks another one in /settings.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.callbacks import SettingsAction, SettingsCallback
from bot.db import transaction
from bot.linking import make_link_token
from bot.models import Customer, CustomerEvent
from bot.playground import Playground
from bot.sandbox import Limits
from bot.store.customers import add_customer
from bot.surveys import schedule_birthday_survey

SAMPLES = Path(__file__).resolve().parent / "data" / "shopify"
HOW_TO_CHANGE = {
    "en": "You can change the language or pause offers in /settings, and unsubscribe at any "
    "time with /stop.",
    "ru": "Сменить язык или приостановить предложения можно в /settings, а отписаться — в любой "
    "момент командой /stop.",
    "uk": "Змінити мову чи призупинити пропозиції можна в /settings, а відписатися — будь-коли "
    "командою /stop.",
    "pl": "W /settings zmienisz język lub wstrzymasz oferty, a komendą /stop w każdej chwili się "
    "wypiszesz.",
}
QUESTION = {
    "en": "When is your birthday?",
    "ru": "Когда у вас день рождения?",
    "uk": "Коли у вас день народження?",
    "pl": "Kiedy masz urodziny?",
}
RETRY = {
    "en": "Sorry, we couldn't read that date.",
    "ru": "Извините, не удалось разобрать дату.",
    "uk": "Вибачте, не вдалося розпізнати дату.",
    "pl": "Przepraszamy, nie udało się odczytać daty.",
}
HELP = {
    "en": "This is the Kvitka bot.",
    "ru": "Это бот магазина Kvitka.",
    "uk": "Це бот магазину Kvitka.",
    "pl": "To bot sklepu Kvitka.",
}


@pytest.fixture
async def playground(database, clock):
    async with Playground(
        database.url, engine=database.engine, clock=clock, limits=Limits.off()
    ) as pg:
        yield pg


async def _profile(pg, shop, **fields) -> Customer:
    async with transaction(pg.services.sessions) as session:
        return await add_customer(session=session, shop_id=shop.id, now=pg.clock.now(), **fields)


async def _stored(pg, customer_id) -> Customer:
    async with pg.services.sessions() as session:
        found = await session.get(Customer, customer_id)
        assert found is not None
        return found


async def _link(pg, shop, profile, language_code, user_id=1001):
    chat = pg.customer(shop, user_id=user_id, first_name="Olena", language_code=language_code)
    token = make_link_token(
        secret_key=pg.services.secret_key,
        shop_id=shop.id,
        customer_id=profile.id,
        now=pg.clock.now(),
    )
    await chat.start(token)
    await pg.settle()
    return chat


async def _ask_birthday(pg, shop, profile) -> None:
    async with transaction(pg.services.sessions) as session:
        await schedule_birthday_survey(
            session=session, shop_id=shop.id, customer_id=profile.id, now=pg.clock.now()
        )
    await pg.dispatch()


@pytest.mark.parametrize("language", ["ru", "en", "uk", "pl"])
async def test_welcome_survey_and_retry_speak_the_language_settled_at_linking(
    playground, language
):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", country="UA", default_locale="uk")
    profile = await _profile(pg, shop, first_name="Olena", email="olena@example.com")

    chat = await _link(pg, shop, profile, language)
    welcome = chat.last_message().text
    assert welcome.endswith(HOW_TO_CHANGE[language])  # the welcome says how to stop or change
    assert (await _stored(pg, profile.id)).locale == language

    await _ask_birthday(pg, shop, profile)  # a scheduled send: no Telegram update behind it
    assert chat.last_message().text.startswith(QUESTION[language])
    await chat.send("31.02")
    await pg.settle()
    assert chat.last_message().text.startswith(RETRY[language])


async def test_a_shop_that_does_not_offer_the_chats_language_speaks_its_own(playground):
    pg = playground
    shop = await pg.add_shop(
        name="Kvitka", country="UA", default_locale="uk", settings={"languages": "uk,en"}
    )
    profile = await _profile(pg, shop, first_name="Olena", locale="ru-UA")  # from the platform

    chat = await _link(pg, shop, profile, "ru")
    assert chat.last_message().text.endswith(HOW_TO_CHANGE["uk"])
    assert (await _stored(pg, profile.id)).locale == "uk"
    await _ask_birthday(pg, shop, profile)
    assert chat.last_message().text.startswith(QUESTION["uk"])
    await chat.send("котик")
    await pg.settle()
    assert chat.last_message().text.startswith(RETRY["uk"])

    await chat.send("/settings")
    await pg.settle()
    await chat.tap("🌐 Мова")
    await pg.settle()
    offered = [row[0][0] for row in chat.last_message().buttons]
    assert offered == ["Українська", "English", "« Налаштування"]  # no Русский here

    menu = chat.last_message()
    forged = SettingsCallback(action=SettingsAction.LANGUAGE, arg="ru").pack()
    tap = await chat.tap_data(forged, message_id=menu.message_id)
    await pg.settle()
    assert tap.answer_text == "Вибачте, ця кнопка більше не працює."
    assert (await _stored(pg, profile.id)).locale == "uk"

    await chat.tap("English")
    await pg.settle()
    assert chat.last_message().text.startswith("Done! From now on we will write to you in English")
    await chat.send("/help")
    await pg.settle()
    assert chat.last_message().text.startswith(HELP["en"])


async def test_the_chosen_language_holds_for_scheduled_messages_and_platform_updates(
    playground,
):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", country="UA", default_locale="uk")
    profile = await _profile(pg, shop, first_name="Bob", email="bob@biller.com")
    chat = await _link(pg, shop, profile, "uk")
    await chat.send("/settings")
    await pg.settle()
    await chat.tap("🌐 Мова")
    await pg.settle()
    await chat.tap("Polski")
    await pg.settle()

    update = copy.deepcopy(json.loads((SAMPLES / "customers" / "update.json").read_text()))
    update["locale"] = "en"  # the shop's customer record says English
    update["updated_at"] = pg.clock.now().isoformat()
    assert await pg.deliver_webhook(shop, "customers/update", update) == 200
    await pg.process_inbox()
    stored = await _stored(pg, profile.id)
    assert (stored.locale, stored.last_name) == ("pl", "Biller")  # applied, language kept

    await _ask_birthday(pg, shop, profile)
    assert chat.last_message().text.startswith(QUESTION["pl"])
    await chat.send("hmm")
    await pg.settle()
    assert chat.last_message().text.startswith(RETRY["pl"])


async def test_a_profile_linked_before_languages_were_stored_settles_its_language_once(
    playground,
):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", country="UA", default_locale="uk")
    profile = await _profile(
        pg,
        shop,
        first_name="Olena",
        telegram_chat_id=1001,
        consent="opted_in",
        consent_source="deep_link",
    )
    chat = pg.customer(shop, user_id=1001, first_name="Olena", language_code="pl")
    await chat.send("/help")
    await pg.settle()
    assert chat.last_message().text.startswith(HELP["pl"])
    assert (await _stored(pg, profile.id)).locale == "pl"

    await _ask_birthday(pg, shop, profile)
    assert chat.last_message().text.startswith(QUESTION["pl"])
    async with pg.services.sessions() as session:
        settled = (
            await session.scalars(
                select(CustomerEvent).where(CustomerEvent.type == "locale_settled")
            )
        ).all()
    assert [e.payload for e in settled] == [{"locale": "pl"}]

"""/settings, /stop and /start again, /help: the customer's choices, honored by the dispatcher."""

from __future__ import annotations

import pytest
from survey_helpers import events, offer, outbox, person, profile

from bot.db import transaction
from bot.store.offers import add_exclusion

UNSUBSCRIBED = {
    "en": "You are unsubscribed and will not get messages from Kvitka.",
    "ru": "Вы отписались и больше не будете получать сообщения от магазина Kvitka.",
    "uk": "Ви відписалися й більше не отримуватимете повідомлень від магазину Kvitka.",
    "pl": "Wypisaliśmy Cię: nie będziesz już dostawać wiadomości od sklepu Kvitka.",
}
AGAIN = {
    "en": ("Yes, subscribe", "Welcome back! You are subscribed to updates from Kvitka again."),
    "ru": (
        "Да, подписаться",
        "С возвращением! Вы снова подписаны на уведомления магазина Kvitka.",
    ),
    "uk": ("Так, підписатися", "З поверненням! Ви знову підписані на сповіщення магазину Kvitka."),
    "pl": (
        "Tak, zapisz mnie",
        "Witaj ponownie! Znowu otrzymujesz powiadomienia ze sklepu Kvitka.",
    ),
}


@pytest.mark.parametrize("locale", ["en", "ru", "uk", "pl"])
async def test_stop_then_an_offer_is_not_sent_and_start_asks_before_subscribing(
    playground, locale
):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", default_locale=locale)
    olena = await person(pg, shop, 1001, locale)
    await olena.chat.send("/stop")
    await pg.settle()
    assert olena.chat.last_message().text.startswith(UNSUBSCRIBED[locale])
    stored = await profile(pg, olena.id)
    assert (stored.consent, stored.consent_source, stored.consent_at) == (
        "opted_out",
        "stop",
        pg.clock.now(),
    )
    await offer(pg, shop, olena, "after-stop")
    await pg.dispatch()
    assert len(olena.chat.bot_messages()) == 1  # nothing but the confirmation
    assert (await outbox(pg, olena.id))[0].skip_reason == "unsubscribed"

    await olena.chat.start()
    await pg.settle()
    assert (await profile(pg, olena.id)).consent == "opted_out"  # not silently re-linked
    yes, welcome = AGAIN[locale]
    await olena.chat.tap(yes)
    await pg.settle()
    assert olena.chat.last_message().text == welcome
    stored = await profile(pg, olena.id)
    assert (stored.consent, stored.consent_source) == ("opted_in", "resubscribe")
    await offer(pg, shop, olena, "after-start")
    await pg.dispatch()
    assert olena.chat.last_message().text == "Offer after-start"


async def test_settings_language_pause_topics_and_unsubscribe(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    olena = await person(pg, shop, 1001, "en")
    async with transaction(pg.services.sessions) as session:
        await add_exclusion(
            session=session,
            shop_id=shop.id,
            customer_id=olena.id,
            topic="dresses",
            outbox_id=None,
            now=pg.clock.now(),
        )
    await olena.chat.send("/settings")
    await pg.settle()
    assert olena.chat.last_message().text.startswith("Settings\nLanguage: English")

    await olena.chat.tap("🌐 Language")
    await pg.settle()
    await olena.chat.tap("Українська")
    await pg.settle()
    assert olena.chat.last_message().text.startswith("Готово! Відтепер ми писатимемо вам")
    assert (await profile(pg, olena.id)).locale == "uk"

    await olena.chat.tap("Вимкнені нагадування")
    await pg.settle()
    await olena.chat.tap("↩️ Dresses")
    await pg.settle()
    assert olena.chat.last_message().text.startswith(
        "Нагадування про товари з категорії «Dresses» знову увімкнено."
    )
    assert [e.payload["topic"] for e in await events(pg, olena.id, "exclusion_removed")] == [
        "dresses"
    ]

    await olena.chat.tap("« Налаштування")
    await pg.settle()
    await olena.chat.tap("Призупинити пропозиції на 30 днів")
    await pg.settle()
    assert olena.chat.last_message().text.startswith("Готово: до 1 квітня 2026\u202fр.")
    await offer(pg, shop, olena, "paused")
    await offer(pg, shop, olena, "order-news", lane="transactional")
    await pg.dispatch()
    rows = {r.dedupe_key: r for r in await outbox(pg, olena.id)}
    assert rows["paused"].skip_reason == "paused" and rows["order-news"].state == "sent"

    await olena.chat.tap("« Налаштування")
    await pg.settle()
    await olena.chat.tap("Відписатися")
    await pg.settle()
    stored = await profile(pg, olena.id)
    assert stored.consent == "opted_out" and stored.consent_source == "settings"


async def test_help_says_how_to_reach_a_person_and_links_settings(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", default_locale="pl")
    olena = await person(pg, shop, 1001, "pl")
    await olena.chat.send("/help")
    await pg.settle()
    text = olena.chat.last_message().text
    assert text.startswith("To bot sklepu Kvitka.") and "napisz tutaj swoje pytanie" in text
    await olena.chat.tap("⚙️ Ustawienia")
    await pg.settle()
    assert olena.chat.last_message().text.startswith("Ustawienia\nJęzyk: Polski")

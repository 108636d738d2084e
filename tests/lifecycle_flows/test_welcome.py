"""Welcome series: up to three shop-defined steps after linking, stopped by a first order."""

from __future__ import annotations

from datetime import timedelta

import pytest
from lifecycle_helpers import (
    BUTTONS,
    CATALOG_URL,
    HELLO,
    LOCALES,
    give_codes,
    link,
    make_shop,
    place_order,
    rows,
)

from bot.flows.welcome import WELCOME_KIND

FIRST = {
    "en": "Thank you for joining Kvitka in Telegram. Have a look at our catalog: new arrivals and "
    "bestsellers are waiting for you.",
    "ru": "Спасибо, что присоединились к магазину Kvitka в Telegram. Загляните в наш каталог: "
    "новинки и хиты продаж уже ждут вас.",
    "uk": "Дякуємо, що приєдналися до магазину Kvitka у Telegram. Зазирніть у наш каталог: "
    "новинки та хіти продажів уже чекають на вас.",
    "pl": "Dziękujemy, że dołączasz do sklepu Kvitka w Telegramie. Zajrzyj do naszego katalogu: "
    "nowości i bestsellery już na Ciebie czekają.",
}
MIDDLE = {
    "en": "Still looking for something special?",
    "ru": "Всё ещё ищете что-то особенное?",
    "uk": "Досі шукаєте щось особливе?",
    "pl": "Wciąż szukasz czegoś wyjątkowego?",
}
GIFT = {
    "en": "A gift for your first order at Kvitka: your personal promo code WELCOME-1. Enter it at "
    "checkout.",
    "ru": "Подарок к вашему первому заказу в магазине Kvitka — персональный промокод WELCOME-1. "
    "Введите его при оформлении заказа.",
    "uk": "Подарунок до вашого першого замовлення в магазині Kvitka — персональний промокод "
    "WELCOME-1. Введіть його під час оформлення замовлення.",
    "pl": "Prezent na Twoje pierwsze zamówienie w sklepie Kvitka: osobisty kod rabatowy "
    "WELCOME-1. Wpisz go przy składaniu zamówienia.",
}
NO_CODE = {
    "en": "Your first order at Kvitka is just a few taps away.",
    "ru": "До вашего первого заказа в магазине Kvitka — всего несколько нажатий.",
    "uk": "До вашого першого замовлення в магазині Kvitka — лише кілька натискань.",
    "pl": "Od Twojego pierwszego zamówienia w sklepie Kvitka dzieli Cię tylko kilka kliknięć.",
}


def _welcome(person, locale):
    hello = HELLO[locale] + " "
    return [
        m
        for m in person.chat.bot_messages()
        if (m.text or "").startswith(hello)
        and any(
            s in m.text for s in (FIRST[locale], MIDDLE[locale], GIFT[locale], NO_CODE[locale])
        )
    ]


@pytest.mark.parametrize("locale", LOCALES)
async def test_three_steps_after_linking_the_last_with_a_personal_code(playground, locale):
    pg = playground
    shop = await make_shop(
        pg, locale, welcome_enabled=True, welcome_steps="1h, 2d, 5d", welcome_pool="welcome"
    )
    await give_codes(pg, shop, "welcome", "WELCOME-1", "WELCOME-2")
    olena = await link(pg, shop, locale)

    pg.advance(timedelta(minutes=59))
    await pg.dispatch()
    assert _welcome(olena, locale) == []
    pg.advance(timedelta(minutes=1))
    await pg.dispatch()
    [first] = _welcome(olena, locale)
    assert first.text == f"{HELLO[locale]} {FIRST[locale]}"
    assert first.button_texts == BUTTONS[locale]
    assert first.buttons[0][0][1].startswith(pg.services.settings.public_base + "/r/")

    pg.advance(timedelta(days=2) - timedelta(hours=1))
    await pg.dispatch()
    second = _welcome(olena, locale)[-1]
    assert second.text.startswith(f"{HELLO[locale]} {MIDDLE[locale]}")
    pg.advance(timedelta(days=3))
    await pg.dispatch()
    last = _welcome(olena, locale)[-1]
    assert last.text == f"{HELLO[locale]} {GIFT[locale]}"
    assert len(_welcome(olena, locale)) == 3

    await olena.chat.start()  # /start again: no second series
    await pg.settle()
    pg.advance(timedelta(days=10))
    await pg.dispatch()
    assert len(_welcome(olena, locale)) == 3
    assert [r.state for r in await rows(pg, olena.id, WELCOME_KIND)] == ["sent"] * 3


async def test_the_catalog_link_leads_to_the_catalog_and_counts_the_click(playground):
    import aiohttp

    pg = playground
    shop = await make_shop(pg, "en", welcome_enabled=True, welcome_steps="1h")
    olena = await link(pg, shop, "en")
    pg.advance(timedelta(hours=1))
    await pg.dispatch()
    [only] = _welcome(olena, "en")
    assert only.text == f"{HELLO['en']} {NO_CODE['en']} We will be glad to see you in our catalog!"
    async with (
        aiohttp.ClientSession() as http,
        http.get(only.buttons[0][0][1], allow_redirects=False) as response,
    ):
        assert response.status in (302, 303, 307)
        assert response.headers["Location"] == CATALOG_URL


@pytest.mark.parametrize("locale", ["en", "uk"])
async def test_a_first_order_stops_the_series(playground, locale):
    pg = playground
    shop = await make_shop(pg, locale, welcome_enabled=True, welcome_steps="1h, 2d, 5d")
    olena = await link(pg, shop, locale)
    pg.advance(timedelta(hours=1))
    await pg.dispatch()
    assert len(_welcome(olena, locale)) == 1

    pg.advance(timedelta(hours=5))
    await place_order(pg, shop, olena, 9001)
    pg.advance(timedelta(days=10))
    await pg.dispatch()
    assert len(_welcome(olena, locale)) == 1
    states = [(r.state, r.skip_reason) for r in await rows(pg, olena.id, WELCOME_KIND)]
    assert states == [("sent", None), ("cancelled", "ordered"), ("cancelled", "ordered")]


async def test_a_customer_who_already_ordered_gets_no_series_and_the_guard_checks_again(
    playground,
):
    from bot.db import transaction
    from bot.models import Order

    pg = playground
    shop = await make_shop(pg, "en", welcome_enabled=True, welcome_steps="1h, 2d")
    olena = await link(pg, shop, "en")
    # an order lands in the database without its flows running (e.g. an import): the guard
    async with transaction(pg.services.sessions) as session:
        session.add(
            Order(
                shop_id=shop.id,
                customer_id=olena.id,
                external_id="imported-1",
                placed_at=pg.clock.now(),
                updated_at=pg.clock.now(),
            )
        )
    pg.advance(timedelta(days=3))
    await pg.dispatch()
    assert _welcome(olena, "en") == []
    assert {r.skip_reason for r in await rows(pg, olena.id, WELCOME_KIND)} == {"ordered"}

    ordered = await link(pg, shop, "en", user_id=1002)  # orders at once: the series is off
    await place_order(pg, shop, ordered, 9100)
    assert {r.state for r in await rows(pg, ordered.id, WELCOME_KIND)} == {"cancelled"}
    late = await link(pg, shop, "en", user_id=1003, email="late@example.com")
    assert len(await rows(pg, late.id, WELCOME_KIND)) == 2


TOAST = {
    "en": "Got it: no more “Welcome messages”. You can turn them back on in /settings.",
    "ru": "Поняли: «Приветственные сообщения» больше не будут приходить. Включить их снова можно "
    "в /settings.",
    "uk": "Зрозуміли: «Вітальні повідомлення» більше не надходитимуть. Увімкнути їх знову можна "
    "в /settings.",
    "pl": "Rozumiemy: „Wiadomości powitalne” nie będą już przychodzić. Możesz je znowu włączyć "
    "w /settings.",
}
TURNED_OFF = {
    "en": "✓ Turned off: Welcome messages",
    "ru": "✓ Отключено: Приветственные сообщения",
    "uk": "✓ Вимкнено: Вітальні повідомлення",
    "pl": "✓ Wyłączone: Wiadomości powitalne",
}


async def test_off_by_default_and_turning_it_off_stops_what_is_pending(playground):
    from bot.db import transaction
    from bot.store.shops import update_shop

    pg = playground
    shop = await make_shop(pg, "en")
    quiet = await link(pg, shop, "en")
    pg.advance(timedelta(days=10))
    await pg.dispatch()
    assert await rows(pg, quiet.id, WELCOME_KIND) == []

    shop = await make_shop(pg, "en", welcome_enabled=True, welcome_steps="1h, 2d")
    olena = await link(pg, shop, "en", user_id=1002)
    pg.advance(timedelta(hours=1))
    await pg.dispatch()
    async with transaction(pg.services.sessions) as session:  # nudge shop set … welcome_enabled=no
        await update_shop(session=session, shop_id=shop.id, key="welcome_enabled", value="no")
    pg.advance(timedelta(days=3))
    await pg.dispatch()
    assert len(_welcome(olena, "en")) == 1
    states = [(r.state, r.skip_reason) for r in await rows(pg, olena.id, WELCOME_KIND)]
    assert states == [("sent", None), ("skipped", "flow_off")]


@pytest.mark.parametrize("locale", LOCALES)
async def test_not_interested_names_the_series_and_stops_the_rest(playground, locale):
    pg = playground
    shop = await make_shop(pg, locale, welcome_enabled=True, welcome_steps="1h, 2d, 5d")
    olena = await link(pg, shop, locale, user_id=2001)
    pg.advance(timedelta(hours=1))
    await pg.dispatch()
    tap = await olena.chat.tap(BUTTONS[locale][1])
    await pg.settle()
    assert tap.answer_text == TOAST[locale]
    assert _welcome(olena, locale)[0].button_texts[0] == TURNED_OFF[locale]
    pg.advance(timedelta(days=6))
    await pg.dispatch()
    assert len(_welcome(olena, locale)) == 1
    states = [(r.state, r.skip_reason) for r in await rows(pg, olena.id, WELCOME_KIND)]
    assert states[1:] == [("cancelled", "not_interested")] * 2

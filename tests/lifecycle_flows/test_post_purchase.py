"""Post-purchase: a thank-you once the order is paid, then "time to restock" at the customer's
expected next order, cancelled by an order in between or by the order's cancellation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from lifecycle_helpers import (
    BUTTONS,
    HELLO,
    LOCALES,
    cancel_order,
    give_codes,
    link,
    make_shop,
    place_order,
    rows,
)

from bot.flows.post_purchase import RESTOCK_KIND, THANKS_KIND

THANKS = {
    "en": "Thank you for your order #9001 at Kvitka! We hope you enjoy your purchase. If you have "
    "any questions, just write to us in this chat.",
    "ru": "Спасибо за ваш заказ #9001 в магазине Kvitka! Надеемся, покупка вас порадует. Если "
    "появятся вопросы, просто напишите нам в этот чат.",
    "uk": "Дякуємо за ваше замовлення #9001 у магазині Kvitka! Сподіваємося, покупка вас порадує. "
    "Якщо виникнуть запитання, просто напишіть нам у цей чат.",
    "pl": "Dziękujemy za Twoje zamówienie #9001 w sklepie Kvitka! Mamy nadzieję, że zakupy Cię "
    "ucieszą. Jeśli masz pytania, po prostu napisz do nas na tym czacie.",
}
RESTOCK = {
    "en": "Time to restock?\n\n{hello} Your last order at Kvitka:\n• Linen dress\n• Silk scarf\n\n"
    "If something is running out, order again in a couple of taps — and see what else you may "
    "like in our catalog.",
    "ru": "Пора пополнить запасы?\n\n{hello} Ваш последний заказ в магазине Kvitka:\n"
    "• Linen dress\n• Silk scarf\n\nЕсли что-то заканчивается, повторите заказ в пару нажатий — "
    "а заодно посмотрите, что ещё может вам понравиться в нашем каталоге.",
    "uk": "Час поповнити запаси?\n\n{hello} Ваше останнє замовлення в магазині Kvitka:\n"
    "• Linen dress\n• Silk scarf\n\nЯкщо щось закінчується, повторіть замовлення в кілька "
    "натискань — а заразом подивіться, що ще вам може сподобатися з нашого каталогу.",
    "pl": "Czas uzupełnić zapasy?\n\n{hello} Twoje ostatnie zamówienie w sklepie Kvitka:\n"
    "• Linen dress\n• Silk scarf\n\nJeśli coś się kończy, złóż ponownie zamówienie w kilku "
    "kliknięciach — i zobacz, co jeszcze może Ci się spodobać w naszym katalogu.",
}
CODE = {
    "en": "Your personal promo code for the next order: BACK-1",
    "ru": "Ваш персональный промокод на следующий заказ: BACK-1",
    "uk": "Ваш персональний промокод на наступне замовлення: BACK-1",
    "pl": "Twój osobisty kod rabatowy na następne zamówienie: BACK-1",
}
HEAD = {k: v.split("\n", 1)[0] for k, v in RESTOCK.items()}


def _thanks(person, locale):
    return [m.text for m in person.chat.bot_messages() if THANKS[locale][:25] in (m.text or "")]


def _restocks(person, locale):
    return [m for m in person.chat.bot_messages() if (m.text or "").startswith(HEAD[locale])]


@pytest.mark.parametrize("locale", LOCALES)
async def test_thanks_once_the_order_is_paid(playground, locale):
    pg = playground
    shop = await make_shop(pg, locale, thanks_enabled=True, thanks_delay="2h")
    olena = await link(pg, shop, locale)
    await place_order(pg, shop, olena, 9001, financial_status="pending")
    pg.advance(timedelta(hours=3))
    await pg.dispatch()
    assert _thanks(olena, locale) == []  # not paid yet
    assert await rows(pg, olena.id, THANKS_KIND) == []

    await place_order(pg, shop, olena, 9001, topic="orders/paid", financial_status="paid")
    await place_order(pg, shop, olena, 9001, topic="orders/paid", financial_status="paid")
    pg.advance(timedelta(hours=1, minutes=59))
    await pg.dispatch()
    assert _thanks(olena, locale) == []
    pg.advance(timedelta(minutes=1))
    await pg.dispatch()
    assert _thanks(olena, locale) == [f"{HELLO[locale]} {THANKS[locale]}"]
    assert len(await rows(pg, olena.id, THANKS_KIND)) == 1  # replayed deliveries: one row


async def test_a_cancelled_order_gets_no_thanks(playground):
    pg = playground
    shop = await make_shop(pg, "pl", thanks_enabled=True, thanks_delay="2h")
    olena = await link(pg, shop, "pl")
    await place_order(pg, shop, olena, 9001)
    await cancel_order(pg, shop, olena, 9001)
    pg.advance(timedelta(hours=3))
    await pg.dispatch()
    assert _thanks(olena, "pl") == []
    [row] = await rows(pg, olena.id, THANKS_KIND)
    assert (row.state, row.skip_reason) == ("cancelled", "order_cancelled")


@pytest.mark.parametrize("locale", LOCALES)
async def test_restock_comes_at_the_expected_next_order(playground, locale):
    pg = playground
    shop = await make_shop(pg, locale, restock_enabled=True, restock_pool="back")
    await give_codes(pg, shop, "back", "BACK-1")
    olena = await link(pg, shop, locale)
    await place_order(pg, shop, olena, 9001)
    # one order: the shop's median interval (90 days while no one ordered twice)
    pg.advance(timedelta(days=89))
    await pg.dispatch()
    assert _restocks(olena, locale) == []
    pg.advance(timedelta(days=1))
    await pg.dispatch()
    [restock] = _restocks(olena, locale)
    expected = RESTOCK[locale].format(hello=HELLO[locale]) + "\n\n" + CODE[locale]
    assert restock.text == expected
    assert restock.button_texts == BUTTONS[locale]


async def test_an_order_in_between_cancels_and_moves_the_restock(playground):
    pg = playground
    shop = await make_shop(pg, "uk", restock_enabled=True)
    olena = await link(pg, shop, "uk")
    await place_order(pg, shop, olena, 9001)
    pg.advance(timedelta(days=30))
    await place_order(pg, shop, olena, 9002)  # her own interval is now 30 days
    first, second = await rows(pg, olena.id, RESTOCK_KIND)
    assert (first.state, first.skip_reason) == ("cancelled", "ordered")
    assert second.state == "scheduled" and second.dedupe_key.endswith(
        ":" + str(second.payload["order_pk"])
    )
    pg.advance(timedelta(days=29))
    await pg.dispatch()
    assert _restocks(olena, "uk") == []
    pg.advance(timedelta(days=1))
    await pg.dispatch()
    assert len(_restocks(olena, "uk")) == 1
    pg.advance(timedelta(days=100))
    await pg.dispatch()
    assert len(_restocks(olena, "uk")) == 1


async def test_cancelling_the_order_cancels_its_restock_and_brings_back_the_one_before(
    playground,
):
    pg = playground
    shop = await make_shop(pg, "en", restock_enabled=True)
    olena = await link(pg, shop, "en")
    await place_order(pg, shop, olena, 9001)
    pg.advance(timedelta(days=10))
    await place_order(pg, shop, olena, 9002)
    await cancel_order(pg, shop, olena, 9002)
    first, second = await rows(pg, olena.id, RESTOCK_KIND)
    assert second.state == "cancelled"
    assert first.state == "scheduled"  # 9001 is her last order again: 90 days after it
    await cancel_order(pg, shop, olena, 9001)
    assert {r.state for r in await rows(pg, olena.id, RESTOCK_KIND)} == {"cancelled"}
    pg.advance(timedelta(days=200))
    await pg.dispatch()
    assert _restocks(olena, "en") == []

"""Abandoned cart, end to end: webhook in, reminder out, buttons, exclusions, follow-up, report."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import pytest
from conftest import make_story
from sqlalchemy import select

from bot.db import transaction
from bot.models import Cart, Exclusion, Order, Outbox
from bot.store.codes import import_codes
from bot.store.reports import flow_report
from bot.store.shops import update_shop

LOCALES = ["en", "ru", "uk", "pl"]
BUTTONS = {
    "en": ("Open catalog", "Place order", "Not interested", "Undo"),
    "ru": ("Открыть каталог", "Оформить заказ", "Не интересует", "Вернуть как было"),
    "uk": ("Відкрити каталог", "Оформити замовлення", "Не цікавить", "Повернути як було"),
    "pl": ("Otwórz katalog", "Złóż zamówienie", "Nie interesuje mnie", "Cofnij"),
}
HEADLINE = {
    "en": "Olena, you left something in your cart:",
    "ru": "Olena, вы кое-что оставили в корзине:",
    "uk": "Ви дещо залишили в кошику:",  # a Latin "Olena" has no Ukrainian vocative: no name
    "pl": "Oleno, w Twoim koszyku coś zostało:",
}
TOTAL = {
    "en": "Total: UAH\xa02,231.00",
    "ru": "Итого: 2\xa0231,00\xa0₴",
    "uk": "Разом: 2\xa0231,00\xa0₴",
    "pl": "Razem: 2231,00\xa0UAH",
}
INACTIVE = {
    "en": "This button is no longer active.",
    "ru": "Эта кнопка больше не действует.",
    "uk": "Ця кнопка вже не діє.",
    "pl": "Ten przycisk jest już nieaktywny.",
}
TOAST = {  # names what stops: reminders about the cart's category
    "en": "Got it: no more reminders about “Dresses”. You can turn them back on in /settings.",
    "ru": "Поняли: больше не будем напоминать о товарах из категории «Dresses». Включить "
    "напоминания снова можно в /settings.",
    "uk": "Зрозуміли: більше не нагадуватимемо про товари з категорії «Dresses». Увімкнути "
    "нагадування знову можна в /settings.",
    "pl": "Rozumiemy: nie będziemy już przypominać o produktach z kategorii „Dresses”. "
    "Przypomnienia możesz znowu włączyć w /settings.",
}


def _offers(story):
    return [m for m in story.chat.bot_messages() if HEADLINE[story.locale] in m.text]


async def _rows(pg, **where):
    async with pg.services.sessions() as session:
        query = select(Outbox)
        for key, value in where.items():
            query = query.where(getattr(Outbox, key) == value)
        return list((await session.scalars(query.order_by(Outbox.id))).all())


@pytest.mark.parametrize("locale", LOCALES)
async def test_reminder_comes_after_the_delay_and_not_before(playground, locale):
    story = await make_story(playground, locale)
    pg = story.pg
    await story.leave_cart()

    pg.advance(timedelta(minutes=59))
    assert (await pg.dispatch())["sent"] == 0
    assert _offers(story) == []

    pg.advance(timedelta(minutes=1))
    assert (await pg.dispatch())["sent"] == 1
    [reminder] = _offers(story)
    assert reminder.text.startswith(HEADLINE[locale])
    assert "Linen dress" in reminder.text and "Silk scarf × 2" in reminder.text
    assert TOTAL[locale] in reminder.text
    catalog, order, not_interested, _undo = BUTTONS[locale]
    assert [[b[0] for b in row] for row in reminder.buttons] == [
        [catalog, order],
        [not_interested],
    ]
    tap = await story.chat.tap(order)
    assert tap.url.startswith(f"{pg.settings.public_base}/r/")


async def test_each_cart_update_pushes_the_reminder_back_and_only_one_is_sent(playground):
    story = await make_story(playground, "uk")
    pg = story.pg
    await story.leave_cart()
    pg.advance(timedelta(minutes=50))
    await story.leave_cart(updated_at=pg.clock.now())
    pg.advance(timedelta(minutes=50))
    assert (await pg.dispatch())["sent"] == 0
    pg.advance(timedelta(minutes=10))
    assert (await pg.dispatch())["sent"] == 1
    pg.advance(timedelta(days=2))
    await pg.dispatch()
    assert len(_offers(story)) == 1


@pytest.mark.parametrize("locale", LOCALES)
async def test_an_order_one_second_before_the_due_time_cancels_the_reminder(playground, locale):
    story = await make_story(playground, locale)
    pg = story.pg
    await story.leave_cart()
    pg.advance(timedelta(minutes=60) - timedelta(seconds=1))
    await story.place_order()
    pg.advance(timedelta(seconds=2))
    await pg.dispatch()
    assert _offers(story) == []
    [row] = await _rows(pg, kind="cart.reminder")
    assert (row.state, row.skip_reason) == ("cancelled", "ordered")


async def test_the_dispatcher_rechecks_the_cart_just_before_sending(playground):
    story = await make_story(playground, "pl")
    pg = story.pg
    await story.leave_cart()
    async with transaction(pg.services.sessions) as session:  # converted behind the flow's back
        cart = (await session.scalars(select(Cart))).one()
        cart.status = "converted"
    pg.advance(timedelta(hours=2))
    await pg.dispatch()
    assert _offers(story) == []
    [row] = await _rows(pg, kind="cart.reminder")
    assert (row.state, row.skip_reason) == ("skipped", "cart_closed")


@pytest.mark.parametrize("locale", LOCALES)
async def test_not_interested_then_undo_then_follow_up_with_a_code(playground, locale):
    story = await make_story(playground, locale)
    pg = story.pg
    async with transaction(pg.services.sessions) as session:
        await import_codes(
            session=session,
            shop_id=story.shop.id,
            pool="followup",
            codes=["KVITKA-7Q2M", "KVITKA-8R3N"],
            now=pg.clock.now(),
        )
        await update_shop(
            session=session,
            shop_id=story.shop.id,
            key="catalog_url",
            value="https://kvitka.example/catalog",
        )
    await story.leave_cart(items=[("Linen dress", "1450.00", 1, "Dresses")])
    pg.advance(timedelta(hours=1))
    await pg.dispatch()
    catalog, _order, not_interested, undo = BUTTONS[locale]

    tap = await story.chat.tap(not_interested)
    await pg.settle()
    assert tap.answered and tap.answer_text == TOAST[locale]
    offer = _offers(story)[0]
    assert [row[0][0] for row in offer.buttons][1] == undo
    async with pg.services.sessions() as session:
        [excluded] = (await session.scalars(select(Exclusion))).all()
    assert excluded.topic == "dresses" and excluded.outbox_id is not None

    await story.chat.tap(undo)
    await pg.settle()
    assert [b[0] for b in _offers(story)[0].buttons[-1]] == [not_interested]
    async with pg.services.sessions() as session:
        assert (await session.scalars(select(Exclusion))).all() == []

    again = await story.chat.tap(not_interested)
    await pg.settle()
    assert again.answer_text == TOAST[locale], (again, _offers(story)[0].buttons)
    pg.advance(timedelta(days=3))
    counts = await pg.dispatch()
    assert counts["sent"] == 1, (
        counts,
        [(r.kind, r.state, r.skip_reason, r.due_at) for r in await _rows(pg)],
    )
    followup = story.chat.last_message()
    assert "KVITKA-7Q2M" in followup.text
    assert [[b[0] for b in row] for row in followup.buttons] == [[catalog]]


@pytest.mark.parametrize("locale", LOCALES)
async def test_a_later_cart_in_the_excluded_category_gets_no_reminder(playground, locale):
    story = await make_story(playground, locale, settings={"followup_enabled": False})
    pg = story.pg
    await story.leave_cart(items=[("Linen dress", "1450.00", 1, "Dresses")])
    pg.advance(timedelta(hours=1))
    await pg.dispatch()
    await story.chat.tap(BUTTONS[locale][2])
    await pg.settle()

    pg.advance(timedelta(days=1))
    await story.leave_cart(token="ck-2", items=[("Summer dress", "990.00", 1, "dresses")])
    pg.advance(timedelta(hours=2))
    await pg.dispatch()
    assert len(_offers(story)) == 1
    later = (await _rows(pg, kind="cart.reminder"))[-1]
    assert (later.state, later.skip_reason) == ("skipped", "excluded")

    await story.leave_cart(token="ck-3", items=[("Leather bag", "2100.00", 1, "Bags")])
    pg.advance(timedelta(hours=2))
    assert (await pg.dispatch())["sent"] == 1


@pytest.mark.parametrize("locale", LOCALES)
async def test_forged_foreign_and_repeated_callbacks_change_nothing(playground, locale):
    story = await make_story(playground, locale)
    pg = story.pg
    await story.leave_cart()
    pg.advance(timedelta(hours=1))
    await pg.dispatch()
    offer = _offers(story)[0]
    forged = offer.buttons[-1][0][1][:-3] + "AAA"
    tap = await story.chat.tap_data(forged, message_id=offer.message_id)
    await pg.settle()
    assert tap.answer_text == INACTIVE[locale]
    garbage = await story.chat.tap_data("o:ni:%%%", message_id=offer.message_id)
    await pg.settle()
    assert garbage.answered
    other_chat = pg.customer(story.shop, user_id=2002, first_name="Mallory", language_code="en")
    await other_chat.start()
    await pg.settle()
    taken = await other_chat.tap_data(offer.buttons[-1][0][1], message_id=1) if False else None
    assert taken is None
    async with pg.services.sessions() as session:
        assert (await session.scalars(select(Exclusion))).all() == []

    await story.chat.tap(BUTTONS[locale][2])
    await pg.settle()
    again = await story.chat.tap_data(offer.buttons[-1][0][1], message_id=offer.message_id)
    await pg.settle()
    assert again.answered
    async with pg.services.sessions() as session:
        assert len((await session.scalars(select(Exclusion))).all()) == 1
        followups = (
            await session.scalars(select(Outbox).where(Outbox.kind == "cart.followup"))
        ).all()
    assert len(followups) == 1


@pytest.mark.parametrize("locale", LOCALES)
async def test_clicks_orders_and_the_report_add_up(playground, locale):
    story = await make_story(playground, locale)
    pg = story.pg
    await story.leave_cart()
    pg.advance(timedelta(hours=1))
    await pg.dispatch()
    tap = await story.chat.tap(BUTTONS[locale][1])
    async with aiohttp.ClientSession() as http:
        async with http.get(tap.url, allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == "https://kvitka.example/checkouts/ck-1/recover"
        async with http.get(tap.url[:-4] + "AAAA", allow_redirects=False) as response:
            assert response.status == 404
    pg.advance(timedelta(hours=3))
    await story.place_order(total="2231.00")

    async with pg.services.sessions() as session:
        order = (await session.scalars(select(Order))).one()
        report = (await flow_report(session=session, shop_id=story.shop.id, flow="cart")).as_dict()
    [reminder] = await _rows(pg, kind="cart.reminder")
    assert order.attributed_outbox_id == reminder.id, (order, reminder.customer_id)
    assert report["sent"] == 1 and report["clicked"] == 1
    assert report["orders"] == 1 and report["revenue"] == "2231.00"
    assert report["conversion"] == 1.0


async def test_reminder_two_carries_a_personal_code_and_skips_when_the_pool_is_empty(playground):
    story = await make_story(
        playground, "pl", settings={"reminder2_enabled": True, "reminder2_delay": "24h"}
    )
    pg = story.pg
    async with transaction(pg.services.sessions) as session:
        await import_codes(
            session=session,
            shop_id=story.shop.id,
            pool="cart",
            codes=["KOSZYK-001"],
            now=pg.clock.now(),
        )
    await story.leave_cart()
    pg.advance(timedelta(hours=1))
    await pg.dispatch()
    pg.advance(timedelta(hours=24))
    assert (await pg.dispatch())["sent"] == 1
    second = story.chat.last_message()
    assert "Twój koszyk wciąż czeka. Oto Twój osobisty kod rabatowy: KOSZYK-001" in second.text

    async with transaction(pg.services.sessions) as session:  # a pool that has no codes at all
        await update_shop(
            session=session, shop_id=story.shop.id, key="reminder2_pool", value="vip"
        )
    await story.leave_cart(token="ck-2", items=[("Torba", "100.00", 1, "Torby")])
    pg.advance(timedelta(hours=1))
    await pg.dispatch()
    pg.advance(timedelta(hours=24))
    counts = await pg.dispatch()
    assert counts["sent"] == 0 and counts["skip_reasons"] == {"no_codes": 1}
    assert all("KOSZYK" not in m.text or "KOSZYK-001" in m.text for m in story.chat.bot_messages())


def _generic_cart(story, *, title="Linen shirt", image="https://cdn.example.com/img/shirt.jpg"):
    import json
    import uuid
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "data" / "generic" / "cart.updated.json"
    payload = json.loads(path.read_text())
    payload["id"] = f"evt-{uuid.uuid4().hex}"
    payload["occurred_at"] = story.pg.clock.now().isoformat()
    payload["data"]["customer"] = {"id": "olena-1", "email": story.profile.email}
    payload["data"]["items"][0]["title"] = title
    payload["data"]["items"][0]["image"] = image
    return payload


async def test_the_first_product_image_is_sent_as_a_photo_unless_the_caption_is_too_long(
    playground,
):
    story = await make_story(playground, "en")
    pg = story.pg
    async with transaction(pg.services.sessions) as session:
        from bot.models import Shop

        shop = await session.get(Shop, story.shop.id)
        shop.platform = "generic"
    story.shop.platform = "generic"
    assert await pg.deliver_webhook(story.shop, "cart.updated", _generic_cart(story)) == 200
    await pg.process_inbox()
    pg.advance(timedelta(hours=1))
    await pg.dispatch()
    offer = story.chat.last_message()
    assert offer.photo and offer.photo_source == "https://cdn.example.com/img/shirt.jpg"
    assert "Linen shirt × 2" in offer.caption and "EUR" not in offer.caption.split("—")[0]

    long_title = "Linen shirt " + "with a very long description " * 40
    pg.advance(timedelta(minutes=5))
    payload = _generic_cart(story, title=long_title[:200])
    payload["data"]["token"] = "other-cart"
    payload["data"]["items"] = [
        dict(payload["data"]["items"][0], title=long_title[:200], product_id=str(n))
        for n in range(6)
    ]
    assert await pg.deliver_webhook(story.shop, "cart.updated", payload) == 200
    await pg.process_inbox()
    pg.advance(timedelta(hours=2))
    await pg.dispatch()
    offer = story.chat.last_message()
    assert offer.photo is None and len(offer.text) > 1024


async def test_the_birthday_question_can_ride_on_the_follow_up(playground):
    story = await make_story(playground, "uk", settings={"birthday_survey_with_followup": True})
    pg = story.pg
    async with transaction(pg.services.sessions) as session:
        await import_codes(
            session=session,
            shop_id=story.shop.id,
            pool="followup",
            codes=["KVITKA-B1RTH"],
            now=pg.clock.now(),
        )
    await story.leave_cart()
    pg.advance(timedelta(hours=1))
    await pg.dispatch()
    await story.chat.tap(BUTTONS["uk"][2])
    await pg.settle()
    pg.advance(timedelta(days=3))
    await pg.dispatch()
    pg.advance(timedelta(minutes=6))
    await pg.dispatch()
    kinds = [(r.kind, r.state) for r in await _rows(pg)]
    assert ("cart.followup", "sent") in kinds and ("survey.birthday", "sent") in kinds
    assert "KVITKA-B1RTH" in story.chat.bot_messages()[-2].text

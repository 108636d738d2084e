"""NPS after an order: each score group gets its answer; detractors pause promos until resolved."""

from __future__ import annotations

from datetime import timedelta

import pytest
from survey_helpers import events, offer, outbox, person, profile, shopify_order

from bot.support import inbox, resolve

THANKS = {
    "en": "Thank you for your rating!",
    "ru": "Спасибо за оценку!",
    "uk": "Дякуємо за оцінку!",
    "pl": "Dziękujemy za ocenę!",
}
WHAT_WENT_WRONG = {
    "en": "We are sorry to hear that. What went wrong?",
    "ru": "Нам очень жаль. Что пошло не так?",
    "uk": "Нам дуже шкода. Що пішло не так?",
    "pl": "Bardzo nam przykro. Co poszło nie tak?",
}
REVIEW = {
    "en": "Leave a review",
    "ru": "Оставить отзыв",
    "uk": "Залишити відгук",
    "pl": "Wystaw opinię",
}


async def _asked(pg, locale, user_id=1001, order_id=9001):
    """A shop with NPS on; a linked customer's order; a week later the question arrives."""
    shop = await pg.add_shop(
        name="Kvitka",
        default_locale=locale,
        settings={"nps_enabled": True, "nps_delay": "7d", "review_url": "https://g.page/kvitka"},
    )
    someone = await person(pg, shop, user_id, locale, email="olena@example.com")
    order = shopify_order("olena@example.com", order_id=order_id, now=pg.clock.now())
    assert await pg.deliver_webhook(shop, "orders/create", order) == 200
    await pg.process_inbox()
    await pg.dispatch()
    assert someone.chat.bot_messages() == []  # not yet: a week after the order
    pg.clock.advance(timedelta(days=7, hours=1))
    await pg.dispatch()
    question = someone.chat.last_message()
    assert [b[0] for row in question.buttons for b in row] == [str(n) for n in range(11)]
    return shop, someone


@pytest.mark.parametrize("locale", ["en", "ru", "uk", "pl"])
async def test_each_score_group_gets_its_answer(playground, locale):
    pg = playground
    shop, promoter = await _asked(pg, locale)
    await promoter.chat.tap("10")
    await pg.settle()
    assert promoter.chat.last_message().text.endswith("10")  # the question shows the answer
    await pg.dispatch()  # the promoter's invitation goes through the outbox
    invitation = promoter.chat.last_message()
    assert invitation.buttons[0][0] == (REVIEW[locale], "https://g.page/kvitka")
    assert (await profile(pg, promoter.id)).nps_score == 10

    passive = await person(pg, shop, 1002, locale, email="p@example.com")
    order = shopify_order("p@example.com", order_id=9002, now=pg.clock.now(), external_id=77)
    await pg.deliver_webhook(shop, "orders/create", order)
    await pg.process_inbox()
    pg.clock.advance(timedelta(days=8))
    await pg.dispatch()
    await passive.chat.tap("7")
    await pg.settle()
    assert passive.chat.last_message().text.startswith(THANKS[locale])
    assert not (await profile(pg, passive.id)).needs_follow_up


@pytest.mark.parametrize("locale", ["en", "uk"])
async def test_a_detractor_is_asked_why_flagged_and_promos_pause_until_resolved(
    playground, locale
):
    pg = playground
    shop, olena = await _asked(pg, locale)
    await olena.chat.tap("3")
    await pg.settle()
    assert olena.chat.last_message().text.startswith(WHAT_WENT_WRONG[locale])
    await olena.chat.send("The parcel came a week late")
    await pg.settle()
    [feedback] = await events(pg, olena.id, "nps_feedback")
    assert feedback.payload["text"] == "The parcel came a week late"
    assert feedback.payload["score"] == 3 and feedback.payload["order_id"] == "9001"
    stored = await profile(pg, olena.id)
    assert stored.needs_follow_up and stored.nps_score == 3
    assert await events(pg, olena.id, "reply") == []  # feedback is not a support reply

    await offer(pg, shop, olena, "spring-sale")
    await pg.dispatch()
    [row] = await outbox(pg, olena.id, "text")
    assert row.state == "skipped" and row.skip_reason == "needs_follow_up"

    [waiting] = await inbox(pg.services.sessions, shop_id=shop.id)
    assert waiting.customer.id == olena.id and waiting.items[0].type == "nps_feedback"
    await resolve(pg.services.sessions, pg.clock, customer_id=olena.id)
    assert not (await profile(pg, olena.id)).needs_follow_up
    await offer(pg, shop, olena, "summer-sale")
    await pg.dispatch()
    assert olena.chat.last_message().text == "Offer summer-sale"
    assert await inbox(pg.services.sessions, shop_id=shop.id) == []


async def test_an_nps_tap_counts_once(playground):
    pg = playground
    _shop, olena = await _asked(pg, "en")
    question = olena.chat.last_message()
    await olena.chat.tap("9")
    await pg.settle()
    tap = await olena.chat.tap_data(question.buttons[0][0][1], message_id=question.message_id)
    await pg.settle()
    assert tap.answer_text == "This survey has already closed."
    assert len(await events(pg, olena.id, "nps_answered")) == 1

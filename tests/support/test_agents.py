"""Agents answer in the support group: one topic per customer, relayed both ways."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support_helpers import (
    AGENT_ID,
    LOCALES,
    NAMES,
    QUESTIONS,
    RECEIVED,
    connect,
    conversations,
    fresh_shop,
    person,
    profile,
    promo,
    relay,
    stranger,
    support_messages,
    topic_of,
    topic_posts,
)

from bot.db import transaction
from bot.shop_settings import load_shop_settings
from bot.store.codes import ensure_pool, import_codes

SHOPIFY = Path(__file__).resolve().parent.parent / "data" / "shopify"
CHECKOUT = json.loads((SHOPIFY / "checkouts" / "update.json").read_text())  # Shopify's sample
MEDIA = ["photo", "document", "voice", "video", "sticker"]
CLOSED = {
    "en": "We have closed this conversation.",
    "ru": "Мы закрыли этот разговор.",
    "uk": "Ми закрили цю розмову.",
    "pl": "Zamknęliśmy tę rozmowę.",
}


async def test_connecting_checks_the_senders_and_the_bots_rights(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    group = pg.sandbox.forum_group(shop.bot_token, "Kvitka support", -1001000000777)
    group.add_member(AGENT_ID, "Ira", status="administrator")
    group.add_member(501, "Petro", status="member")

    await group.post(501, "/connect_support")
    await pg.settle()
    assert group.last_message().text == "Only an administrator of this group can connect support."

    group.set_bot_rights("member")
    await group.post(AGENT_ID, "/connect_support")
    await pg.settle()
    assert group.last_message().text.startswith(
        "The bot cannot run support here yet. Missing: administrator rights, "
        "the right to manage topics."
    )
    group.set_bot_rights("administrator", can_manage_topics=False)
    await group.post(AGENT_ID, "/connect_support")
    await pg.settle()
    assert "Missing: the right to manage topics." in group.last_message().text
    assert load_shop_settings((await fresh_shop(pg, shop)).settings).support_chat_id is None

    plain = pg.sandbox.forum_group(shop.bot_token, "No topics", -1001000000888, forum=False)
    plain.add_member(AGENT_ID, "Ira", status="administrator")
    await plain.post(AGENT_ID, "/connect_support")
    await pg.settle()
    assert plain.last_message().text.startswith("This group has no topics.")

    group.set_bot_rights("administrator")
    await group.post(AGENT_ID, "/connect_support")
    await pg.settle()
    assert group.last_message().text.startswith("✅ Support is connected")
    settings = load_shop_settings((await fresh_shop(pg, shop)).settings)
    assert settings.support_chat_id == -1001000000777


@pytest.mark.parametrize("locale", LOCALES)
async def test_relay_both_ways_with_media_notes_edits_close_and_reopen(playground, locale):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", default_locale="en")
    group = await connect(pg, shop)
    olena = await person(pg, shop, 1001, locale, email="olena@example.com")
    await olena.chat.send(QUESTIONS[locale])
    for kind in MEDIA:
        await olena.chat.send_media(kind, caption=None if kind == "sticker" else f"my {kind}")
    await pg.settle()
    assert len(olena.chat.bot_messages()) == 1  # one acknowledgement per conversation
    assert olena.chat.bot_messages()[0].text.startswith(RECEIVED[locale])
    await relay(pg)

    topic = await topic_of(pg, shop, 1001)
    assert topic.name == f"{NAMES[locale]} · {locale} · #{olena.id}"
    assert group.topics[topic.thread_id].name == topic.name
    card, *copies = topic_posts(group, topic.thread_id)
    assert f"customer #{olena.id}" in card.text and "olena@example.com" in card.text
    assert f"Locale: {locale}" in card.text and "Consent: opted_in" in card.text
    assert copies[0].text == QUESTIONS[locale]
    assert [next(k for k in MEDIA if k in c.message) for c in copies[1:]] == MEDIA

    thread = topic.thread_id
    await group.post(AGENT_ID, "Добрий день! Так, доставляємо.", thread)
    agent = group.agent(AGENT_ID)
    for kind in MEDIA:
        caption = None if kind == "sticker" else f"ось {kind}"
        await agent.send_media(kind, caption, thread_id=thread)
    await group.post(AGENT_ID, "#note VIP, be gentle", thread)
    await pg.settle()
    received = olena.chat.bot_messages()[1:]
    assert received[0].text == "Добрий день! Так, доставляємо."
    assert [next(k for k in MEDIA if k in r.message) for r in received[1:]] == MEDIA
    assert received[1].caption == "ось photo"
    assert len(received) == 1 + len(MEDIA)  # the note stayed in the group

    first_answer = [
        e for e in group.transcript(thread) if e.text == "Добрий день! Так, доставляємо."
    ]
    await agent.edit(first_answer[0].message_id, "Добрий день! Так, доставляємо по всій країні.")
    await pg.settle()
    edited = olena.chat.bot_messages()[1]
    assert edited.text == "Добрий день! Так, доставляємо по всій країні." and edited.edited

    await group.post(AGENT_ID, "/close", thread)
    await pg.settle()
    assert olena.chat.last_message().text.startswith(CLOSED[locale])
    assert group.topics[thread].closed
    [conversation] = await conversations(pg, shop)
    assert conversation.state == "closed"
    assert (await profile(pg, olena.id)).support_open_since is None

    await olena.chat.send("One more thing")
    await pg.settle()
    assert olena.chat.last_message().text.startswith(RECEIVED[locale])
    await relay(pg)
    assert not group.topics[thread].closed  # the same topic, reopened
    assert topic_posts(group, thread)[-1].text == "One more thing"
    assert [c.state for c in await conversations(pg, shop)] == ["closed", "open"]
    notes = [m for m in await support_messages(pg, shop) if m.direction == "note"]
    assert [n.text for n in notes] == ["#note VIP, be gentle"]


async def test_unlinked_customer_reaches_the_group_and_the_agent_links_them(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", default_locale="pl")
    group = await connect(pg, shop)
    zofia = stranger(pg, shop, 2001, "pl")
    await zofia.send(QUESTIONS["pl"])
    await pg.settle()
    assert zofia.last_message().text.startswith(RECEIVED["pl"])
    await relay(pg)
    topic = await topic_of(pg, shop, 2001)
    assert topic.name == "Zofia · pl · not linked"
    card, question = topic_posts(group, topic.thread_id)
    assert "not linked" in card.text and "/link" in card.text
    assert question.text == QUESTIONS["pl"]

    await group.post(AGENT_ID, "Tak, wysyłamy!", topic.thread_id)
    await pg.settle()
    assert zofia.last_message().text == "Tak, wysyłamy!"

    from support_helpers import person as make_person  # a profile from the shop, not linked

    other = await make_person(pg, shop, 9999, "pl", email="zofia@example.com")
    async with transaction(pg.services.sessions) as session:
        found = await session.get(type(await profile(pg, other.id)), other.id)
        found.telegram_chat_id = None
        session.add(found)
    await group.post(AGENT_ID, "/link zofia@example.com", topic.thread_id)
    await pg.settle()
    assert group.last_message(topic.thread_id).text == f"🔗 Linked to customer #{other.id}."
    assert (await profile(pg, other.id)).telegram_chat_id == 2001


async def test_code_stop_promos_profile_and_promos_paused_while_open(playground):
    pg = playground
    shop = await pg.add_shop(
        name="Kvitka",
        default_locale="ru",
        settings={"quiet_hours_start": "00:00", "quiet_hours_end": "00:00", "frequency_cap": 9},
    )
    group = await connect(pg, shop)
    olga = await person(pg, shop, 1001, "ru")
    async with transaction(pg.services.sessions) as session:
        await ensure_pool(session=session, shop_id=shop.id, name="support", now=pg.clock.now())
        await import_codes(
            session=session, shop_id=shop.id, pool="support", codes=["SORRY-1"], now=pg.clock.now()
        )
    await olga.chat.send("Посылка пришла мятая")
    await pg.settle()
    await relay(pg)
    thread = (await topic_of(pg, shop, 1001)).thread_id

    paused = await promo(pg, shop, olga.id, "spring")
    service = await promo(pg, shop, olga.id, "order-update", lane="transactional")
    await pg.dispatch()
    assert (await _row(pg, paused.id)) == ("skipped", "support_open")
    assert (await _row(pg, service.id))[0] == "sent"

    await group.post(AGENT_ID, "/code", thread)
    await pg.settle()
    assert olga.chat.last_message().text == "Ваш персональный промокод: SORRY-1"
    assert group.last_message(thread).text.startswith("🎟 Code SORRY-1")

    await group.post(AGENT_ID, "/profile", thread)
    await pg.settle()
    await relay(pg)
    assert "Codes: SORRY-1 (support)" in group.last_message(thread).text

    await group.post(AGENT_ID, "/stop_promos", thread)
    await pg.settle()
    assert group.last_message(thread).text.startswith("🔕")
    await group.post(AGENT_ID, "/close", thread)
    await pg.settle()
    later = await promo(pg, shop, olga.id, "summer")
    await pg.dispatch()
    assert (await _row(pg, later.id)) == ("skipped", "paused")


async def test_strangers_other_groups_and_the_general_topic_are_ignored(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    group = await connect(pg, shop)
    olena = await person(pg, shop, 1001, "uk")
    await olena.chat.send("Привіт")
    await pg.settle()
    await relay(pg)
    thread = (await topic_of(pg, shop, 1001)).thread_id
    before = len(olena.chat.bot_messages())

    group.add_member(777, "Ex-agent")
    group.leave(777)
    await group.post(777, "I left but still write", thread)
    await group.post(AGENT_ID, "In the general topic")
    other = pg.sandbox.forum_group(shop.bot_token, "Another group", -1009999)
    other.add_member(AGENT_ID, "Ira", status="administrator")
    await other.create_topic("Olena", by=AGENT_ID)
    await other.post(AGENT_ID, "From another group", next(iter(other.topics)))
    await pg.settle()
    assert len(olena.chat.bot_messages()) == before
    assert [m.direction for m in await support_messages(pg, shop)] == ["in"]


async def _row(pg, row_id):
    from support_helpers import outbox_row

    row = await outbox_row(pg, row_id)
    return row.state, row.skip_reason


async def test_a_customer_answering_a_cart_reminder_the_card_shows_it(playground):
    import copy
    from datetime import timedelta

    from bot.linking import make_link_token
    from bot.store.customers import add_customer

    pg = playground
    shop = await pg.add_shop(
        name="Kvitka", currency="UAH", default_locale="uk", timezone="Europe/Kyiv"
    )
    group = await connect(pg, shop)
    async with transaction(pg.services.sessions) as session:
        olena = await add_customer(
            session=session,
            shop_id=shop.id,
            now=pg.clock.now(),
            first_name="Олена",
            email="olena@example.com",
        )
    chat = pg.customer(shop, user_id=1001, first_name="Олена", language_code="uk")
    token = make_link_token(
        secret_key=pg.services.secret_key,
        shop_id=shop.id,
        customer_id=olena.id,
        now=pg.clock.now(),
    )
    await chat.start(token)
    await pg.settle()
    payload = copy.deepcopy(CHECKOUT)
    payload.update(
        token="ck-1",
        cart_token="cart-ck-1",
        email="olena@example.com",
        updated_at=pg.clock.now().isoformat(),
        completed_at=None,
        currency="UAH",
        presentment_currency="UAH",
        total_price="1450.00",
        subtotal_price="1450.00",
    )
    payload["customer"].update(email="olena@example.com", id=4242)
    payload["line_items"] = [
        {**payload["line_items"][0], "title": "Лляна сукня", "price": "1450.00", "quantity": 1}
    ]
    assert await pg.deliver_webhook(shop, "checkouts/update", payload) == 200
    await pg.process_inbox()
    pg.advance(timedelta(hours=1))
    await pg.dispatch()
    reminder = chat.last_message()
    await chat.reply(reminder.message_id, "А розмір M є?")
    await pg.settle()
    await relay(pg)
    topic = await topic_of(pg, shop, 1001)
    card, question = topic_posts(group, topic.thread_id)
    assert "Open cart:" in card.text and "Лляна сукня ×1" in card.text
    assert "Last message from us: cart.reminder" in card.text
    assert question.text == "А розмір M є?"
    [message] = [m for m in await support_messages(pg, shop) if m.direction == "in"]
    assert message.outbox_id is not None  # it answers the reminder


async def test_agent_answers_reach_an_unsubscribed_customer_and_a_blocked_one_is_flagged(
    playground,
):
    from bot.support import inbox

    pg = playground
    shop = await pg.add_shop(name="Kvitka", default_locale="pl")
    group = await connect(pg, shop)
    zofia = await person(pg, shop, 1001, "pl")
    await zofia.chat.send("stop")
    await pg.settle()
    assert (await profile(pg, zofia.id)).consent == "opted_out"
    await zofia.chat.send("Gdzie jest moje zamówienie?")
    await pg.settle()
    await relay(pg)
    thread = (await topic_of(pg, shop, 1001)).thread_id
    await group.post(AGENT_ID, "Jutro u Ciebie!", thread)
    await pg.settle()
    assert zofia.chat.last_message().text == "Jutro u Ciebie!"
    assert await inbox(pg.services.sessions, shop_id=shop.id) == []

    await zofia.chat.send("Dziękuję, a faktura?")
    await pg.settle()
    await zofia.chat.block()
    await pg.settle()
    await group.post(AGENT_ID, "Wysłaliśmy mailem", thread)
    await pg.settle()
    await relay(pg)
    notice = group.last_message(thread).text
    assert notice.startswith("⚠️ Not delivered to the customer: they blocked the bot")
    [conversation] = await conversations(pg, shop)
    assert conversation.state == "open" and conversation.undelivered == 1
    [waiting] = await inbox(pg.services.sessions, shop_id=shop.id)
    assert [a["text"] for a in waiting.as_dict()["undelivered"]] == ["Wysłaliśmy mailem"]


async def test_connecting_from_the_command_line(playground, database, monkeypatch, tmp_path):
    from support_helpers import nudge, stamp_head, unstamp

    pg = playground
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NUDGE_DATABASE_URL", database.url)
    monkeypatch.setenv("NUDGE_SECRET_KEY", pg.services.secret_key)
    monkeypatch.setenv("NUDGE_TELEGRAM_API_BASE", pg.settings.telegram_base)
    shop = await pg.add_shop(name="Kvitka")
    group = pg.sandbox.forum_group(shop.bot_token, "Kvitka support", -1001000000999)
    group.set_bot_rights("administrator", can_manage_topics=False)
    await stamp_head(database)
    try:
        code, out = await nudge("shop", "set", str(shop.id), "support_chat=-1001000000999")
        assert code == 2 and "the bot needs: the right to manage topics" in out, out
        assert load_shop_settings((await fresh_shop(pg, shop)).settings).support_chat_id is None
        group.set_bot_rights("administrator")
        code, out = await nudge("shop", "set", str(shop.id), "support_chat=-1001000000999")
        assert code == 0, out
        code, out = await nudge("support", "check", "--shop", str(shop.id))
        assert (code, out.strip()) == (0, "ok")
        group.set_bot_rights("administrator", can_manage_topics=False)  # taken away later
        code, out = await nudge("support", "check", "--shop", str(shop.id))
        assert code == 1 and "missing: the right to manage topics" in out
    finally:
        await unstamp(database)
    assert load_shop_settings((await fresh_shop(pg, shop)).settings).support_chat_id == (
        -1001000000999
    )


async def test_a_redelivered_agent_message_reaches_the_customer_once(playground):
    import json as _json

    pg = playground
    shop = await pg.add_shop(name="Kvitka", default_locale="ru")
    group = await connect(pg, shop)
    olga = await person(pg, shop, 1001, "ru")
    await olga.chat.send("Есть размер M?")
    await pg.settle()
    await relay(pg)
    thread = (await topic_of(pg, shop, 1001)).thread_id
    posted = await group.post(AGENT_ID, "Есть!", thread)
    await pg.settle()
    world = pg.sandbox.bot(shop.bot_token)
    world.enqueue_raw(lambda uid: _json.dumps({"update_id": uid, "message": posted}))
    await pg.settle()
    assert [m.text for m in olga.chat.bot_messages()[1:]] == ["Есть!"]
    answers = [m for m in await support_messages(pg, shop) if m.direction == "out"]
    assert len(answers) == 1 and answers[0].relay == "done"

"""Fifty customers at once within the group limit; working hours; the support report."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from support_helpers import (
    AGENT_ID,
    LOCALES,
    QUESTIONS,
    RECEIVED,
    connect,
    nudge,
    person,
    relay,
    stamp_head,
    stranger,
    support_messages,
    topic_of,
    topic_posts,
    unstamp,
)

from bot.playground import Playground
from bot.sandbox import Limits
from bot.support import inbox

WINDOW = 2.0  # the group limit squeezed from 20 a minute to 20 in 2 s, so the test is quick


@pytest.fixture
async def limited(database, clock):
    limits = Limits(per_chat_per_second=None, per_group=20, group_window=WINDOW)
    async with Playground(database.url, engine=database.engine, clock=clock, limits=limits) as pg:
        yield pg


async def test_fifty_customers_at_once_each_message_in_its_topic_once(limited):
    pg = limited
    shop = await pg.add_shop(name="Kvitka")
    group = await connect(pg, shop)
    people = []
    for n in range(50):
        locale = LOCALES[n % 4]
        if n % 5 == 0:
            people.append((stranger(pg, shop, 3000 + n, locale), locale))
        else:
            people.append(((await person(pg, shop, 3000 + n, locale)).chat, locale))
    sent = []
    for chat, locale in people:  # all queued before the bot sees any of them
        sent.append(await chat.send(f"{QUESTIONS[locale]} #{chat.chat_id}"))
    world = pg.sandbox.bot(shop.bot_token)
    for message in sent[:10]:  # and ten of them redelivered under new update ids
        world.enqueue_raw(lambda uid, m=message: json.dumps({"update_id": uid, "message": m}))
    await pg.settle(timeout=60)
    for chat, locale in people:
        assert [m.text[: len(RECEIVED[locale])] for m in chat.bot_messages()] == [RECEIVED[locale]]
    pg.sandbox.reset_stats(shop.bot_token)

    await relay(pg, per_group=20, window=WINDOW)

    stats = pg.sandbox.stats(shop.bot_token)
    assert stats.rate_limited == 0, "the relay went past the group limit"
    for chat, _ in people:
        topic = await topic_of(pg, shop, chat.chat_id)
        posts = topic_posts(group, topic.thread_id)
        assert len(posts) == 2, posts  # the card, then the message: none lost, none twice
        assert posts[1].text.endswith(f"#{chat.chat_id}")
    copies = Counter(
        (m.source_chat_id, m.source_message_id) for m in await support_messages(pg, shop)
    )
    assert len(copies) == 50 and set(copies.values()) == {1}
    assert await inbox(pg.services.sessions, shop_id=shop.id)  # all still wait for answers


async def test_outside_working_hours_the_customer_is_told_when_to_expect_an_answer(playground):
    pg = playground
    pg.clock.set(datetime(2026, 12, 5, 20, 0, tzinfo=UTC))  # Saturday 22:00 in Kyiv
    shop = await pg.add_shop(
        name="Kvitka",
        timezone="Europe/Kyiv",
        default_locale="uk",
        settings={"support_hours": "09:00-18:00", "support_days": "mon-fri"},
    )
    olena = await person(pg, shop, 1001, "uk")
    await olena.chat.send("Де моє замовлення?")
    await pg.settle()
    text = olena.chat.last_message().text
    assert text.startswith(RECEIVED["uk"])
    assert "Ми відповімо в цьому чаті після 07.12.26, 09:00." in text  # Monday morning

    pg.clock.set(datetime(2026, 12, 7, 8, 0, tzinfo=UTC))  # Monday 10:00: at work
    taras = await person(pg, shop, 1002, "uk", first_name="Тарас")
    await taras.chat.send("Привіт")
    await pg.settle()
    assert taras.chat.last_message().text == (
        "Дякуємо! Ми передали ваше повідомлення команді — відповімо просто в цьому чаті."
    )


async def test_report_support(playground, database, monkeypatch, tmp_path):
    pg = playground
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NUDGE_DATABASE_URL", database.url)
    monkeypatch.setenv("NUDGE_SECRET_KEY", pg.services.secret_key)
    shop = await pg.add_shop(name="Kvitka")
    group = await connect(pg, shop)
    first = await person(pg, shop, 1001, "pl")
    second = await person(pg, shop, 1002, "ru")
    await first.chat.send("Pytanie")
    await second.chat.send("Вопрос")
    await pg.settle()
    await relay(pg)
    pg.advance(timedelta(minutes=4))
    await group.post(AGENT_ID, "Odpowiedź", (await topic_of(pg, shop, 1001)).thread_id)
    await pg.settle()
    await group.post(AGENT_ID, "/close", (await topic_of(pg, shop, 1001)).thread_id)
    await pg.settle()
    await stamp_head(database)
    try:
        code, out = await nudge("report", "support", "--shop", str(shop.id), "--json")
        assert code == 0, out
        data = json.loads(out)
        assert data["opened"] == 2 and data["answered"] == 1 and data["open_now"] == 1
        assert data["median_first_response_seconds"] == 240.0
        code, out = await nudge("report", "support", "--shop", str(shop.id))
        assert "median first response   4m 00s" in out
    finally:
        await unstamp(database)


async def test_a_relay_that_died_mid_batch_or_lost_its_rights_loses_nothing(playground):
    from bot.db import transaction
    from bot.store import support_desk as desk

    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    group = await connect(pg, shop)
    olena = await person(pg, shop, 1001, "uk")
    await olena.chat.send("Перше")
    await olena.chat.send("Друге")
    await pg.settle()
    async with transaction(pg.services.sessions) as session:  # a relay took them and died
        taken = await desk.claim_relays(
            session=session, now=pg.clock.now(), limit=50, lease=timedelta(minutes=2)
        )
    assert len(taken) == 2
    await relay(pg)
    assert not group.topics  # still leased to the dead relay
    pg.advance(timedelta(minutes=3))
    group.set_bot_rights("administrator", can_manage_topics=False)  # and an admin took a right
    await relay(pg)
    assert not group.topics
    [first, _] = await support_messages(pg, shop)
    assert first.relay == "pending" and "not enough rights" in first.error
    group.set_bot_rights("administrator")
    pg.advance(timedelta(minutes=10))
    await relay(pg)
    topic = await topic_of(pg, shop, 1001)
    assert [p.text for p in topic_posts(group, topic.thread_id)][1:] == ["Перше", "Друге"]
    await relay(pg)  # nothing twice
    assert len(topic_posts(group, topic.thread_id)) == 3

"""Nothing a customer writes is lost, and service answers reach people who stopped promos."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from support_helpers import (
    LOCALES,
    QUESTIONS,
    RECEIVED,
    conversations,
    nudge,
    person,
    profile,
    promo,
    stamp_head,
    stranger,
    support_messages,
    unstamp,
)

from bot.support import inbox, reply


@pytest.mark.parametrize("locale", LOCALES)
async def test_an_unlinked_customers_question_waits_in_the_inbox_and_gets_answered(
    playground, locale
):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", default_locale="en")
    zofia = stranger(pg, shop, 2001, locale)
    await zofia.send(QUESTIONS[locale])
    await pg.settle()
    assert zofia.last_message().text.startswith(RECEIVED[locale])
    assert zofia.reply_keyboard is None  # no phone prompt instead of an answer
    [waiting] = await inbox(pg.services.sessions, shop_id=shop.id)
    record = waiting.as_dict()
    assert record["linked"] is False and record["telegram_user_id"] == 2001
    assert [m["text"] for m in record["messages"]] == [QUESTIONS[locale]]

    await zofia.send("?")  # the same conversation: stored, not acknowledged again
    await pg.settle()
    assert len(zofia.bot_messages()) == 1
    [conversation] = await conversations(pg, shop)
    assert conversation.customer_id is None and conversation.locale == locale

    answered = await reply(
        pg.services.sessions,
        pg.clock,
        telegram_user_id=2001,
        shop_id=shop.id,
        text="Yes, we do",
        bots=pg.services.bots,
        settings=pg.settings,
    )
    await pg.settle()
    assert answered.delivered
    assert zofia.last_message().text.endswith("Yes, we do")
    assert await inbox(pg.services.sessions, shop_id=shop.id) == []


async def test_a_redelivered_update_is_stored_once(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    olena = await person(pg, shop, 1001, "uk")
    sent = await olena.chat.send("Де моє замовлення?")
    await pg.settle()
    world = pg.sandbox.bot(shop.bot_token)
    for update_id in (1, None):  # Telegram sends it again; then under a new update id
        world.enqueue_raw(
            lambda uid: json.dumps({"update_id": uid, "message": sent}), update_id=update_id
        )
        await pg.settle()
    messages = await support_messages(pg, shop)
    assert [m.text for m in messages] == ["Де моє замовлення?"]
    assert len(olena.chat.bot_messages()) == 1


async def test_answers_reach_an_unsubscribed_customer_and_a_blocked_one_is_reported(
    playground, database, monkeypatch, tmp_path
):
    pg = playground
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NUDGE_DATABASE_URL", database.url)
    monkeypatch.setenv("NUDGE_SECRET_KEY", pg.services.secret_key)
    monkeypatch.setenv("NUDGE_TELEGRAM_API_BASE", pg.settings.telegram_base)
    await stamp_head(database)
    try:
        pg.clock.set(datetime.now(UTC))
        shop = await pg.add_shop(name="Kvitka", default_locale="uk")
        olena = await person(pg, shop, 1001, "uk")
        await olena.chat.send("стоп")
        await pg.settle()
        assert (await profile(pg, olena.id)).consent == "opted_out"
        await olena.chat.send("Де моє замовлення #1001?")
        await pg.settle()
        assert olena.chat.last_message().text.startswith(RECEIVED["uk"])

        code, out = await nudge("support", "reply", str(olena.id), "Вже в дорозі!")
        assert code == 0, out
        assert "delivered" in out
        await pg.settle()
        assert olena.chat.last_message().text.endswith("Вже в дорозі!")
        row = await promo(pg, shop, olena.id, "after-stop")
        await pg.dispatch()
        assert (await _state(pg, row.id)) == ("skipped", "unsubscribed")  # promos stay off

        await olena.chat.send("А коли саме?")
        await pg.settle()
        await olena.chat.block()
        await pg.settle()
        code, out = await nudge("support", "reply", str(olena.id), "Завтра")
        assert code == 1, out
        assert "NOT DELIVERED" in out and "blocked" in out
        code, out = await nudge("support", "inbox", "--shop", str(shop.id))
        assert "А коли саме?" in out and "ANSWER NOT DELIVERED: 'Завтра'" in out
        code, out = await nudge("support", "inbox", "--shop", str(shop.id), "--json")
        [waiting] = json.loads(out)
        assert waiting["undelivered"][0]["text"] == "Завтра"
        [conversation] = await conversations(pg, shop)
        assert conversation.state == "open" and conversation.undelivered == 1
    finally:
        await unstamp(database)


async def _state(pg, row_id):
    from support_helpers import outbox_row

    row = await outbox_row(pg, row_id)
    return row.state, row.skip_reason


async def test_an_unknown_command_is_not_a_question(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    olena = await person(pg, shop, 1001, "en")
    await olena.chat.send("/orders")
    await pg.settle()
    assert olena.chat.last_message().text == (await _help(pg, shop, olena))
    assert await conversations(pg, shop) == []


async def _help(pg, shop, who):
    from bot.i18n import get_i18n
    from bot.messages.settings import help_text

    i18n = get_i18n()
    with i18n.context(), i18n.use_locale("en"):
        return help_text(shop.name)

"""Customers and agents the sandbox plays, and the transcripts tests read."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.sandbox import Customer, Sandbox, run_sandbox
from tests.sandbox.conftest import TOKEN, aiogram_bot


async def test_start_with_payload_carries_a_bot_command_entity(bot: Bot, olena: Customer) -> None:
    sent = await olena.start("cart-42")
    assert sent["text"] == "/start cart-42"
    assert sent["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert sent["chat"] == {
        "id": 1001,
        "first_name": "Olena",
        "username": "olena",
        "type": "private",
    }
    assert sent["from"]["language_code"] == "uk"


async def test_start_refuses_payloads_telegram_would_not_pass(olena: Customer) -> None:
    with pytest.raises(ValueError, match="deep-link payload"):
        await olena.start("has space")
    with pytest.raises(ValueError):
        await olena.start("x" * 65)


async def test_contact_photo_and_reply(bot: Bot, olena: Customer) -> None:
    contact = await olena.share_contact("+380501234567")
    assert contact["contact"] == {
        "phone_number": "+380501234567",
        "first_name": "Olena",
        "user_id": 1001,
    }
    photo = await olena.send_photo("my receipt")
    assert photo["caption"] == "my receipt" and len(photo["photo"]) >= 2
    question = await bot.send_message(olena.chat_id, "How did we do?")
    reply = await olena.reply(question.message_id, "5 stars")
    assert reply["reply_to_message"]["text"] == "How did we do?"
    updates = await bot.get_updates()
    assert updates[2].message.reply_to_message.message_id == question.message_id
    file_id = updates[1].message.photo[-1].file_id
    echoed = await bot.send_photo(olena.chat_id, file_id)
    assert echoed.photo[-1].file_id == file_id


async def test_tap_picks_the_latest_message_with_that_button(bot: Bot, olena: Customer) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Yes", callback_data="q:1")]]
    )
    first = await bot.send_message(olena.chat_id, "Q1", reply_markup=markup)
    second = await bot.send_message(olena.chat_id, "Q2", reply_markup=markup)
    assert (await olena.tap("Yes")).message_id == second.message_id
    assert (await olena.tap("Yes", message_id=first.message_id)).message_id == first.message_id
    with pytest.raises(LookupError, match=r"no inline button 'No'.*\['Yes', 'Yes'\]"):
        await olena.tap("No")
    update = (await bot.get_updates())[0]
    assert update.callback_query.data == "q:1"
    assert update.callback_query.message.text == "Q2"


async def test_show_alert_is_recorded(bot: Bot, olena: Customer) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Why?", callback_data="why")]]
    )
    await bot.send_message(olena.chat_id, "Offer", reply_markup=markup)
    tap = await olena.tap("Why?")
    assert not tap.answered
    await bot.answer_callback_query(tap.callback_query_id or "", text="Because", show_alert=True)
    await tap.wait_answered(timeout=1)
    assert (tap.answer_text, tap.show_alert) == ("Because", True)


async def test_block_sends_my_chat_member_and_forbids_the_customer_writing(
    bot: Bot, olena: Customer
) -> None:
    await olena.block()
    assert olena.blocked
    with pytest.raises(RuntimeError, match="blocked the bot"):
        await olena.send("hi")
    await olena.start()  # "Restart bot" unblocks, then sends /start
    kinds = [
        (u.my_chat_member.new_chat_member.status if u.my_chat_member else u.message.text)
        for u in await bot.get_updates()
    ]
    assert kinds == ["kicked", "member", "/start"]


async def test_next_message_sees_replies_sent_before_it_is_called(
    bot: Bot, olena: Customer
) -> None:
    await olena.send("hi")
    await bot.send_message(olena.chat_id, "Hello!")
    await bot.send_message(olena.chat_id, "How can I help?")
    assert (await olena.next_message(timeout=1)).text == "Hello!"
    assert (await olena.next_message(timeout=1)).text == "How can I help?"
    with pytest.raises(TimeoutError):
        await olena.next_message(timeout=0.05)


async def test_forum_group_agents_post_in_topics(bot: Bot, sb: Sandbox) -> None:
    group = sb.forum_group(TOKEN, title="Support", chat_id=-100123)
    ivan = group.add_member(501, "Ivan", status="administrator")
    topic = await bot.create_forum_topic(group.chat_id, "Olena #1001")
    thread = topic.message_thread_id
    await bot.send_message(
        group.chat_id, "Customer asks: where is my order?", message_thread_id=thread
    )
    posted = await group.post(ivan, "It ships tomorrow", thread)
    assert posted["message_thread_id"] == thread and posted["is_topic_message"] is True
    assert posted["reply_to_message"]["forum_topic_created"]["name"] == "Olena #1001"
    update = (await bot.get_updates())[0]
    assert update.message.text == "It ships tomorrow"
    assert update.message.from_user.id == 501
    assert update.message.message_thread_id == thread
    await bot.send_message(group.chat_id, "Relayed", message_thread_id=thread)
    assert (await group.next_message(thread_id=thread, timeout=1)).text == "Relayed"
    assert [e.text for e in group.transcript(thread) if not e.service] == [
        "Customer asks: where is my order?",
        "It ships tomorrow",
        "Relayed",
    ]
    assert group.topic("Olena #1001").thread_id == thread


async def test_agent_created_topic_reaches_the_bot(bot: Bot, sb: Sandbox) -> None:
    group = sb.forum_group(TOKEN, chat_id=-100123)
    topic = await group.create_topic("Questions", by=501)
    update = (await bot.get_updates())[0]
    assert update.message.forum_topic_created.name == "Questions"
    assert update.message.message_thread_id == topic.thread_id


async def test_each_bot_has_its_own_world(sb: Sandbox, bot: Bot, olena: Customer) -> None:
    other_token = "777:OTHER"
    sb.add_bot(other_token, username="other_bot")
    other_customer = sb.customer(other_token, 1001, "Olena")
    await olena.send("to the shop bot")
    await bot.send_message(olena.chat_id, "shop reply")
    assert other_customer.transcript() == []
    assert sb.bot(other_token).pending == 0 and sb.bot(TOKEN).pending == 1


async def test_auto_registered_tokens() -> None:
    async with run_sandbox(auto_register=True) as sandbox:
        async with aiogram_bot(sandbox, "4242:anything") as stranger:
            assert (await stranger.get_me()).id == 4242
        assert "4242:anything" in sandbox.bots

"""python-telegram-bot, a second independent client, parses every answer of the sandbox."""

from __future__ import annotations

import telegram
from telegram import (
    BotCommand,
    ChatMemberAdministrator,
    ChatMemberMember,
    ForumTopic,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageId,
    Update,
    WebhookInfo,
)
from telegram.constants import ParseMode

from bot.sandbox import Customer, Sandbox
from tests.sandbox.conftest import TOKEN

KEYBOARD = InlineKeyboardMarkup(
    [
        [InlineKeyboardButton("Not interested", callback_data="offer:7:no")],
        [InlineKeyboardButton("Open shop", url="https://shop.example/cart")],
    ]
)


async def test_initialize_reads_get_me(ptb: telegram.Bot) -> None:
    assert (ptb.id, ptb.username, ptb.first_name) == (123456, "shop_bot", "Shop")


async def test_messages_photos_and_edits(ptb: telegram.Bot, olena: Customer) -> None:
    sent = await ptb.send_message(
        olena.chat_id,
        "*Your cart* is waiting",
        parse_mode=ParseMode.MARKDOWN_V2,
        reply_markup=KEYBOARD,
    )
    assert isinstance(sent, Message) and sent.text == "Your cart is waiting"
    assert sent.entities[0].type == "bold" and sent.reply_markup == KEYBOARD
    assert sent.from_user.id == 123456
    edited = await ptb.edit_message_text(
        "Updated", olena.chat_id, sent.message_id, reply_markup=KEYBOARD
    )
    assert isinstance(edited, Message) and edited.edit_date is not None
    stripped = await ptb.edit_message_reply_markup(olena.chat_id, sent.message_id)
    assert isinstance(stripped, Message) and stripped.reply_markup is None
    photo = await ptb.send_photo(olena.chat_id, "https://cdn.example/p.jpg", caption="Boots")
    assert photo.photo[-1].width >= photo.photo[0].width
    uploaded = await ptb.send_photo(olena.chat_id, b"\xff\xd8jpeg", caption="Upload")
    assert olena.transcript()[-1].photo_source is not None and uploaded.caption == "Upload"
    recaptioned = await ptb.edit_message_caption(olena.chat_id, photo.message_id, caption="New")
    assert isinstance(recaptioned, Message) and recaptioned.caption == "New"
    copied = await ptb.copy_message(olena.chat_id, olena.chat_id, photo.message_id)
    assert isinstance(copied, MessageId)
    forwarded = await ptb.forward_message(olena.chat_id, olena.chat_id, sent.message_id)
    assert forwarded.forward_origin is not None
    assert await ptb.delete_message(olena.chat_id, sent.message_id) is True
    assert await ptb.send_chat_action(olena.chat_id, "typing") is True


async def test_commands_chat_and_members(ptb: telegram.Bot, sb: Sandbox, olena: Customer) -> None:
    assert await ptb.set_my_commands([BotCommand("start", "Start")]) is True
    assert await ptb.get_my_commands() == (BotCommand("start", "Start"),)
    assert await ptb.delete_my_commands() is True
    assert await ptb.set_chat_menu_button() is True
    assert (await ptb.get_chat_menu_button()).type == "commands"
    chat = await ptb.get_chat(olena.chat_id)
    assert chat.first_name == "Olena"
    assert isinstance(await ptb.get_chat_member(olena.chat_id, olena.user_id), ChatMemberMember)
    group = sb.forum_group(TOKEN, chat_id=-100123)
    group.add_member(501, "Ivan", status="administrator")
    assert isinstance(await ptb.get_chat_member(-100123, 501), ChatMemberAdministrator)


async def test_forum_topics(ptb: telegram.Bot, sb: Sandbox) -> None:
    sb.forum_group(TOKEN, chat_id=-100123)
    topic = await ptb.create_forum_topic(-100123, "Olena #1001")
    assert isinstance(topic, ForumTopic)
    sent = await ptb.send_message(-100123, "Hello", message_thread_id=topic.message_thread_id)
    assert sent.message_thread_id == topic.message_thread_id
    assert await ptb.edit_forum_topic(-100123, topic.message_thread_id, name="Olena") is True
    assert await ptb.close_forum_topic(-100123, topic.message_thread_id) is True
    assert await ptb.reopen_forum_topic(-100123, topic.message_thread_id) is True


async def test_updates_and_webhook(ptb: telegram.Bot, olena: Customer) -> None:
    sent = await ptb.send_message(olena.chat_id, "Offer", reply_markup=KEYBOARD)
    await olena.start()
    await olena.share_contact("+380501234567")
    await olena.tap("Not interested")
    await olena.block()
    updates = await ptb.get_updates(timeout=1)
    assert all(isinstance(u, Update) for u in updates)
    assert updates[0].message.text == "/start"
    assert updates[1].message.contact.user_id == olena.user_id
    assert updates[2].callback_query.message.message_id == sent.message_id
    assert updates[3].my_chat_member.new_chat_member.status == "kicked"
    assert await ptb.answer_callback_query(updates[2].callback_query.id, text="OK") is True
    assert await ptb.set_webhook("http://127.0.0.1:9/hook") is True
    info = await ptb.get_webhook_info()
    assert isinstance(info, WebhookInfo) and info.url == "http://127.0.0.1:9/hook"
    assert await ptb.delete_webhook(drop_pending_updates=True) is True

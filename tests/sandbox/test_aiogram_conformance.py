"""aiogram parses every answer of every supported method, and the answers say what happened."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    ChatMemberAdministrator,
    ChatMemberMember,
    ForumTopic,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MenuButtonCommands,
    MenuButtonWebApp,
    Message,
    MessageId,
    ReplyParameters,
    WebAppInfo,
)

from bot.sandbox import Customer, Sandbox
from tests.sandbox.conftest import TOKEN

KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[
        [InlineKeyboardButton(text="Not interested", callback_data="offer:7:no")],
        [InlineKeyboardButton(text="Open shop", url="https://shop.example/cart")],
    ]
)


async def test_get_me_is_the_registered_bot(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.first_name, me.is_bot) == (123456, "shop_bot", "Shop", True)


async def test_send_message_returns_a_full_message_from_the_bot(bot: Bot, olena: Customer) -> None:
    message = await bot.send_message(
        olena.chat_id, "<b>Your cart</b> is waiting", parse_mode="HTML", reply_markup=KEYBOARD
    )
    assert isinstance(message, Message)
    assert message.from_user is not None and message.from_user.id == 123456
    assert message.chat.id == olena.chat_id and message.chat.type == "private"
    assert message.text == "Your cart is waiting"
    assert [(e.type, e.offset, e.length) for e in message.entities or []] == [("bold", 0, 9)]
    assert message.reply_markup is not None
    assert message.reply_markup.model_dump() == KEYBOARD.model_dump()
    assert olena.last_message().buttons == [
        [("Not interested", "offer:7:no")],
        [("Open shop", "https://shop.example/cart")],
    ]


async def test_send_photo_by_url_upload_and_file_id(bot: Bot, olena: Customer) -> None:
    by_url = await bot.send_photo(olena.chat_id, "https://cdn.example/p.jpg", caption="Boots")
    upload = await bot.send_photo(olena.chat_id, BufferedInputFile(b"\xff\xd8jpeg", "p.jpg"))
    file_id = by_url.photo[-1].file_id
    again = await bot.send_photo(olena.chat_id, file_id, caption="Again")
    assert by_url.caption == "Boots" and upload.caption is None
    assert again.photo[-1].file_id == file_id
    sources = [entry.photo_source for entry in olena.bot_messages()]
    assert sources == ["https://cdn.example/p.jpg", "upload:p.jpg", file_id]


async def test_edits_apply_to_the_transcript(bot: Bot, olena: Customer) -> None:
    sent = await bot.send_message(olena.chat_id, "Offer", reply_markup=KEYBOARD)
    edited = await bot.edit_message_text(
        "Offer (updated)",
        chat_id=olena.chat_id,
        message_id=sent.message_id,
        reply_markup=KEYBOARD,
    )
    assert isinstance(edited, Message) and edited.edit_date is not None
    no_keyboard = await bot.edit_message_reply_markup(
        chat_id=olena.chat_id, message_id=sent.message_id
    )
    assert isinstance(no_keyboard, Message) and no_keyboard.reply_markup is None
    photo = await bot.send_photo(olena.chat_id, "https://cdn.example/p.jpg", caption="Old")
    recaptioned = await bot.edit_message_caption(
        chat_id=olena.chat_id, message_id=photo.message_id, caption="New"
    )
    assert isinstance(recaptioned, Message) and recaptioned.caption == "New"
    first = olena.transcript()[0]
    assert (first.text, first.edited, first.buttons) == ("Offer (updated)", True, [])
    assert first.history == ["Offer", "Offer (updated)"]


async def test_delete_copy_forward(bot: Bot, olena: Customer) -> None:
    sent = await bot.send_message(olena.chat_id, "Original")
    copied = await bot.copy_message(olena.chat_id, olena.chat_id, sent.message_id)
    forwarded = await bot.forward_message(olena.chat_id, olena.chat_id, sent.message_id)
    assert isinstance(copied, MessageId)
    assert forwarded.forward_origin is not None and forwarded.text == "Original"
    assert await bot.delete_message(olena.chat_id, sent.message_id) is True
    entries = olena.transcript()
    assert [(e.text, e.deleted) for e in entries] == [
        ("Original", True),
        ("Original", False),
        ("Original", False),
    ]
    assert olena.last_message().message_id == forwarded.message_id


async def test_reply_to_a_customer_message(bot: Bot, olena: Customer) -> None:
    question = await olena.send("Where is my order?")
    answer = await bot.send_message(
        olena.chat_id,
        "On its way",
        reply_parameters=ReplyParameters(message_id=question["message_id"]),
    )
    assert answer.reply_to_message is not None
    assert answer.reply_to_message.text == "Where is my order?"


async def test_chat_action_commands_and_menu_button(bot: Bot, olena: Customer) -> None:
    assert await bot.send_chat_action(olena.chat_id, "typing") is True
    assert olena.chat_actions == ["typing"]
    commands = [
        BotCommand(command="start", description="Start"),
        BotCommand(command="settings", description="Settings"),
    ]
    assert await bot.set_my_commands(commands) is True
    scoped = BotCommandScopeChat(chat_id=olena.chat_id)
    assert await bot.set_my_commands(commands[:1], scope=scoped, language_code="uk") is True
    assert [c.command for c in await bot.get_my_commands()] == ["start", "settings"]
    uk = await bot.get_my_commands(scope=scoped, language_code="uk")
    assert [(c.command, c.description) for c in uk] == [("start", "Start")]
    assert await bot.delete_my_commands() is True
    assert await bot.get_my_commands() == []
    assert isinstance(await bot.get_chat_menu_button(), MenuButtonCommands)
    web_app = MenuButtonWebApp(text="Shop", web_app=WebAppInfo(url="https://shop.example"))
    assert await bot.set_chat_menu_button(chat_id=olena.chat_id, menu_button=web_app) is True
    menu = await bot.get_chat_menu_button(chat_id=olena.chat_id)
    assert menu.model_dump() == web_app.model_dump()


async def test_get_chat_and_chat_members(bot: Bot, sb: Sandbox, olena: Customer) -> None:
    chat = await bot.get_chat(olena.chat_id)
    assert (chat.id, chat.type, chat.first_name, chat.username) == (
        1001,
        "private",
        "Olena",
        "olena",
    )
    member = await bot.get_chat_member(olena.chat_id, olena.user_id)
    assert isinstance(member, ChatMemberMember) and member.user.language_code == "uk"
    group = sb.forum_group(TOKEN, title="Support", chat_id=-100123)
    group.add_member(501, "Ivan", status="administrator")
    assert (await bot.get_chat(group.chat_id)).is_forum is True
    admin = await bot.get_chat_member(group.chat_id, 501)
    assert isinstance(admin, ChatMemberAdministrator) and admin.user.first_name == "Ivan"
    me = await bot.get_chat_member(group.chat_id, 123456)
    assert isinstance(me, ChatMemberAdministrator) and me.can_manage_topics


async def test_forum_topics_lifecycle(bot: Bot, sb: Sandbox) -> None:
    group = sb.forum_group(TOKEN, title="Support", chat_id=-100123)
    topic = await bot.create_forum_topic(group.chat_id, "Olena #1001")
    assert isinstance(topic, ForumTopic) and topic.name == "Olena #1001"
    sent = await bot.send_message(
        group.chat_id, "New conversation", message_thread_id=topic.message_thread_id
    )
    assert sent.message_thread_id == topic.message_thread_id and sent.is_topic_message
    assert await bot.edit_forum_topic(group.chat_id, topic.message_thread_id, name="Olena") is True
    assert await bot.close_forum_topic(group.chat_id, topic.message_thread_id) is True
    assert await bot.reopen_forum_topic(group.chat_id, topic.message_thread_id) is True
    state = group.topics[topic.message_thread_id]
    assert (state.name, state.closed) == ("Olena", False)
    assert group.last_message(topic.message_thread_id).text == "New conversation"
    services = [e.service for e in group.transcript(topic.message_thread_id) if e.service]
    assert services == [
        "forum_topic_created",
        "forum_topic_edited",
        "forum_topic_closed",
        "forum_topic_reopened",
    ]


async def test_webhook_methods(bot: Bot) -> None:
    assert await bot.set_webhook("http://127.0.0.1:9/hook", secret_token="s3cret") is True
    info = await bot.get_webhook_info()
    assert info.url == "http://127.0.0.1:9/hook" and info.pending_update_count == 0
    assert await bot.delete_webhook() is True
    assert (await bot.get_webhook_info()).url == ""


async def test_get_updates_returns_customer_updates(bot: Bot, olena: Customer) -> None:
    await olena.start("cart-42")
    updates = await bot.get_updates(timeout=1)
    assert len(updates) == 1
    message = updates[0].message
    assert message is not None and message.text == "/start cart-42"
    assert message.from_user is not None and message.from_user.language_code == "uk"

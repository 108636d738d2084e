"""The sandbox's objects use only fields the Bot API spec (api.json) defines, and required ones.

Also checks the sandbox's updates against real Telegram samples, key for key.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiogram import Bot
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.sandbox import Customer, Sandbox
from bot.sandbox.methods import METHODS
from tests.sandbox.conftest import TOKEN, load

SPEC = load("api.json")


def check(obj: dict[str, Any], type_name: str, path: str = "") -> None:
    """Assert that `obj` fits the spec's type, recursing into nested object fields."""
    fields = {f["name"]: f for f in SPEC["types"][type_name]["fields"]}
    unknown = set(obj) - set(fields)
    assert not unknown, f"{path or type_name}: fields not in {type_name}: {unknown}"
    missing = {n for n, f in fields.items() if f["required"]} - set(obj)
    assert not missing, f"{path or type_name}: required fields missing: {missing}"
    for name, value in obj.items():
        kinds = [t for t in fields[name]["types"] if t in SPEC["types"]]
        if isinstance(value, dict) and len(kinds) == 1 and SPEC["types"][kinds[0]].get("fields"):
            check(value, kinds[0], f"{path}.{name}")


async def call(sb: Sandbox, method: str, **params: Any) -> Any:
    """Call a method with a JSON body and return its result."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sb.base_url}/bot{TOKEN}/{method}", json=params) as resp,
    ):
        body = await resp.json()
    assert body["ok"], body
    return body["result"]


async def test_every_supported_method_exists_in_the_spec() -> None:
    spec_methods = {name.lower() for name in SPEC["methods"]}
    assert set(METHODS) <= spec_methods
    for canonical, _ in METHODS.values():
        assert canonical in SPEC["methods"]


async def test_messages_fit_the_message_type(sb: Sandbox, bot: Bot, olena: Customer) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Go", callback_data="go")]]
    )
    question = await olena.send("hi @shop_bot https://shop.example #sale")
    text = await call(
        sb,
        "sendMessage",
        chat_id=1001,
        text="<i>Hi</i>",
        parse_mode="HTML",
        reply_markup=markup.model_dump(exclude_none=True),
        reply_parameters={"message_id": question["message_id"]},
    )
    photo = await call(
        sb,
        "sendPhoto",
        chat_id=1001,
        photo="https://cdn.example/p.jpg",
        caption="*Boots*",
        parse_mode="MarkdownV2",
    )
    edited = await call(
        sb, "editMessageText", chat_id=1001, message_id=text["message_id"], text="Edited"
    )
    forwarded = await call(
        sb, "forwardMessage", chat_id=1001, from_chat_id=1001, message_id=text["message_id"]
    )
    contact = await olena.share_contact("+380501234567")
    for message in (question, text, photo, edited, forwarded, contact):
        check(message, "Message")
    for size in photo["photo"]:
        check(size, "PhotoSize")
    check(await call(sb, "getMe"), "User")
    check(await call(sb, "getChat", chat_id=1001), "ChatFullInfo")
    check(await call(sb, "getWebhookInfo"), "WebhookInfo")
    assert {e["type"] for e in question["entities"]} == {"mention", "url", "hashtag"}


async def test_forum_objects_fit_the_spec(sb: Sandbox) -> None:
    sb.forum_group(TOKEN, chat_id=-100123)
    topic = await call(sb, "createForumTopic", chat_id=-100123, name="Olena")
    check(topic, "ForumTopic")
    message = await call(
        sb, "sendMessage", chat_id=-100123, text="x", message_thread_id=topic["message_thread_id"]
    )
    check(message, "Message")
    admin = await call(sb, "getChatMember", chat_id=-100123, user_id=123456)
    # aiogram 3.31 follows a Bot API newer than this spec (10.1) and requires this right.
    assert admin.pop("can_send_welcome_messages") is True
    check(admin, "ChatMemberAdministrator")


async def test_updates_have_the_keys_of_real_telegram_updates(
    bot: Bot, sb: Sandbox, olena: Customer
) -> None:
    sent = await call(
        sb,
        "sendMessage",
        chat_id=1001,
        text="Offer",
        reply_markup={"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]},
    )
    await olena.start()
    await olena.reply(sent["message_id"], "/start")
    await olena.tap("Go")
    await olena.block()
    updates = await call(sb, "getUpdates")
    start, reply, tap, blocked = updates
    real_start = load("tgdocs_message_text_start.json")["message"]
    assert set(real_start) <= set(start["message"])
    assert set(real_start["chat"]) - {"last_name"} <= set(start["message"]["chat"])
    real_reply = load("tgdocs_message_reply.json")["message"]["reply_to_message"]
    assert set(real_reply) <= set(reply["message"]["reply_to_message"])
    real_query = load("tgdocs_callback_query.json")["callback_query"]
    assert {"id", "from", "data"} <= set(tap["callback_query"]) and set(real_query) - {
        "inline_message_id"
    } <= set(tap["callback_query"])
    real_block = load("teloxide_my_chat_member_kicked_private.json")["my_chat_member"]
    ours = blocked["my_chat_member"]
    assert set(ours) == set(real_block)
    assert set(ours["new_chat_member"]) == set(real_block["new_chat_member"])
    assert ours["new_chat_member"]["status"] == real_block["new_chat_member"]["status"]
    for update in updates:
        check(update, "Update")
    real_text = load("teloxide_message_text_private.json")["message"]
    await olena.unblock()
    plain = await olena.send("hello there")
    assert set(real_text) - {"link_preview_options"} <= set(plain)
    assert set(real_text["from"]) <= set(plain["from"])

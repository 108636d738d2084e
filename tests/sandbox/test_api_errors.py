"""Every validation answers with Telegram's exact error code and description."""

from __future__ import annotations

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramUnauthorizedError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.clock import ManualClock
from bot.sandbox import Customer, Limits, Sandbox, run_sandbox
from tests.sandbox.conftest import TOKEN, aiogram_bot, load


def keyboard(**button: str) -> InlineKeyboardMarkup:
    """Return a one-button inline keyboard."""
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Go", **button)]])


async def post_json(sb: Sandbox, path: str, body: dict) -> tuple[int, dict]:
    """POST JSON to the sandbox and return status and decoded body."""
    async with aiohttp.ClientSession() as http, http.post(sb.base_url + path, json=body) as resp:
        return resp.status, await resp.json()


async def test_unknown_token_is_unauthorized(sb: Sandbox) -> None:
    status, body = await post_json(sb, "/bot999:nope/getMe", {})
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    async with aiogram_bot(sb, "999:nope") as stranger:
        with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
            await stranger.get_me()


async def test_unknown_method_is_not_found(sb: Sandbox) -> None:
    status, body = await post_json(sb, f"/bot{TOKEN}/sendTelepathy", {})
    assert (status, body) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})


async def test_method_names_ignore_case_and_get_works(sb: Sandbox) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{sb.base_url}/bot{TOKEN}/GETME") as r:
        assert (r.status, (await r.json())["result"]["username"]) == (200, "shop_bot")


async def test_error_shape_matches_telegram(sb: Sandbox, olena: Customer) -> None:
    status, body = await post_json(sb, f"/bot{TOKEN}/sendMessage", {"chat_id": 5, "text": "x"})
    assert status == 400
    assert body == {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
    real = load("error_response_example.json")
    assert set(body) <= set(real) and all(type(body[k]) is type(real[k]) for k in body)


async def bad_request(call: object, description: str) -> None:
    """Assert that awaiting `call` raises TelegramBadRequest with exactly `description`."""
    with pytest.raises(TelegramBadRequest) as caught:
        await call  # type: ignore[misc]
    assert caught.value.message == description


async def test_unknown_chat(bot: Bot) -> None:
    await bad_request(bot.send_message(42, "hi"), "Bad Request: chat not found")


@pytest.mark.parametrize("text", ["", "   \n", "<b></b>"])
async def test_empty_text(bot: Bot, olena: Customer, text: str) -> None:
    await bad_request(
        bot.send_message(olena.chat_id, text, parse_mode="HTML"),
        "Bad Request: message text is empty",
    )


async def test_text_length_counts_characters_after_entity_parsing(
    bot: Bot, olena: Customer
) -> None:
    await bad_request(
        bot.send_message(olena.chat_id, "x" * 4097), "Bad Request: message is too long"
    )
    exactly = await bot.send_message(olena.chat_id, "ї" * 4096)
    assert len(exactly.text or "") == 4096
    marked_up = await bot.send_message(olena.chat_id, f"<b>{'x' * 4096}</b>", parse_mode="HTML")
    assert len(marked_up.text or "") == 4096


async def test_caption_too_long(bot: Bot, olena: Customer) -> None:
    await bad_request(
        bot.send_photo(olena.chat_id, "https://cdn.example/p.jpg", caption="c" * 1025),
        "Bad Request: message caption is too long",
    )


@pytest.mark.parametrize("data", ["", "x" * 65, "ж" * 33])
async def test_callback_data_outside_1_to_64_bytes(bot: Bot, olena: Customer, data: str) -> None:
    await bad_request(
        bot.send_message(olena.chat_id, "Offer", reply_markup=keyboard(callback_data=data)),
        "Bad Request: BUTTON_DATA_INVALID",
    )


async def test_callback_data_of_64_bytes_is_fine(bot: Bot, olena: Customer) -> None:
    sent = await bot.send_message(
        olena.chat_id, "Offer", reply_markup=keyboard(callback_data="ж" * 32)
    )
    assert sent.reply_markup is not None


async def test_inline_button_without_action(sb: Sandbox, olena: Customer) -> None:
    markup = {"inline_keyboard": [[{"text": "Just text"}]]}
    status, body = await post_json(
        sb,
        f"/bot{TOKEN}/sendMessage",
        {"chat_id": olena.chat_id, "text": "x", "reply_markup": markup},
    )
    assert (status, body["description"]) == (
        400,
        "Bad Request: can't parse inline keyboard button: "
        "Text buttons are unallowed in the inline keyboard",
    )


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<marquee>hi</marquee>", 'Unsupported start tag "marquee" at byte offset 0'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("ok</b>", "Unexpected end tag at byte offset 2"),
    ],
)
async def test_malformed_html(bot: Bot, olena: Customer, text: str, detail: str) -> None:
    await bad_request(
        bot.send_message(olena.chat_id, text, parse_mode="HTML"),
        f"Bad Request: can't parse entities: {detail}",
    )


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("Price 10.50", "Character '.' is reserved and must be escaped with the preceding '\\'"),
        ("*bold", "Can't find end of Bold entity at byte offset 0"),
        ("ok _it", "Can't find end of Italic entity at byte offset 3"),
        ("Sale!", "Character '!' is reserved and must be escaped with the preceding '\\'"),
    ],
)
async def test_malformed_markdown_v2(bot: Bot, olena: Customer, text: str, detail: str) -> None:
    await bad_request(
        bot.send_message(olena.chat_id, text, parse_mode="MarkdownV2"),
        f"Bad Request: can't parse entities: {detail}",
    )


QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"


async def test_answer_callback_query_unknown_or_twice(bot: Bot, olena: Customer) -> None:
    await bad_request(bot.answer_callback_query("nope"), QUERY_TOO_OLD)
    await bot.send_message(olena.chat_id, "Offer", reply_markup=keyboard(callback_data="no"))
    tap = await olena.tap("Go")
    assert tap.callback_query_id is not None
    assert await bot.answer_callback_query(tap.callback_query_id, text="Done") is True
    await bad_request(bot.answer_callback_query(tap.callback_query_id), QUERY_TOO_OLD)
    assert (tap.answered, tap.answer_text) == (True, "Done")


async def test_answer_callback_query_too_late() -> None:
    clock = ManualClock()
    async with run_sandbox(clock=clock, limits=Limits.off(), callback_timeout=15) as sb:
        sb.add_bot(TOKEN)
        customer = sb.customer(TOKEN, 1001)
        async with aiogram_bot(sb) as bot:
            await bot.send_message(1001, "Offer", reply_markup=keyboard(callback_data="no"))
            tap = await customer.tap("Go")
            clock.advance(16)
            await bad_request(
                bot.answer_callback_query(tap.callback_query_id or ""), QUERY_TOO_OLD
            )
            assert not tap.answered


NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


async def test_edit_with_identical_content(bot: Bot, olena: Customer) -> None:
    markup = keyboard(callback_data="no")
    sent = await bot.send_message(
        olena.chat_id, "<b>Offer</b>", parse_mode="HTML", reply_markup=markup
    )
    await bad_request(
        bot.edit_message_text(
            "<b>Offer</b>",
            chat_id=olena.chat_id,
            message_id=sent.message_id,
            parse_mode="HTML",
            reply_markup=markup,
        ),
        NOT_MODIFIED,
    )
    await bad_request(
        bot.edit_message_reply_markup(
            chat_id=olena.chat_id, message_id=sent.message_id, reply_markup=markup
        ),
        NOT_MODIFIED,
    )


async def test_edit_or_delete_a_missing_message(bot: Bot, olena: Customer) -> None:
    await bad_request(
        bot.edit_message_text("x", chat_id=olena.chat_id, message_id=99),
        "Bad Request: message to edit not found",
    )
    await bad_request(
        bot.delete_message(olena.chat_id, 99), "Bad Request: message to delete not found"
    )
    sent = await bot.send_message(olena.chat_id, "Soon gone")
    await bot.delete_message(olena.chat_id, sent.message_id)
    await bad_request(
        bot.edit_message_text("x", chat_id=olena.chat_id, message_id=sent.message_id),
        "Bad Request: message to edit not found",
    )


async def test_blocked_bot_is_forbidden(bot: Bot, olena: Customer) -> None:
    sent = await bot.send_message(olena.chat_id, "Hi")
    await olena.block()
    with pytest.raises(TelegramForbiddenError) as caught:
        await bot.send_message(olena.chat_id, "Still there?")
    assert caught.value.message == "Forbidden: bot was blocked by the user"
    with pytest.raises(TelegramForbiddenError):
        await bot.send_photo(olena.chat_id, "https://cdn.example/p.jpg")
    with pytest.raises(TelegramForbiddenError):
        await bot.edit_message_text("x", chat_id=olena.chat_id, message_id=sent.message_id)
    await olena.unblock()
    assert (await bot.send_message(olena.chat_id, "Welcome back")).text == "Welcome back"


async def test_get_updates_while_webhook_is_set(bot: Bot) -> None:
    await bot.set_webhook("http://127.0.0.1:9/hook")
    with pytest.raises(TelegramConflictError) as caught:
        await bot.get_updates()
    assert caught.value.message == (
        "Conflict: can't use getUpdates method while webhook is active; "
        "use deleteWebhook to delete the webhook first"
    )


async def test_bad_webhook_secret(bot: Bot) -> None:
    await bad_request(
        bot.set_webhook("http://127.0.0.1:9/hook", secret_token="has space"),
        "Bad Request: secret token contains unallowed characters",
    )


async def test_thread_that_does_not_exist(bot: Bot, sb: Sandbox) -> None:
    sb.forum_group(TOKEN, chat_id=-100123)
    await bad_request(
        bot.send_message(-100123, "x", message_thread_id=77),
        "Bad Request: message thread not found",
    )
    await bad_request(bot.create_forum_topic(-100123, " "), "Bad Request: TOPIC_TITLE_EMPTY")

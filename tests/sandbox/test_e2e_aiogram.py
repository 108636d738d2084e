"""A real aiogram bot against the sandbox, by webhook and by long polling.

The customer starts the bot from a deep link, taps buttons and blocks/unblocks it; the
transcript and the bot's own records show what happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import (
    CallbackQuery,
    ChatMemberUpdated,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.sandbox import Sandbox
from tests.sandbox.conftest import TOKEN

OFFER = InlineKeyboardMarkup(
    inline_keyboard=[
        [InlineKeyboardButton(text="Not interested", callback_data="offer:no")],
        [InlineKeyboardButton(text="Open cart", url="https://shop.example/cart/42")],
    ]
)


def shop_dispatcher(membership: list[str]) -> Dispatcher:
    """A small shop bot: greets deep links, handles "Not interested", notes blocks."""
    router = Router(name="shop")

    @router.message(CommandStart(deep_link=True))
    async def greet(message: Message, command: CommandObject) -> None:
        await message.answer(f"Welcome! Your cart: {command.args}", reply_markup=OFFER)

    @router.callback_query(F.data == "offer:no")
    async def not_interested(query: CallbackQuery) -> None:
        await query.answer("We won't send offers")
        assert isinstance(query.message, Message)
        await query.message.edit_text("Offers are off.")

    @router.my_chat_member()
    async def member_changed(event: ChatMemberUpdated) -> None:
        membership.append(event.new_chat_member.status)

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    return dispatcher


async def customer_story(sb: Sandbox, membership: list[str]) -> None:
    """Play the customer's side and check what the bot did."""
    customer = sb.customer(TOKEN, 1001, "Olena", language_code="uk")
    await customer.start("cart-42")
    greeting = await customer.next_message(timeout=5)
    assert greeting.text == "Welcome! Your cart: cart-42"
    assert greeting.button_texts == ["Not interested", "Open cart"]

    link = await customer.tap("Open cart")
    assert (link.kind, link.url, link.callback_query_id) == (
        "url",
        "https://shop.example/cart/42",
        None,
    )
    tap = await customer.tap("Not interested")
    await tap.wait_answered(timeout=5)
    await sb.wait_idle(TOKEN, timeout=5)
    assert (tap.answered, tap.answer_text, tap.show_alert) == (True, "We won't send offers", False)
    assert customer.last_message().text == "Offers are off."
    assert customer.last_message().buttons == []

    await customer.block()
    await customer.unblock()
    await sb.wait_idle(TOKEN, timeout=5)
    assert membership == ["kicked", "member"]

    transcript = customer.transcript()
    assert [(e.from_bot, e.text, e.edited) for e in transcript] == [
        (False, "/start cart-42", False),
        (True, "Offers are off.", True),
    ]
    assert sb.stats(TOKEN).requests["answerCallbackQuery"] == 1


@asynccontextmanager
async def webhook_app(dispatcher: Dispatcher, bot: Bot, secret: str) -> AsyncIterator[str]:
    """Serve aiogram's webhook handler on a free port; yield its URL."""
    app = web.Application()
    SimpleRequestHandler(dispatcher=dispatcher, bot=bot, secret_token=secret).register(
        app, path="/telegram"
    )
    setup_application(app, dispatcher, bot=bot)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/telegram"
    finally:
        await runner.cleanup()


async def test_webhook_mode(sb: Sandbox, bot: Bot) -> None:
    membership: list[str] = []
    dispatcher = shop_dispatcher(membership)
    async with webhook_app(dispatcher, bot, secret="nudge-secret") as url:
        await bot.set_webhook(
            url,
            secret_token="nudge-secret",
            allowed_updates=dispatcher.resolve_used_update_types(),
        )
        await customer_story(sb, membership)
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 0 and info.last_error_message is None


async def test_webhook_with_a_wrong_secret_is_retried(sb: Sandbox, bot: Bot) -> None:
    dispatcher = shop_dispatcher([])
    async with webhook_app(dispatcher, bot, secret="right") as url:
        await bot.set_webhook(url, secret_token="wrong")
        customer = sb.customer(TOKEN, 1001)
        await customer.start("x")
        with pytest.raises(TimeoutError):
            await sb.wait_idle(TOKEN, timeout=0.3)
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 1
        assert info.last_error_message == "Wrong response from the webhook: 401 Unauthorized"
        await bot.set_webhook(url, secret_token="right")
        assert (await customer.next_message(timeout=5)).text == "Welcome! Your cart: x"


async def test_polling_mode(sb: Sandbox, bot: Bot) -> None:
    membership: list[str] = []
    dispatcher = shop_dispatcher(membership)
    polling = asyncio.create_task(
        dispatcher.start_polling(
            bot, polling_timeout=1, handle_signals=False, close_bot_session=False
        )
    )
    try:
        await customer_story(sb, membership)
    finally:
        await dispatcher.stop_polling()
        await asyncio.wait_for(polling, timeout=5)
    assert sb.bot(TOKEN).pending == 0


async def test_reply_in_the_webhook_answer(sb: Sandbox, bot: Bot) -> None:
    router = Router(name="echo")

    @router.message()
    async def echo(message: Message) -> object:
        return message.answer(f"You said: {message.text}")  # sent in the webhook answer

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    app = web.Application()
    SimpleRequestHandler(dispatcher=dispatcher, bot=bot, handle_in_background=False).register(
        app, path="/telegram"
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/telegram")
        customer = sb.customer(TOKEN, 1001)
        await customer.send("hello")
        assert (await customer.next_message(timeout=5)).text == "You said: hello"
        assert sb.stats(TOKEN).requests["sendMessage"] == 1
    finally:
        await runner.cleanup()

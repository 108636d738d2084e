"""Update delivery: long polling with offset/limit/timeout, and webhooks with retries."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramConflictError
from aiohttp import web

from bot.sandbox import Customer, Sandbox
from tests.sandbox.conftest import TOKEN


class Receiver:
    """A webhook endpoint that records deliveries and answers with scripted statuses."""

    def __init__(self, statuses: list[int] | None = None, answer: Any = None) -> None:
        self.statuses = list(statuses or [])
        self.answer = answer
        self.deliveries: list[tuple[dict[str, Any], str | None]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        """Record one delivery."""
        update = json.loads(await request.read())
        self.deliveries.append((update, request.headers.get("X-Telegram-Bot-Api-Secret-Token")))
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200 and self.answer is not None:
            return web.json_response(self.answer)
        return web.Response(status=status)

    @property
    def update_ids(self) -> list[int]:
        """Return the update ids in delivery order (redeliveries included)."""
        return [update["update_id"] for update, _ in self.deliveries]


@asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[Receiver]:
    """Serve `receiver` on a free port."""
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()


async def test_offset_confirms_and_limit_caps(bot: Bot, sb: Sandbox, olena: Customer) -> None:
    for text in ("one", "two", "three"):
        await olena.send(text)
    first = await bot.get_updates(limit=2)
    assert [u.message.text for u in first] == ["one", "two"]
    assert [u.update_id for u in first] == [1, 2]
    again = await bot.get_updates()
    assert len(again) == 3, "nothing is confirmed without an offset"
    rest = await bot.get_updates(offset=first[-1].update_id + 1)
    assert [u.message.text for u in rest] == ["three"]
    assert (await bot.get_webhook_info()).pending_update_count == 1
    assert await bot.get_updates(offset=4) == []
    assert sb.bot(TOKEN).pending == 0


async def test_negative_offset_keeps_the_latest(bot: Bot, olena: Customer) -> None:
    for text in ("a", "b", "c"):
        await olena.send(text)
    assert [u.message.text for u in await bot.get_updates(offset=-1)] == ["c"]


async def test_long_poll_waits_for_an_update(bot: Bot, olena: Customer) -> None:
    async def customer_writes_later() -> None:
        await asyncio.sleep(0.1)
        await olena.send("late")

    writer = asyncio.create_task(customer_writes_later())
    started = time.monotonic()
    updates = await bot.get_updates(timeout=5)
    await writer
    assert [u.message.text for u in updates] == ["late"]
    assert 0.05 < time.monotonic() - started < 2


async def test_long_poll_times_out_empty(bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == []
    assert time.monotonic() - started >= 0.9


async def test_second_poller_terminates_the_first(bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    assert await bot.get_updates(timeout=0) == []
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await first


async def test_allowed_updates_filter_new_updates(bot: Bot, olena: Customer) -> None:
    await bot.get_updates(allowed_updates=["callback_query"])
    await olena.send("ignored")
    await olena.block()
    assert await bot.get_updates() == []
    await bot.get_updates(allowed_updates=[])
    await olena.unblock()
    assert (await bot.get_updates())[0].my_chat_member is not None


async def test_webhook_delivery_with_secret(bot: Bot, sb: Sandbox, olena: Customer) -> None:
    async with serving(Receiver()) as receiver:
        assert await bot.set_webhook(receiver.url, secret_token="s3cret-Token_1")
        await olena.send("hello")
        await olena.start("cart-1")
        await sb.wait_idle(TOKEN, timeout=5)
        assert [u["message"]["text"] for u, _ in receiver.deliveries] == ["hello", "/start cart-1"]
        assert {secret for _, secret in receiver.deliveries} == {"s3cret-Token_1"}
        assert receiver.update_ids == [1, 2]


async def test_webhook_redelivers_after_errors_in_order(
    bot: Bot, sb: Sandbox, olena: Customer
) -> None:
    async with serving(Receiver(statuses=[500, 502])) as receiver:
        await bot.set_webhook(receiver.url)
        await olena.send("first")
        await olena.send("second")
        await sb.wait_idle(TOKEN, timeout=5)
        assert receiver.update_ids == [1, 1, 1, 2]
        info = await bot.get_webhook_info()
        assert info.last_error_message == "Wrong response from the webhook: 502 Bad Gateway"
        assert info.pending_update_count == 0
        assert sb.stats(TOKEN).webhook_failures == 2


async def test_webhook_retries_while_the_bot_is_down(
    bot: Bot, sb: Sandbox, olena: Customer
) -> None:
    await bot.set_webhook("http://127.0.0.1:9/unreachable")
    await olena.send("anyone?")
    with pytest.raises(TimeoutError, match="1 updates unacknowledged"):
        await sb.wait_idle(TOKEN, timeout=0.3)
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 1 and info.last_error_message
    async with serving(Receiver()) as receiver:
        await bot.set_webhook(receiver.url)
        await sb.wait_idle(TOKEN, timeout=5)
        assert [u["message"]["text"] for u, _ in receiver.deliveries] == ["anyone?"]


async def test_method_in_the_webhook_answer_is_executed(
    sb: Sandbox, bot: Bot, olena: Customer
) -> None:
    answer = {"method": "sendMessage", "chat_id": olena.chat_id, "text": "Hi from the answer"}
    async with serving(Receiver(answer=answer)) as receiver:
        await bot.set_webhook(receiver.url)
        await olena.send("hello")
        reply = await olena.next_message(timeout=5)
        assert reply.text == "Hi from the answer"


async def test_delete_webhook_can_drop_pending(bot: Bot, olena: Customer) -> None:
    await bot.set_webhook("http://127.0.0.1:9/unreachable")
    await olena.send("lost")
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates() == []

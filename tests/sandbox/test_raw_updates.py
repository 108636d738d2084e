"""Hostile updates and lost webhook answers: what the sandbox can throw at a bot."""

from __future__ import annotations

import json

import aiohttp
from aiogram import Bot
from aiohttp import web

from bot.sandbox import Customer, Sandbox
from tests.sandbox.conftest import TOKEN
from tests.sandbox.test_updates import Receiver, serving

DEEP = "[" * 50_000 + "]" * 50_000


class BytesReceiver(Receiver):
    """A webhook endpoint that records the raw bodies it gets."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        super().__init__(statuses)
        self.bodies: list[bytes] = []

    async def handle(self, request: web.Request) -> web.Response:
        """Record one body, byte for byte."""
        self.bodies.append(await request.read())
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status)


async def test_a_raw_update_reaches_the_webhook_byte_for_byte(
    bot: Bot, sb: Sandbox, olena: Customer
) -> None:
    async with serving(BytesReceiver()) as receiver:
        await bot.set_webhook(receiver.url)
        raw = sb.bot(TOKEN).enqueue_raw(
            lambda update_id: f'{{"update_id":{update_id},"message":{{"x":{DEEP}}}}}'
        )
        sb.bot(TOKEN).enqueue_raw(lambda _: b"not json\x00")
        await olena.send("after")
        await sb.wait_idle(TOKEN, timeout=5)
    assert receiver.bodies[0] == raw.body and raw["update_id"] == 1
    assert receiver.bodies[1] == b"not json\x00"
    assert json.loads(receiver.bodies[2])["message"]["text"] == "after"


async def test_get_updates_returns_a_raw_update_among_the_others(
    sb: Sandbox, olena: Customer
) -> None:
    await olena.send("before")
    sb.bot(TOKEN).enqueue_raw(lambda update_id: f'{{"update_id":{update_id},"poll":{DEEP}}}')
    await olena.send("after")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sb.base_url}/bot{TOKEN}/getUpdates") as resp:
            body = await resp.read()
        assert DEEP.encode() in body
        before, after = body.split(DEEP.encode())
        assert before.startswith(b'{"ok":true,"result":[{"update_id":1,')
        assert b'"update_id":2,"poll":' in before and b'"text":"after"' in after
        async with http.post(f"{sb.base_url}/bot{TOKEN}/getUpdates", json={"offset": 3}) as resp:
            rest = await resp.json()
    assert [u["message"]["text"] for u in rest["result"]] == ["after"]


async def test_a_lost_webhook_answer_brings_the_update_again(
    bot: Bot, sb: Sandbox, olena: Customer
) -> None:
    sb.faults.add(kind="server_error", method="webhookAnswer", status=502, count=3)
    async with serving(Receiver()) as receiver:
        await bot.set_webhook(receiver.url)
        any_method = sb.faults.add(kind="server_error", status=500)  # not an answer fault
        await olena.send("once")
        await sb.wait_idle(TOKEN, timeout=5)
        assert receiver.update_ids == [1, 1, 1, 1]
        assert any_method.hits == 0
        sb.faults.remove(any_method)
        info = await bot.get_webhook_info()
    assert info.last_error_message == "Wrong response from the webhook: 502 Bad Gateway"
    assert info.pending_update_count == 0
    assert sb.stats(TOKEN).webhook_failures == 3


async def test_an_update_sent_again_keeps_its_id(bot: Bot, sb: Sandbox, olena: Customer) -> None:
    await olena.send("twice")
    [first] = await bot.get_updates()
    again = sb.bot(TOKEN).enqueue_raw(
        lambda _: first.model_dump_json(exclude_unset=True), update_id=first.update_id
    )
    assert again["update_id"] == first.update_id == 1
    updates = await bot.get_updates()
    assert [u.update_id for u in updates] == [1, 1]
    assert updates[1].message.text == "twice"
    assert await bot.get_updates(offset=2) == []

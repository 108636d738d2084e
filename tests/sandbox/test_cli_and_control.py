"""`nudge sandbox` as a process, and the /_sandbox control API that drives it over HTTP."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import click
import pytest
from aiogram import Bot

from bot.cli.sandbox import parse_bot, sandbox
from bot.sandbox import Sandbox
from tests.sandbox.conftest import TOKEN

ROOT = Path(__file__).resolve().parents[2]


def test_parse_bot_spec() -> None:
    assert parse_bot("123:ABC") == ("123:ABC", None)
    assert parse_bot("123:ABC:shop_bot") == ("123:ABC", "shop_bot")
    with pytest.raises(click.BadParameter):
        parse_bot("shop_bot")


def test_command_is_a_click_command_with_the_documented_options() -> None:
    assert isinstance(sandbox, click.Command) and sandbox.name == "sandbox"
    options = {opt for param in sandbox.params for opt in param.opts}
    assert {"--host", "--port", "--no-limits", "--bot", "--auto-register"} <= options


async def test_process_prints_base_url_serves_and_stops_on_sigint() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.sandbox",
        "--port",
        "0",
        "--no-limits",
        "--bot",
        "123456:ABC:shop_bot",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        assert line.startswith("Telegram Bot API sandbox at http://127.0.0.1:")
        base_url = line.rsplit(" ", 1)[1].strip()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base_url}/bot123456:ABC/getMe") as resp:
                assert (await resp.json())["result"]["username"] == "shop_bot"
            async with http.get(f"{base_url}/bot999:XYZ/getMe") as resp:
                assert resp.status == 401
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_control_api_plays_a_customer(sb: Sandbox, bot: Bot) -> None:
    base = f"{sb.base_url}/_sandbox/bots/{TOKEN}"
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/customers", json={"user_id": 1001, "first_name": "Olena"}
        ) as resp:
            assert (await resp.json())["result"]["first_name"] == "Olena"
        async with http.post(f"{base}/customers/1001/start", json={"payload": "cart-1"}) as resp:
            assert (await resp.json())["result"]["text"] == "/start cart-1"
        await bot.send_message(
            1001, "Hi", reply_markup={"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}
        )
        async with http.post(f"{base}/customers/1001/tap", json={"text": "Go"}) as resp:
            assert (await resp.json())["result"]["callback_data"] == "go"
        async with http.get(f"{base}/customers/1001/transcript") as resp:
            entries = (await resp.json())["result"]
        assert [(e["from_bot"], e["text"]) for e in entries] == [
            (False, "/start cart-1"),
            (True, "Hi"),
        ]
        assert entries[1]["buttons"] == [[["Go", "go"]]]
        async with http.post(f"{base}/customers/1001/block") as resp:
            assert resp.status == 200
        async with http.post(f"{base}/customers/404/send", json={"text": "x"}) as resp:
            assert resp.status == 404
        async with http.get(f"{base}/stats") as resp:
            stats = (await resp.json())["result"]
    assert stats["requests"]["sendMessage"] == 1 and stats["updates_created"] == 3


async def test_control_api_groups_and_limits(sb: Sandbox, bot: Bot) -> None:
    base = f"{sb.base_url}/_sandbox"
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/bots/{TOKEN}/groups", json={"chat_id": -100123, "title": "Support"}
        ) as resp:
            assert (await resp.json())["result"]["is_forum"] is True
        topic = await bot.create_forum_topic(-100123, "Olena")
        async with http.post(
            f"{base}/bots/{TOKEN}/groups/-100123/post",
            json={"user_id": 501, "text": "On it", "thread_id": topic.message_thread_id},
        ) as resp:
            assert (await resp.json())["result"]["message_thread_id"] == topic.message_thread_id
        async with http.put(f"{base}/limits", json={"per_chat_burst": 1}) as resp:
            assert (await resp.json())["result"]["per_chat_burst"] == 1
        async with http.get(f"{base}/") as resp:
            overview = (await resp.json())["result"]
    assert overview["bots"][0]["username"] == "shop_bot"
    assert sb.limits.per_chat_burst == 1

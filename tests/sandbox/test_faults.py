"""Faults on demand: 429 storms, 5xx, slow answers and dropped connections."""

from __future__ import annotations

import time

import aiohttp
import pytest
import telegram
from aiogram import Bot
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError

from bot.sandbox import Customer, Limits, Sandbox, run_sandbox
from tests.sandbox.conftest import TOKEN, aiogram_bot


async def test_consecutive_retry_after_then_success(
    bot: Bot, sb: Sandbox, olena: Customer
) -> None:
    fault = sb.faults.add(method="sendMessage", kind="retry_after", count=2, retry_after=2)
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter) as caught:
            await bot.send_message(olena.chat_id, "hi")
        assert caught.value.retry_after == 2
    assert (await bot.send_message(olena.chat_id, "hi")).text == "hi"
    assert fault.hits == 2 and len(sb.faults) == 0
    assert sb.stats(TOKEN).faults_injected == 2
    assert [e.text for e in olena.transcript()] == ["hi"]


async def test_retry_after_body_carries_parameters(sb: Sandbox, olena: Customer) -> None:
    sb.faults.add(kind="retry_after", retry_after=7)
    url = f"{sb.base_url}/bot{TOKEN}/sendMessage"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json={"chat_id": olena.chat_id, "text": "x"}) as resp,
    ):
        assert resp.status == 429
        assert await resp.json() == {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 7",
            "parameters": {"retry_after": 7},
        }


async def test_bad_gateway(bot: Bot, sb: Sandbox, olena: Customer) -> None:
    sb.faults.add(method="sendMessage", kind="server_error", status=502)
    with pytest.raises(TelegramServerError, match="Bad Gateway"):
        await bot.send_message(olena.chat_id, "hi")
    assert olena.transcript() == []


async def test_dropped_connection(bot: Bot, sb: Sandbox, olena: Customer) -> None:
    sb.faults.add(method="sendMessage", kind="drop")
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(olena.chat_id, "hi")
    assert (await bot.send_message(olena.chat_id, "hi")).text == "hi"


async def test_slow_answer(bot: Bot, sb: Sandbox, olena: Customer) -> None:
    sb.faults.add(method="sendMessage", kind="slow", delay=0.2)
    started = time.monotonic()
    await bot.send_message(olena.chat_id, "hi")
    assert time.monotonic() - started >= 0.2


async def test_slow_answer_times_out_a_client(sb: Sandbox, olena: Customer) -> None:
    sb.faults.add(method="sendMessage", kind="slow", delay=1.0)
    async with telegram.Bot(TOKEN, base_url=f"{sb.base_url}/bot") as ptb:
        with pytest.raises(telegram.error.TimedOut):
            await ptb.send_message(olena.chat_id, "hi", read_timeout=0.1)


async def test_fault_for_one_chat_only(bot: Bot, sb: Sandbox, olena: Customer) -> None:
    other = sb.customer(TOKEN, 2002, "Petro")
    sb.faults.add(
        kind="error",
        status=403,
        description="Forbidden: user is deactivated",
        chat_id=olena.chat_id,
        count=None,
    )
    await bot.send_message(other.chat_id, "fine")
    with pytest.raises(Exception, match="user is deactivated"):
        await bot.send_message(olena.chat_id, "fails")
    with pytest.raises(Exception, match="user is deactivated"):
        await bot.send_photo(olena.chat_id, "https://cdn.example/p.jpg")


async def random_failures(seed: int) -> list[bool]:
    """Send 30 messages under a seeded 50% 5xx fault; return which failed."""
    async with run_sandbox(limits=Limits.off()) as sb:
        sb.add_bot(TOKEN)
        sb.customer(TOKEN, 1001)
        sb.faults.add(kind="server_error", probability=0.5, seed=seed, count=None)
        failed = []
        async with aiogram_bot(sb) as bot:
            for _ in range(30):
                try:
                    await bot.send_message(1001, "x")
                    failed.append(False)
                except TelegramServerError:
                    failed.append(True)
        return failed


async def test_random_faults_repeat_with_the_same_seed() -> None:
    first, second = await random_failures(7), await random_failures(7)
    assert first == second
    assert 5 < sum(first) < 25


async def test_faults_over_the_control_api(sb: Sandbox, bot: Bot, olena: Customer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{sb.base_url}/_sandbox/faults", json={"kind": "server_error", "status": 503}
        ) as resp:
            assert resp.status == 200
        with pytest.raises(TelegramServerError, match="Service Unavailable"):
            await bot.send_message(olena.chat_id, "x")
        async with http.post(
            f"{sb.base_url}/_sandbox/faults", json={"kind": "drop", "count": None}
        ) as resp:
            assert resp.status == 200
        async with http.delete(f"{sb.base_url}/_sandbox/faults") as resp:
            assert resp.status == 200
    assert (await bot.send_message(olena.chat_id, "x")).text == "x"

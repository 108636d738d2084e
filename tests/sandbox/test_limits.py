"""Flood control: per chat, per group and per bot, with 429 retry_after; and send statistics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import telegram
from aiogram import Bot
from aiogram.exceptions import TelegramRetryAfter

from bot.clock import ManualClock
from bot.sandbox import Limits, Sandbox, run_sandbox
from tests.sandbox.conftest import TOKEN, aiogram_bot


@asynccontextmanager
async def limited(limits: Limits) -> AsyncIterator[tuple[Sandbox, Bot, ManualClock]]:
    """A sandbox with `limits` on a manual clock, and an aiogram bot on it."""
    clock = ManualClock()
    async with run_sandbox(limits=limits, clock=clock) as sb:
        sb.add_bot(TOKEN)
        async with aiogram_bot(sb) as bot:
            yield sb, bot, clock


async def test_private_chat_allows_a_burst_then_one_per_second() -> None:
    async with limited(Limits(per_chat_per_second=1.0, per_chat_burst=3)) as (sb, bot, clock):
        sb.customer(TOKEN, 1001)
        for _ in range(3):
            await bot.send_message(1001, "burst")
        with pytest.raises(TelegramRetryAfter) as caught:
            await bot.send_message(1001, "one too many")
        assert caught.value.retry_after == 1
        assert "Original description: Too Many Requests: retry after 1" in caught.value.message
        clock.advance(1)
        await bot.send_message(1001, "after waiting")
        with pytest.raises(TelegramRetryAfter):
            await bot.send_message(1001, "again too fast")
        assert sb.stats(TOKEN).rate_limited == 2
        assert sb.stats(TOKEN).sends == 4


async def test_group_allows_twenty_per_minute() -> None:
    limits = Limits(per_chat_per_second=None, per_group=20, group_window=60)
    async with limited(limits) as (sb, bot, clock):
        sb.forum_group(TOKEN, chat_id=-100123)
        for _ in range(20):
            await bot.send_message(-100123, "agent note")
            clock.advance(1)
        with pytest.raises(TelegramRetryAfter) as caught:
            await bot.send_message(-100123, "21st")
        assert caught.value.retry_after == 40
        clock.advance(40)
        await bot.send_message(-100123, "next minute")


async def test_bot_allows_thirty_per_second_across_chats() -> None:
    async with limited(Limits(per_chat_per_second=None, per_bot_per_second=30)) as (sb, bot, _):
        for user_id in range(1, 32):
            sb.customer(TOKEN, user_id)
        for user_id in range(1, 31):
            await bot.send_message(user_id, "broadcast")
        with pytest.raises(TelegramRetryAfter) as caught:
            await bot.send_message(31, "broadcast")
        assert caught.value.retry_after == 1
        assert sb.stats(TOKEN).max_sends_in_1s == 30


async def test_limits_off_never_refuse() -> None:
    async with limited(Limits.off()) as (sb, bot, _):
        sb.customer(TOKEN, 1001)
        for _ in range(100):
            await bot.send_message(1001, "flood")
        stats = sb.stats(TOKEN)
        assert (stats.sends, stats.rate_limited, stats.max_chat_sends_in_1s) == (100, 0, 100)


async def test_max_sends_in_any_one_second_window() -> None:
    async with limited(Limits.off()) as (sb, bot, clock):
        for user_id in (1, 2):
            sb.customer(TOKEN, user_id)
        for step in (0.0, 0.5, 0.6):  # sends at t=0, 0.5 and 1.1
            clock.advance(step)
            for _ in range(5):
                await bot.send_message(1, "x")
        await bot.send_message(2, "y")
        stats = sb.stats(TOKEN)
        # [0.5, 1.5) holds 5 + 5 + 1 sends; [0, 1) holds 10.
        assert (stats.max_sends_in_1s, stats.max_chat_sends_in_1s) == (11, 10)
        sb.reset_stats(TOKEN)
        assert sb.stats(TOKEN).max_sends_in_1s == 0


async def test_limits_can_change_while_running() -> None:
    async with limited(Limits.off()) as (sb, bot, _):
        sb.customer(TOKEN, 1001)
        for _ in range(5):
            await bot.send_message(1001, "free")
        sb.set_limits(Limits(per_chat_burst=1))
        await bot.send_message(1001, "one")
        with pytest.raises(TelegramRetryAfter):
            await bot.send_message(1001, "two")


async def test_python_telegram_bot_sees_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    async with run_sandbox(limits=Limits(per_chat_burst=1), clock=ManualClock()) as sb:
        sb.add_bot(TOKEN)
        sb.customer(TOKEN, 1001)
        async with telegram.Bot(TOKEN, base_url=f"{sb.base_url}/bot") as ptb:
            await ptb.send_message(1001, "one")
            with pytest.raises(telegram.error.RetryAfter) as caught:
                await ptb.send_message(1001, "two")
            assert caught.value.retry_after.total_seconds() == 1

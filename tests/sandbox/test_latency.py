"""The sandbox answers after a latency, as Telegram does, and counts a call when it arrives."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiogram.exceptions import TelegramRetryAfter

from bot.sandbox import Limits

TOKEN = "123456:TEST-token_abc"  # the `sb` fixture's bot (tests/sandbox/conftest.py)


async def test_every_call_is_answered_after_the_latency(sb, bot):
    sb.set_latency(0.05, 0.01)
    started = time.monotonic()
    await bot.get_me()
    assert time.monotonic() - started >= 0.04
    sb.set_latency(0)
    started = time.monotonic()
    await bot.get_me()
    assert time.monotonic() - started < 0.04


async def test_calls_in_flight_overlap_so_latency_does_not_cap_the_rate(sb, bot):
    sb.set_latency(0.05)
    customer = sb.customer(TOKEN, 7001)
    await customer.send("/start")
    started = time.monotonic()
    await asyncio.gather(*(bot.send_message(customer.chat_id, f"m{i}") for i in range(40)))
    assert time.monotonic() - started < 40 * 0.05 / 2  # far less than one after another
    assert sb.stats(TOKEN).max_sends_in_1s >= 40


async def test_errors_come_after_the_latency_too(sb, bot):
    sb.set_limits(Limits(per_bot_per_second=1, per_chat_per_second=None), TOKEN)
    sb.set_latency(0.05)
    customer = sb.customer(TOKEN, 7001)
    await customer.send("/start")
    await bot.send_message(customer.chat_id, "one")
    started = time.monotonic()
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(customer.chat_id, "two")
    assert time.monotonic() - started >= 0.05


@pytest.mark.parametrize(("latency", "jitter"), [(-1, 0), (0.01, 0.02)])
def test_a_latency_that_makes_no_sense_is_refused(sb, latency, jitter):
    with pytest.raises(ValueError):
        sb.set_latency(latency, jitter)


def test_nudge_sandbox_takes_a_latency_and_a_jitter(monkeypatch):
    from click.testing import CliRunner

    from bot.cli import sandbox as command

    started = {}

    async def serve(host, port, instance):
        started["latency"], started["jitter"] = instance.latency, instance.jitter

    monkeypatch.setattr(command, "serve", serve)
    runner = CliRunner()
    result = runner.invoke(command.sandbox, ["--latency", "50ms", "--jitter", "10ms"])
    assert result.exit_code == 0, result.output
    assert started == {"latency": 0.05, "jitter": 0.01}
    for bad in (
        ["--latency", "fast"],
        ["--latency", "11s"],
        ["--latency", "5ms", "--jitter", "9ms"],
    ):
        result = runner.invoke(command.sandbox, bad)
        assert result.exit_code == 2, (bad, result.output)

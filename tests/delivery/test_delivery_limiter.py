"""The in-process rate limiter: no window over the rate, chats spaced, 429 pauses the bot."""

from __future__ import annotations

import asyncio
import time

from bot.delivery.limiter import SlidingWindowLimiter


def most_in_any_window(times: list[float], window: float = 1.0) -> int:
    """Return the most grant times that fall into any half-open window of `window` seconds."""
    times = sorted(times)
    best = start = 0
    for end, moment in enumerate(times):
        while times[start] <= moment - window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def grant(limiter: SlidingWindowLimiter, bot: str, chat: int, log: list[float]) -> None:
    await limiter.acquire(bot, chat)
    log.append(time.monotonic())


async def test_no_one_second_window_exceeds_the_rate():
    limiter = SlidingWindowLimiter(rate=40, per_chat=None)
    log: list[float] = []
    started = time.monotonic()
    await asyncio.gather(*(grant(limiter, "bot", n, log) for n in range(100)))
    elapsed = time.monotonic() - started
    assert most_in_any_window(log) <= 40
    assert most_in_any_window(log, 1.0 + 0.049) <= 40  # the margin absorbs jitter too
    assert 2.0 < elapsed < 3.0  # two full windows of waiting, not much more


async def test_each_chat_gets_at_most_one_message_per_second():
    limiter = SlidingWindowLimiter(rate=100, per_chat=1.0)
    per_chat: dict[int, list[float]] = {1: [], 2: []}
    await asyncio.gather(*(grant(limiter, "bot", chat, per_chat[chat]) for chat in (1, 2, 1, 2)))
    for times in per_chat.values():
        gaps = [b - a for a, b in zip(sorted(times), sorted(times)[1:], strict=False)]
        assert len(times) == 2 and min(gaps) >= 1.0


async def test_a_busy_chat_does_not_hold_up_other_chats():
    limiter = SlidingWindowLimiter(rate=100, per_chat=1.0)
    log: list[float] = []
    started = time.monotonic()
    await grant(limiter, "bot", 1, [])
    waiting = asyncio.create_task(grant(limiter, "bot", 1, []))
    await asyncio.sleep(0)
    await asyncio.gather(*(grant(limiter, "bot", chat, log) for chat in range(2, 12)))
    assert max(log) - started < 0.3
    await waiting


async def test_a_pause_stops_every_send_of_that_bot_only():
    limiter = SlidingWindowLimiter(rate=100, per_chat=None)
    limiter.pause("paused-bot", 0.6)
    other: list[float] = []
    paused: list[float] = []
    started = time.monotonic()
    await asyncio.gather(
        *(grant(limiter, "paused-bot", n, paused) for n in range(5)),
        *(grant(limiter, "other-bot", n, other) for n in range(5)),
    )
    assert max(other) - started < 0.2
    assert min(paused) - started >= 0.6
    assert limiter.paused_for("paused-bot") == 0


async def test_a_pause_is_extended_never_shortened():
    limiter = SlidingWindowLimiter(rate=10, per_chat=None)
    limiter.pause("bot", 5)
    limiter.pause("bot", 1)
    assert limiter.paused_for("bot") > 4


async def test_a_fractional_rate_spaces_sends_out():
    limiter = SlidingWindowLimiter(rate=4, per_chat=None, window=0.25, margin=0.0)
    log: list[float] = []
    await asyncio.gather(*(grant(limiter, "bot", n, log) for n in range(3)))
    assert most_in_any_window(log, 0.25) <= 1


async def test_sends_are_paced_not_fired_in_one_burst():
    limiter = SlidingWindowLimiter(rate=25, per_chat=None)
    log: list[float] = []
    started = time.monotonic()
    await asyncio.gather(*(grant(limiter, "bot", n, log) for n in range(12)))
    assert most_in_any_window(log, 0.1) <= 5  # a burst of 3, then one every 42 ms
    assert max(log) - started >= 0.35

"""The limiter widens its margin after a stall of this process (#12: rate at the receiver)."""

from __future__ import annotations

import asyncio
import time

from bot.delivery.limiter import SlidingWindowLimiter


async def test_a_stall_widens_the_window_before_the_next_grant():
    limiter = SlidingWindowLimiter(rate=20, per_chat=None)
    log: list[float] = []
    busy = asyncio.Event()

    async def grant(chat: int) -> None:
        await limiter.acquire("bot", chat)
        log.append(time.monotonic())
        if len(log) >= 15:
            busy.set()

    sending = asyncio.gather(*(grant(n) for n in range(60)))
    await busy.wait()
    before = log[-1]  # the last send granted before the stall
    time.sleep(0.2)  # noqa: ASYNC251 - the process stalls; sends granted just before may leave late
    await sending
    assert limiter.stall_margin > 0.1  # remembered, fading slowly
    # A send granted just before the stall may arrive 0.2 s late, beside the ones granted after
    # it: no window of 1.2 s that holds it holds more than the rate.
    for end in (t for t in log if before < t < before + 1.2):
        assert sum(1 for t in log if end - 1.2 < t <= end) <= 20


async def test_without_stalls_the_margin_stays_the_base_one():
    limiter = SlidingWindowLimiter(rate=50, per_chat=None)
    await asyncio.gather(*(limiter.acquire("bot", n) for n in range(60)))
    assert limiter.stall_margin < 0.05

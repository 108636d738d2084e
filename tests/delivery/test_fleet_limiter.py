"""The limiter counts a send from when it left, and widens its margin after a stall of this
process or a slow answer (#12: the rate at the receiver)."""

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


async def test_a_send_counts_from_when_it_left_not_from_its_grant():
    limiter = SlidingWindowLimiter(rate=10, per_chat=None)
    held = [await limiter.reserve("bot", n) for n in range(3)]
    await asyncio.sleep(0.6)  # granted, then held on the way (a jammed cap, a slow connection)
    for grant in held:
        grant.leave()
    left = [time.monotonic()] * 3
    for n in range(3, 20):
        (await limiter.reserve("bot", n)).leave()
        left.append(time.monotonic())
    # Dated at their grants they would have left the window by 1.05 s, and ten more would have
    # gone out in the second after they really left.
    for end in left:
        assert sum(1 for t in left if end - 1.0 < t <= end) <= 10


async def test_a_send_on_its_way_keeps_its_place_however_long_it_is_held():
    limiter = SlidingWindowLimiter(rate=4, per_chat=None)
    held = [await limiter.reserve("bot", n) for n in range(4)]
    fifth = asyncio.create_task(limiter.acquire("bot", 4))
    await asyncio.sleep(1.5)  # longer than the window: still nobody has left
    assert not fifth.done()
    held[0].leave()
    departed = time.monotonic()
    await fifth
    # the other three still count as leaving now: the fifth waits for the first to age out
    assert time.monotonic() - departed >= limiter.window - 0.01
    held[0].leave()  # a second leave changes nothing
    assert limiter._state("bot").pending == 3


async def test_a_stall_before_departure_needs_no_wider_window():
    limiter = SlidingWindowLimiter(rate=20, per_chat=None)

    async def send(chat: int) -> None:
        grant = await limiter.reserve("bot", chat)
        await asyncio.sleep(0)  # on its way: what a stall holds up now leaves after it
        grant.leave()

    sending = asyncio.gather(*(send(n) for n in range(30)))
    await asyncio.sleep(0.2)
    time.sleep(0.2)  # noqa: ASYNC251 - the process stalls while sends wait for their turn
    await sending
    # Dated when they left, the held sends count from after the stall: the window (and the
    # rate) stays as it was, unlike sends dated at their grant (the first test).
    assert limiter.stall_margin == 0

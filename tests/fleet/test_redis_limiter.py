"""The Redis limiter shares each bot's rate, each chat's spacing and 429 pauses between
instances, and waits out a Redis outage instead of sending blind."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from fleet_support import OwnRedis, eventually, most_in_window, unique_prefix

from bot.delivery.redis_limiter import RedisLimiter, bot_key, redis_client

TOKEN_ID = "7400000001"


@pytest.fixture
async def clients(machine_redis: str) -> AsyncIterator[list[redis.Redis]]:
    """Two clients of the machine's Redis, as two instances would hold."""
    pair = [redis_client(machine_redis), redis_client(machine_redis)]
    yield pair
    for client in pair:
        await client.aclose()


def two_instances(clients: list[redis.Redis], **options: object) -> list[RedisLimiter]:
    prefix = unique_prefix()
    return [RedisLimiter(client, prefix=prefix, **options) for client in clients]  # type: ignore[arg-type]


async def test_two_instances_never_exceed_the_rate_in_any_second(clients):
    first, second = two_instances(clients, rate=20, per_chat=None)
    grants: list[float] = []

    async def send(limiter: RedisLimiter, chat: int) -> None:
        await limiter.acquire(TOKEN_ID, chat)
        grants.append(time.monotonic())

    await asyncio.gather(*(send((first, second)[i % 2], i) for i in range(70)))

    assert len(grants) == 70
    assert most_in_window(grants) <= 20
    # paced, not bunched: a tenth of the rate may go out together, then one every 1.05/20 s
    assert most_in_window(grants, 0.2) <= 2 + 5


async def test_a_send_on_its_way_holds_back_every_instance_until_it_left(clients):
    first, second = two_instances(clients, rate=5, per_chat=None)
    held = [await first.reserve(TOKEN_ID, n) for n in range(5)]
    blocked = asyncio.create_task(second.acquire(TOKEN_ID, 5))
    await asyncio.sleep(first.window + 0.3)  # longer than the window: nobody has left yet
    assert not blocked.done(), "granted sends still on their way count in the window"
    for grant in held:
        grant.leave()
    left = time.monotonic()
    await blocked
    # they left just now: the sixth waits for the first of them to age out of the window
    assert time.monotonic() - left >= first.window - 0.05
    await first.close()


@pytest.mark.xfail(
    reason="#12 open: RedisLimiter.observe() does not yet widen the other instances' pacing "
    "enough (22 grants in the widened window, 20 allowed); see the issue's note",
    strict=False,
)
async def test_slow_answers_in_one_instance_widen_the_pacing_of_every_instance(clients):
    first, second = two_instances(clients, rate=20, per_chat=None)
    first.observe(TOKEN_ID, 0.01)  # the quickest answer so far
    first.observe(TOKEN_ID, 0.6)  # then one that may have arrived late
    assert first.stall_margin > 0.2
    grants: list[float] = []

    async def send(limiter: RedisLimiter, chat: int) -> None:
        await limiter.acquire(TOKEN_ID, chat)
        grants.append(time.monotonic())

    await asyncio.gather(*(send((first, second)[i % 2], i) for i in range(50)))
    widened = first.window + first.stall_margin  # the margin fades slowly: its narrowest now
    # The second instance saw no slow answer, yet its grants keep to the wider window too.
    assert most_in_window(grants, widened - 0.01) <= 20
    # (without the widening 20 go out in every 1.2 s: that many more would fit in this window)
    assert most_in_window(grants, 1.2) < 20


async def test_a_chat_gets_one_send_per_second_from_all_instances_together(clients):
    first, second = two_instances(clients, rate=100, per_chat=1.0)
    to_chat: list[float] = []
    others: list[float] = []

    async def send(limiter: RedisLimiter, chat: int, log: list[float]) -> None:
        await limiter.acquire(TOKEN_ID, chat)
        log.append(time.monotonic())

    waiting = [asyncio.create_task(send((first, second)[i % 2], 42, to_chat)) for i in range(3)]
    await asyncio.sleep(0.05)
    await asyncio.gather(*(send(second, 1000 + i, others) for i in range(10)))
    await asyncio.gather(*waiting)

    gaps = [b - a for a, b in zip(sorted(to_chat), sorted(to_chat)[1:], strict=False)]
    assert len(gaps) == 2 and min(gaps) >= 1.0, gaps
    assert max(others) < sorted(to_chat)[1], "other chats do not wait behind a spaced chat"


async def test_a_429_pause_stops_the_bot_in_every_instance(clients):
    first, second = two_instances(clients, rate=100, per_chat=None)
    await second.acquire(TOKEN_ID, 1)  # it has sent before: only the pause holds it now

    paused_at = time.monotonic()
    first.pause(TOKEN_ID, 1.0)
    await eventually(lambda: not first._writes, 5, "the pause written to Redis")
    await second.acquire(TOKEN_ID, 2)
    assert time.monotonic() - paused_at >= 0.9

    other_bot = time.monotonic()
    await second.acquire("7400000002", 3)
    assert time.monotonic() - other_bot < 0.5, "another bot is not paused"


async def test_the_pause_holds_at_once_in_the_instance_that_got_the_429(clients):
    (limiter,) = two_instances(clients[:1], rate=100, per_chat=None)
    paused_at = time.monotonic()
    limiter.pause(TOKEN_ID, 0.5)
    await limiter.acquire(TOKEN_ID, 1)
    assert time.monotonic() - paused_at >= 0.45
    await limiter.close()


async def test_keys_never_hold_the_token(clients, machine_redis):
    token = "7400000009:AAsecretpartofthetokenxyz"
    (limiter,) = two_instances(clients[:1], rate=100, per_chat=1.0)
    await limiter.acquire(token, 5)
    keys = [k.decode() async for k in clients[0].scan_iter(match=limiter.prefix + "*")]
    assert keys and all(bot_key(token) in k for k in keys)
    assert not any("AAsecret" in k or "7400000009" in k for k in keys)


async def test_redis_down_pauses_sending_and_it_resumes_by_itself(own_redis: OwnRedis, caplog):
    caplog.set_level(logging.WARNING, logger="bot.delivery.redis_limiter")
    limiter = RedisLimiter.from_url(own_redis.url, rate=50, per_chat=None, prefix=unique_prefix())
    try:
        await limiter.acquire(TOKEN_ID, 1)
        own_redis.stop()

        waiting = asyncio.create_task(limiter.acquire(TOKEN_ID, 2))
        await eventually(lambda: not limiter.reachable, 10, "the outage noticed")
        await asyncio.sleep(1.0)
        assert not waiting.done(), "nothing is granted while Redis cannot count it"

        own_redis.start()
        await asyncio.wait_for(waiting, 20)
        await limiter.acquire(TOKEN_ID, 3)
        assert limiter.reachable
    finally:
        await limiter.close()
    outages = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(outages) == 1, [r.getMessage() for r in caplog.records]
    assert any("sending resumes" in r.getMessage() for r in caplog.records)


async def test_a_pause_given_while_redis_is_down_reaches_it_when_it_returns(
    own_redis: OwnRedis,
):
    prefix = unique_prefix()
    first = RedisLimiter.from_url(own_redis.url, rate=50, per_chat=None, prefix=prefix)
    second = RedisLimiter.from_url(own_redis.url, rate=50, per_chat=None, prefix=prefix)
    try:
        await first.acquire(TOKEN_ID, 1)
        own_redis.stop()
        first.pause(TOKEN_ID, 30.0)
        await asyncio.sleep(0.3)
        own_redis.start()
        await eventually(lambda: not first._writes, 15, "the pause written once Redis is back")
        blocked = asyncio.create_task(second.acquire(TOKEN_ID, 2))
        await asyncio.sleep(0.5)
        assert not blocked.done(), "the other instance honours the shared pause"
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
    finally:
        await first.close()
        await second.close()

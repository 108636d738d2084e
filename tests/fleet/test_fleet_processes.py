"""Several `nudge` instances on one PostgreSQL, one Redis and the sandbox share the work and the
limits: every recipient gets exactly one message, no bot goes over its rate in any second at the
receiver, Telegram never answers 429; a killed instance, a Redis outage and a database outage
cost nothing acknowledged.

By default each test sends BOTS x PER_BOT messages (10 x 150); NUDGE_FLEET_FULL=1 runs the
issue's size (10 x 1,000 = 10,000).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from fleet_processes import (
    BOTS,
    PER_BOT,
    RATE,
    Fleet,
    SandboxThread,
    Seeded,
    count,
    outbox_states,
    seed,
    throwaway_database,
)
from fleet_support import OwnRedis, TcpProxy
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db import create_engine
from bot.sandbox import Sandbox
from integrations.generic import sign as generic_signature

pytestmark = pytest.mark.slow
TIMEOUT = 150 + 3 * PER_BOT / RATE  # a deadline: three processes start slowly on a busy machine


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The Telegram sandbox enforcing Telegram's limits, on a thread of its own."""
    running = SandboxThread()
    yield running.start()
    running.stop()


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    """A PostgreSQL database of the test's own, migrated."""
    async with throwaway_database() as url:
        yield url


@pytest.fixture
async def probe(database_url: str) -> AsyncIterator[AsyncEngine]:
    """One engine on the test's database to watch the outbox with (direct, never proxied)."""
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    yield engine
    await engine.dispose()


def sends(sandbox: Sandbox) -> int:
    return sum(world.stats.sends for world in sandbox.bots.values())


def received(sandbox: Sandbox, seeded: Seeded) -> dict[tuple[str, int], int]:
    """Return how many messages each recipient got."""
    return {
        (token, chat): len(sandbox.customer(token, chat).bot_messages())
        for token, chats in seeded.chats.items()
        for chat in chats
    }


def densest_second(world: object) -> str:
    """Describe where a bot's busiest second of arrivals was (for a failure message)."""
    arrivals = sorted(t for t, _chat in getattr(world.limiter, "arrivals", ()))  # type: ignore[attr-defined]
    if not arrivals:
        return ""
    best, first, start = 0, 0, 0
    for end, t in enumerate(arrivals):
        while arrivals[start] <= t - 1.0:
            start += 1
        if end - start + 1 > best:
            best, first = end - start + 1, start
    window = arrivals[first : first + best]
    offsets = [round(t - window[0], 3) for t in window]
    return f"; at {window[0] - arrivals[0]:.2f} s after the first send: {offsets}"


def assert_within_limits(sandbox: Sandbox) -> None:
    for token, world in sandbox.bots.items():
        stats = world.stats_snapshot()
        assert stats.rate_limited == 0, f"{token[:10]}: {stats.rate_limited} answered 429"
        assert stats.max_sends_in_1s <= RATE, (
            f"{token[:10]}: {stats.max_sends_in_1s} in 1 s{densest_second(world)}"
        )
        assert stats.max_chat_sends_in_1s <= 1


async def test_three_instances_send_each_message_once_within_every_bots_rate(
    tmp_path: Path,
    sandbox: Sandbox,
    database_url: str,
    probe: AsyncEngine,
    own_redis: OwnRedis,
):
    seeded = await seed(database_url, sandbox, bots=BOTS, per_bot=PER_BOT)
    fleet = Fleet(tmp_path, database_url, own_redis.url, sandbox.base_url)
    try:
        for _ in range(3):
            await fleet.start("dispatch")
        await fleet.until(lambda: sends(sandbox) >= seeded.total, TIMEOUT, "all sent")
        await asyncio.sleep(0.5)  # anything extra would arrive now
    finally:
        await fleet.stop()
    got = received(sandbox, seeded)
    assert set(got.values()) == {1}, fleet.logs()
    assert_within_limits(sandbox)
    assert await outbox_states(probe) == {"sent": seeded.total}
    for instance in fleet.instances:
        assert "Traceback" not in instance.output(), instance.output()


async def test_an_instance_killed_mid_run_costs_at_most_its_rows_in_flight(
    tmp_path: Path,
    sandbox: Sandbox,
    database_url: str,
    probe: AsyncEngine,
    own_redis: OwnRedis,
):
    seeded = await seed(database_url, sandbox, bots=BOTS, per_bot=PER_BOT)
    fleet = Fleet(tmp_path, database_url, own_redis.url, sandbox.base_url)
    try:
        victim = await fleet.start("dispatch")
        for _ in range(2):
            await fleet.start("dispatch")
        await fleet.until(lambda: sends(sandbox) >= seeded.total // 3, TIMEOUT, "a third sent")
        victim.kill()
        await victim.process.wait()
        # each row names the instance that claimed it: host:pid:random
        victims = f"claimed_by LIKE '%:{victim.process.pid}:%'"
        in_flight = await count(
            probe, f"SELECT count(*) FROM outbox WHERE state = 'sending' AND {victims}"
        )
        assert in_flight > 0, "killed while it held rows"

        async def settled() -> bool:
            states = await outbox_states(probe)
            others = await count(
                probe, f"SELECT count(*) FROM outbox WHERE state = 'sending' AND NOT {victims}"
            )
            return not states.get("scheduled") and others == 0

        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while not await settled():
            assert asyncio.get_running_loop().time() < deadline, fleet.logs()
            await asyncio.sleep(0.5)
        await asyncio.sleep(2.5)  # the dead instance's rows are now older than a 2 s lease
        recovery = await fleet.start("dispatch", "--once", "--lease", "2", "--json")
        assert await recovery.process.wait() == 0, recovery.output()
    finally:
        await fleet.stop()

    states = await outbox_states(probe)
    unknown = states.get("unknown", 0)
    assert states.get("sent", 0) + unknown == seeded.total, states
    # only the killed instance's rows in flight are unknown; the others finished theirs
    assert unknown <= in_flight, (unknown, in_flight)
    assert (
        await count(
            probe, f"SELECT count(*) FROM outbox WHERE state = 'unknown' AND NOT {victims}"
        )
        == 0
    )
    got = received(sandbox, seeded)
    assert max(got.values()) == 1, "nobody got a message twice"
    assert sum(got.values()) >= seeded.total - unknown
    assert_within_limits(sandbox)


async def test_redis_stopped_mid_run_pauses_sending_and_it_resumes(
    tmp_path: Path,
    sandbox: Sandbox,
    database_url: str,
    probe: AsyncEngine,
    own_redis: OwnRedis,
):
    seeded = await seed(database_url, sandbox, bots=BOTS, per_bot=PER_BOT)
    fleet = Fleet(tmp_path, database_url, own_redis.url, sandbox.base_url)
    try:
        for _ in range(3):
            await fleet.start("dispatch")
        await fleet.until(lambda: sends(sandbox) >= seeded.total // 3, TIMEOUT, "a third sent")
        own_redis.stop()
        await asyncio.sleep(1.0)  # sends already granted arrive
        paused_at = sends(sandbox)
        await asyncio.sleep(2.0)
        assert sends(sandbox) == paused_at, "nothing is sent while Redis cannot count it"
        assert paused_at < seeded.total
        own_redis.start()
        await fleet.until(lambda: sends(sandbox) >= seeded.total, TIMEOUT, "all sent")
        await asyncio.sleep(0.5)
    finally:
        await fleet.stop()
    assert set(received(sandbox, seeded).values()) == {1}, fleet.logs()
    assert_within_limits(sandbox)
    assert await outbox_states(probe) == {"sent": seeded.total}
    logs = fleet.logs()
    assert "Redis unreachable" in logs and "sending resumes" in logs


async def post_delivery(
    http: aiohttp.ClientSession, port: int, shop_id: int, secret: str, n: int
) -> int:
    """POST one generic customer.upserted delivery; return the HTTP status."""
    body = json.dumps(
        {
            "id": f"fleet-evt-{n}",
            "occurred_at": "2026-05-01T09:30:00+00:00",
            "data": {"id": f"fleet-{n}", "first_name": f"Person {n}"},
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Nudge-Topic": "customer.upserted",
        "X-Nudge-Signature": generic_signature(body, secret),
    }
    try:
        async with http.post(
            f"http://127.0.0.1:{port}/hooks/generic/{shop_id}", data=body, headers=headers
        ) as response:
            return response.status
    except aiohttp.ClientError:
        return 0


async def readiness(http: aiohttp.ClientSession, port: int) -> tuple[int, dict]:
    try:
        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
            return response.status, await response.json()
    except aiohttp.ClientError as exc:
        return 0, {"error": str(exc)}


async def test_database_unreachable_for_10_s_loses_nothing_acknowledged(
    tmp_path: Path,
    sandbox: Sandbox,
    database_url: str,
    probe: AsyncEngine,
    own_redis: OwnRedis,
):
    seeded = await seed(database_url, sandbox, bots=3, per_bot=PER_BOT)
    target = make_url(database_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    fleet = Fleet(tmp_path, proxied, own_redis.url, sandbox.base_url)
    fleet.env["NUDGE_TELEGRAM_MODE"] = "off"
    shop_id = next(iter(seeded.shops.values()))
    secret = await _webhook_secret(probe, shop_id)
    acknowledged: set[int] = set()
    refused: set[int] = set()
    try:
        servers = [await fleet.start("serve") for _ in range(2)]
        await fleet.start("dispatch")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
            for server in servers:
                for _ in range(300):
                    if (await readiness(http, server.port))[0] == 200:
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError(fleet.logs())
            for n in range(20):
                status = await post_delivery(http, servers[n % 2].port, shop_id, secret, n)
                assert status == 200, (status, fleet.logs())
                acknowledged.add(n)
            await fleet.until(lambda: sends(sandbox) >= seeded.total // 4, TIMEOUT, "a quarter")

            proxy.cut()
            cut_at = asyncio.get_running_loop().time()
            status, body = await readiness(http, servers[0].port)
            assert status == 503 and body["failed"] == ["database"], body
            for n in range(20, 30):
                status = await post_delivery(http, servers[n % 2].port, shop_id, secret, n)
                (acknowledged if status == 200 else refused).add(n)
            assert refused, "webhooks answer 503 while the database is away"
            assert all(n >= 20 for n in refused)
            await asyncio.sleep(max(0.0, 10.0 - (asyncio.get_running_loop().time() - cut_at)))
            proxy.restore()

            for n in sorted(refused):  # the platform delivers again
                for _ in range(100):
                    status = await post_delivery(http, servers[n % 2].port, shop_id, secret, n)
                    if status == 200:
                        acknowledged.add(n)
                        break
                    await asyncio.sleep(0.2)
            assert acknowledged == set(range(30)), fleet.logs()

            async def applied() -> int:
                return await count(probe, "SELECT count(*) FROM inbox WHERE state = 'done'")

            deadline = asyncio.get_running_loop().time() + TIMEOUT
            while await applied() < len(acknowledged):
                assert asyncio.get_running_loop().time() < deadline, fleet.logs()
                await asyncio.sleep(0.5)
            await fleet.until(
                lambda: sends(sandbox) >= seeded.total - 50, TIMEOUT, "sending resumed"
            )
            while (await outbox_states(probe)).get("scheduled"):
                assert asyncio.get_running_loop().time() < deadline, fleet.logs()
                await asyncio.sleep(0.5)
        await asyncio.sleep(2.5)
        recovery = await fleet.start("dispatch", "--once", "--lease", "2", "--json")
        assert await recovery.process.wait() == 0, recovery.output()
    finally:
        await fleet.stop()
        await proxy.close()

    customers = await count(
        probe, "SELECT count(*) FROM customers WHERE first_name LIKE 'Person %'"
    )
    assert customers == 30, "every acknowledged delivery was applied"
    states = await outbox_states(probe)
    assert set(states) <= {"sent", "unknown"} and sum(states.values()) == seeded.total, states
    got = received(sandbox, seeded)
    assert max(got.values()) == 1
    assert sum(got.values()) >= states["sent"]


async def _webhook_secret(probe: AsyncEngine, shop_id: int) -> str:
    async with probe.connect() as conn:
        row = await conn.execute(
            text("SELECT webhook_secret FROM shops WHERE id = :id"), {"id": shop_id}
        )
        return str(row.scalar())

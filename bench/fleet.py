"""Benchmark (#12): many bots at once through the Courier's lanes, against a 50 ms sandbox.

The sandbox runs in its own process and answers every Bot API call 50 ms after it arrived (as
Telegram does, roughly); it counts every send request that arrives, per bot and per rolling
second. Each sender runs in a fresh process of its own (its peak RSS is its own). Figures:

1. fleet: 50 shops, each with its own bot limited to 25 msg/s and 400 messages due; the ideal is
   16 s (1,250 msg/s). Targets: done within 5 % of 16 s, >= 1,190 msg/s in aggregate, and no
   second at the receiver over any bot's 25.
2. one fast bot allowed 1,000 msg/s sends 20,000 (the sandbox's own flood control off for it).
   Target: >= 900 msg/s.
3. the full path against a bare aiogram loop with the same number in flight (64), same run,
   limiter out of the way. Target: >= 0.8 of the bare loop.
4. claim + prepare time per batch (50 rows of one of 10 shops: claim, suppression, render,
   early writes) with a 5,000-row and a 500,000-row outbox (each customer: 4 old sends in the
   history, 1 row due).
   Target: the large one within 1.5x of the small one.
5. peak RSS of each sender; the bare aiogram process is the yardstick (target <= 1.3x).

    .venv/bin/python bench/fleet.py [--backends sqlite,postgresql] [--large 500000]
        [--count 20000] [--only fleet,fast,pair,claims] [--summary PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import dispatch  # noqa: E402
from dispatch import pg_admin, rss_mb, timed  # noqa: E402

LATENCY = 0.05
FLEET_BOTS, FLEET_EACH, FLEET_RATE = 50, 400, 25.0
FAST_TOKEN, FAST_COUNT, FAST_RATE = "700100:BENCH-fast-bot", 20_000, 1000.0
PAIR_TOKEN, PAIR_COUNT, PAIR_IN_FLIGHT = "700200:BENCH-pair-bot", 20_000, 64
FLEET_CHAT, FAST_CHAT, PAIR_CHAT = 20_000_000, 30_000_000, 40_000_000
TEXT = "Spring sale: 20% off everything"
CLAIM_SHOPS = 10


def fleet_token(n: int) -> str:
    """Return the token of the n-th fleet bot."""
    return f"{600_000 + n}:BENCH-fleet-{n}"


# --------------------------------------------------------------------------- the sandbox


def serve_sandbox(port_out: Any, stop: Any) -> None:
    """Run the 50 ms sandbox: fleet bots with Telegram's limits, the fast bots without."""
    from bot.sandbox import Limits, Sandbox

    async def serve() -> None:
        sandbox = Sandbox(latency=LATENCY)
        for n in range(FLEET_BOTS):
            sandbox.add_bot(fleet_token(n))
            for k in range(FLEET_EACH):
                sandbox.customer(fleet_token(n), FLEET_CHAT + n * 1000 + k, "Customer")
        for token, first, count in (
            (FAST_TOKEN, FAST_CHAT, FAST_COUNT),
            (PAIR_TOKEN, PAIR_CHAT, PAIR_COUNT),
        ):
            sandbox.add_bot(token)
            sandbox.set_limits(Limits.off(), token)
            for k in range(count):
                sandbox.customer(token, first + k, "Customer")
        port_out.send(await sandbox.start("127.0.0.1", 0))
        await asyncio.to_thread(stop.wait)
        await sandbox.stop()

    asyncio.run(serve())


async def sandbox_stats(base_url: str, tokens: list[str], reset: bool = False) -> list[dict]:
    """Read (and optionally zero) the sandbox's counters of these bots."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        found = []
        for token in tokens:
            url = f"{base_url}/_sandbox/bots/{token}/stats"
            async with http.get(url) as response:
                found.append((await response.json())["result"])
            if reset:
                async with http.delete(url) as response:
                    await response.read()
        return found


# ----------------------------------------------------------------------------- databases


async def fresh_database(backend: str, pg_url: str) -> tuple[str, str | None]:
    """Create an empty database; return its URL and the PostgreSQL name to drop later."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='nudge-fleet-')}/bench.db", None
    from sqlalchemy.engine import make_url

    name = f"nudge_fleet_{uuid.uuid4().hex[:8]}"
    await pg_admin(pg_url, f'CREATE DATABASE "{name}"')
    return make_url(pg_url).set(database=name).render_as_string(False), name


async def populate(
    url: str,
    shops: list[tuple[str, int, int]],
    *,
    history: int = 0,
    due_per_customer: int = 1,
) -> None:
    """Build the schema; per (token, first chat, customers): a shop, its customers, due rows.

    `history` old sent promos per customer (two days ago: outside the frequency window, but in
    the send history every frequency-cap look-up walks).
    """
    from sqlalchemy import insert, select, text
    from sqlmodel import SQLModel

    from bot.db import create_engine, session_factory, transaction
    from bot.models import Customer, Outbox
    from bot.store.outbox import _row_values
    from bot.store.shops import create_shop

    now = datetime.now(UTC)
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
    sessions = session_factory(engine)
    for n, (token, first_chat, count) in enumerate(shops):
        async with transaction(sessions) as session:
            shop = await create_shop(
                session=session,
                name=f"Shop {n}",
                platform="generic",
                bot_token=token,
                default_locale="uk",
                settings={"quiet_hours_start": "00:00", "quiet_hours_end": "00:00"},
                now=now,
            )
            shop_id = shop.id
        for start in range(0, count, 5000):
            people = [
                {
                    "shop_id": shop_id,
                    "first_name": "Customer",
                    "telegram_chat_id": first_chat + k,
                    "consent": "opted_in",
                    "locale": ("uk", "ru", "pl", "en")[k % 4],
                    "attributes": {},
                    "needs_follow_up": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for k in range(start, min(count, start + 5000))
            ]
            async with transaction(sessions) as session:
                await session.execute(insert(Customer), people)
        async with sessions() as session:
            ids = list(
                await session.scalars(
                    select(Customer.id).where(Customer.shop_id == shop_id).order_by(Customer.id)
                )
            )
        rows: list[dict[str, Any]] = []
        for round_ in range(history + due_per_customer):
            old = round_ < history
            for customer_id in ids:
                row = _row_values(
                    shop_id=shop_id,
                    customer_id=customer_id,
                    kind="text",
                    dedupe_key=f"c{round_}:{customer_id}",
                    due_at=now - (timedelta(days=2) if old else timedelta(seconds=1)),
                    lane="promo",
                    topic=f"campaign:{round_}",
                    payload={"text": TEXT},
                    now=now,
                )
                if old:
                    moment = now - timedelta(days=2)
                    row.update(state="sent", sent_at=moment, claimed_at=moment, attempts=1)
                else:
                    row.update(sent_at=None, claimed_at=None)
                rows.append(row)
                if len(rows) >= 5000:
                    async with transaction(sessions) as session:
                        await session.execute(insert(Outbox.__table__), rows)
                    rows = []
        if rows:
            async with transaction(sessions) as session:
                await session.execute(insert(Outbox.__table__), rows)
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE"))
        await conn.commit()
    await engine.dispose()


# --------------------------------------------------------------------------------- senders


def settings_for(url: str, base_url: str, **dispatch: Any) -> Any:
    """Return service settings for a sender."""
    from pydantic import SecretStr

    from bot.config import DispatchSettings, Settings

    return Settings(
        database_url=url,
        secret_key=SecretStr("bench-secret-key-0123456789"),
        telegram_api_base=base_url,  # type: ignore[arg-type]
        dispatch=DispatchSettings(**dispatch),
    )


async def courier_run(url: str, base_url: str, options: dict[str, Any]) -> dict[str, Any]:
    """Drain the prepared database through the Courier's lanes; time it."""
    import gc

    from bot.clock import SystemClock
    from bot.db import create_engine, session_factory
    from bot.delivery.channels.telegram import TelegramChannel
    from bot.delivery.courier import Courier
    from bot.delivery.limiter import SlidingWindowLimiter
    from bot.telegram import BotPool

    gc.freeze()  # as `nudge serve` does: the import-time objects stay out of every collection
    settings = settings_for(
        url,
        base_url,
        per_chat_per_second=1.0,
        batch_size=options["batch"],
        max_in_flight=options["in_flight"],
    )
    dispatch = settings.dispatch
    engine = create_engine(url)
    bots = BotPool(base_url, connections=dispatch.max_in_flight + 128)
    limiter = SlidingWindowLimiter(options["rate"], dispatch.per_chat_per_second)
    channel = TelegramChannel(
        bots,
        limiter,
        max_in_flight=dispatch.max_in_flight,
        request_timeout=dispatch.request_timeout,
    )
    courier = Courier(
        sessions=session_factory(engine),
        channel=channel,
        clock=SystemClock(),
        settings=settings,
        rate=options["rate"],
    )
    peak_in_flight = 0

    async def drain() -> Any:
        nonlocal peak_in_flight
        work = asyncio.create_task(courier.drain())
        while not work.done():
            peak_in_flight = max(peak_in_flight, channel.in_flight)
            await asyncio.sleep(0.01)
        return work.result()

    try:
        counts, elapsed, peak = await timed(drain)
    finally:
        await bots.close()
        await engine.dispose()
    return {
        "sent": counts.sent,
        "counts": counts.as_dict(),
        "seconds": elapsed,
        "peak_mb": peak,
        "in_flight": peak_in_flight,
        "stall_margin": limiter.stall_margin,
    }


async def bare_loop(base_url: str, count: int, in_flight: int) -> dict[str, Any]:
    """Send with aiogram alone, `in_flight` at a time."""
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    session = AiohttpSession(api=TelegramAPIServer.from_base(base_url), limit=in_flight + 16)
    bot = Bot(PAIR_TOKEN, session=session)
    chats = iter(range(PAIR_CHAT, PAIR_CHAT + count))

    async def worker() -> int:
        sent = 0
        for chat in chats:
            await bot.send_message(chat_id=chat, text=TEXT)
            sent += 1
        return sent

    async def run() -> int:
        return sum(await asyncio.gather(*(worker() for _ in range(in_flight))))

    try:
        sent, elapsed, peak = await timed(run)
    finally:
        await session.close()
    return {"sent": sent, "seconds": elapsed, "peak_mb": peak}


async def claim_timing(url: str, batches: int) -> dict[str, Any]:
    """Time claim + prepare of one shop's 50-row batch, round robin over the shops."""
    from sqlalchemy import select

    from bot.clock import SystemClock
    from bot.db import create_engine, session_factory
    from bot.delivery.courier import Courier
    from bot.models import Shop

    class Unused:
        name = "unused"
        limiter = None

        async def send(self, **_: Any) -> Any:
            raise AssertionError("nothing is sent here")

        async def close(self) -> None:
            return None

    engine = create_engine(url)
    sessions = session_factory(engine)
    courier = Courier(
        sessions=sessions,
        channel=Unused(),  # type: ignore[arg-type]
        clock=SystemClock(),
        settings=settings_for(url, "http://127.0.0.1:9"),
        rate=25,
    )
    async with sessions() as session:
        shops = list(await session.scalars(select(Shop.id).order_by(Shop.id)))
    seconds = []
    try:
        for n in range(batches + 3):
            started = time.perf_counter()
            batch = await courier._take(shops[n % len(shops)], 50)
            if n >= 3:  # the first ones warm the caches
                seconds.append(time.perf_counter() - started)
            assert len(batch.rows) == 50, len(batch.rows)
    finally:
        await engine.dispose()
    return {"median_ms": statistics.median(seconds) * 1000, "max_ms": max(seconds) * 1000}


def in_child(phase: str, out: Any, *args: Any) -> None:
    """Run one phase in this (fresh) process and send back its figures."""
    rss_at_start = rss_mb()
    work = {"bare": bare_loop, "courier": courier_run, "claims": claim_timing}[phase]
    if phase == "courier" and os.environ.get("FLEET_PROFILE"):
        import cProfile
        import pstats

        profile = cProfile.Profile()
        result = profile.runcall(asyncio.run, work(*args))
        pstats.Stats(profile).sort_stats("cumulative").print_stats(45)
    else:
        result = asyncio.run(work(*args))
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["rss_at_start_mb"] = rss_at_start
    out.send(result)


def run_child(phase: str, *args: Any) -> dict[str, Any]:
    """Run a phase of this benchmark in a spawned process (bench/dispatch.py's spawner)."""
    return dispatch.run_child(phase, *args, target=in_child)


# ----------------------------------------------------------------------------- scenarios


class Report:
    """Figures beside their targets (and as summary rows for bench/run_all.py)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, str, bool | None]] = []
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        what: str,
        value: float,
        unit: str,
        target: str = "-",
        met: bool | None = None,
        digits: int = 0,
    ) -> None:
        """Record one figure and print it at once."""
        suffix = {"": "", "msg/s": "", "x": "x"}.get(unit, f" {unit}")
        figure = f"{value:,.{digits}f}{suffix}"
        self.lines.append((what, figure, target, met))
        self.rows.append(
            {
                "benchmark": "fleet",
                "figure": what,
                "value": round(value, digits),
                "unit": unit,
                "target": target,
                "met": met,
            }
        )
        print(f"  {what:<46}{figure:>16}   target {target:<14}{_verdict(met)}", flush=True)

    def show(self) -> None:
        """Print every figure again, as a table."""
        print("\n| figure | measured | target | |\n|---|---|---|---|")
        for what, figure, target, met in self.lines:
            print(f"| {what} | {figure} | {target} | {_verdict(met)} |")


def _verdict(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "MISSED")


async def fleet(backend: str, args: argparse.Namespace, base_url: str, report: Report) -> float:
    tokens = [fleet_token(n) for n in range(FLEET_BOTS)]
    url, pg_name = await fresh_database(backend, args.pg_url)
    try:
        await populate(
            url, [(fleet_token(n), FLEET_CHAT + n * 1000, FLEET_EACH) for n in range(FLEET_BOTS)]
        )
        await sandbox_stats(base_url, tokens, reset=True)
        options = {"rate": FLEET_RATE, "batch": 200, "in_flight": 256}
        result = await asyncio.to_thread(run_child, "courier", url, base_url, options)
    finally:
        if pg_name:
            await pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    stats = await sandbox_stats(base_url, tokens, reset=True)
    total = FLEET_BOTS * FLEET_EACH
    seconds = result["seconds"]
    worst = max(s["max_arrivals_in_1s"] for s in stats)
    refused = sum(s["errors"].get("429", 0) for s in stats)
    name = f"fleet {FLEET_BOTS}x{FLEET_EACH} @25/s, {backend}"
    report.add(f"{name}: seconds", seconds, "s", "<= 16.8 s", seconds <= 16.8, digits=2)
    report.add(f"{name}: msg/s", total / seconds, "msg/s", ">= 1,190", total / seconds >= 1190)
    report.add(f"{name}: sent", result["sent"], "", f"{total:,}", result["sent"] == total)
    report.add(
        f"{name}: worst bot, sends in 1 s at receiver", worst, "", "<= 25", worst <= FLEET_RATE
    )
    report.add(f"{name}: 429 answers", refused, "", "0", refused == 0)
    report.add(f"{name}: peak RSS", result["max_rss_mb"], "MB")
    print(
        f"    (peak in flight {result['in_flight']}, stall margin at the end "
        f"{result['stall_margin'] * 1000:.0f} ms)"
    )
    return result["max_rss_mb"]


async def fast(backend: str, args: argparse.Namespace, base_url: str, report: Report) -> None:
    url, pg_name = await fresh_database(backend, args.pg_url)
    try:
        await populate(url, [(FAST_TOKEN, FAST_CHAT, args.count)])
        await sandbox_stats(base_url, [FAST_TOKEN], reset=True)
        options = {"rate": FAST_RATE, "batch": 2000, "in_flight": 256}
        result = await asyncio.to_thread(run_child, "courier", url, base_url, options)
    finally:
        if pg_name:
            await pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    [stats] = await sandbox_stats(base_url, [FAST_TOKEN], reset=True)
    rate = result["sent"] / result["seconds"]
    name = f"one bot @1,000/s x {args.count:,}, {backend}"
    report.add(f"{name}: msg/s", rate, "msg/s", ">= 900", rate >= 900)
    worst = stats["max_arrivals_in_1s"]
    report.add(f"{name}: sends in 1 s at receiver", worst, "", "<= 1,000", worst <= FAST_RATE)


async def pair(
    backend: str, args: argparse.Namespace, base_url: str, report: Report, bare: float
) -> float:
    url, pg_name = await fresh_database(backend, args.pg_url)
    try:
        await populate(url, [(PAIR_TOKEN, PAIR_CHAT, args.count)])
        options = {"rate": 100_000.0, "batch": 2000, "in_flight": PAIR_IN_FLIGHT}
        result = await asyncio.to_thread(run_child, "courier", url, base_url, options)
    finally:
        if pg_name:
            await pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    rate = result["sent"] / result["seconds"]
    name = f"full path, {PAIR_IN_FLIGHT} in flight, {backend}"
    report.add(f"{name}: msg/s", rate, "msg/s")
    report.add(f"{name}: vs bare aiogram", rate / bare, "x", ">= 0.8", rate / bare >= 0.8, 2)
    return result["max_rss_mb"]


async def claims(backend: str, args: argparse.Namespace, report: Report) -> None:
    medians = {}
    for rows in (args.small, args.large):
        per_shop = rows // 5 // CLAIM_SHOPS  # 4 old sends and 1 due row per customer
        url, pg_name = await fresh_database(backend, args.pg_url)
        try:
            started = time.perf_counter()
            await populate(
                url,
                [
                    (fleet_token(n), FLEET_CHAT + n * per_shop, per_shop)
                    for n in range(CLAIM_SHOPS)
                ],
                history=4,
                due_per_customer=1,
            )
            filled = time.perf_counter() - started
            result = await asyncio.to_thread(run_child, "claims", url, args.batches)
        finally:
            if pg_name:
                await pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        medians[rows] = result["median_ms"]
        report.add(
            f"claim+prepare of 50, {rows:,}-row outbox, {backend}",
            result["median_ms"],
            "ms",
            digits=1,
        )
        print(f"    (filled in {filled:.0f} s; slowest batch {result['max_ms']:.1f} ms)")
    ratio = medians[args.large] / medians[args.small]
    report.add(
        f"claim+prepare {args.large:,} vs {args.small:,}, {backend}",
        ratio,
        "x",
        "<= 1.5x",
        ratio <= 1.5,
        digits=2,
    )


async def bench(args: argparse.Namespace) -> None:
    context = multiprocessing.get_context("spawn")
    port_in, port_out = context.Pipe(duplex=False)
    stop = context.Event()
    server = context.Process(target=serve_sandbox, args=(port_out, stop))
    server.start()
    base_url = port_in.recv()
    report = Report()
    print(
        f"sandbox at {base_url}, {LATENCY * 1000:.0f} ms latency; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    try:
        bare = await asyncio.to_thread(run_child, "bare", base_url, args.count, PAIR_IN_FLIGHT)
        await sandbox_stats(base_url, [PAIR_TOKEN], reset=True)
        bare_rate = bare["sent"] / bare["seconds"]
        report.add(f"bare aiogram, {PAIR_IN_FLIGHT} in flight: msg/s", bare_rate, "msg/s")
        report.add("bare aiogram: peak RSS", bare["max_rss_mb"], "MB")
        for backend in args.backends.split(","):
            if "fleet" in args.only:
                rss = await fleet(backend, args, base_url, report)
                ratio = rss / bare["max_rss_mb"]
                report.add(
                    f"fleet RSS vs bare aiogram, {backend}",
                    ratio,
                    "x",
                    "<= 1.3x",
                    ratio <= 1.3,
                    digits=2,
                )
            if "fast" in args.only:
                await fast(backend, args, base_url, report)
            if "pair" in args.only:
                await pair(backend, args, base_url, report, bare_rate)
            if "claims" in args.only:
                await claims(backend, args, report)
    finally:
        stop.set()
        server.join(timeout=30)
    print(f"\nload average now {os.getloadavg()[0]:.1f}")
    report.show()
    if args.summary:
        rows = json.dumps(report.rows, indent=1)
        await asyncio.to_thread(Path(args.summary).write_text, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--only", default="fleet,fast,pair,claims")
    parser.add_argument("--small", type=int, default=5_000, help="outbox rows, small")
    parser.add_argument("--large", type=int, default=500_000, help="outbox rows, large")
    parser.add_argument("--batches", type=int, default=15, help="claims timed per size")
    parser.add_argument(
        "--count", type=int, default=FAST_COUNT, help="sent by the fast bot and the pair, each"
    )
    parser.add_argument("--summary", help="write the figures as JSON to this file")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "NUDGE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()

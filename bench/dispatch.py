"""Benchmark: outbox messages per second through the Courier's full path, vs bare aiogram.

The sandbox runs in its own process with flood control off and every recipient's chat open.
This process schedules N promo rows (one per customer) in a fresh database, then times
`Courier.drain()`: claim, suppression (consent, exclusions, frequency cap, quiet hours),
render in the customer's locale, send through the rate limiter and aiogram, record outcomes.
In the same run it times a bare aiogram `send_message` loop to the same chats, one at a time
and with the Courier's concurrency, for comparison. Peak RSS of this process is sampled
during each timed phase.

    .venv/bin/python bench/dispatch.py [--recipients 20000] [--backends sqlite,postgresql]
        [--summary PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "424242:BENCH-dispatch-token"
FIRST_CHAT = 10_000_000
PAGE = os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- the sandbox


def serve_sandbox(recipients: int, port_out: Any, stop: Any) -> None:
    """Run the sandbox (limits off, every chat open) until `stop` is set."""
    from bot.sandbox import Limits, Sandbox

    async def serve() -> None:
        sandbox = Sandbox(limits=Limits.off())
        sandbox.add_bot(TOKEN, username="bench_bot")
        for n in range(recipients):
            sandbox.customer(TOKEN, FIRST_CHAT + n, "Customer")
        port_out.send(await sandbox.start("127.0.0.1", 0))
        await asyncio.to_thread(stop.wait)
        await sandbox.stop()

    asyncio.run(serve())


# --------------------------------------------------------------------------------- memory


def rss_mb() -> float:
    """Return this process's resident set size now, in MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


async def timed(work: Callable[[], Awaitable[Any]]) -> tuple[Any, float, float]:
    """Run `work`, returning its result, the seconds it took and the peak RSS seen meanwhile."""
    peak = rss_mb()
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb())
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    started = time.perf_counter()
    try:
        result = await work()
    finally:
        elapsed = time.perf_counter() - started
        done.set()
        await sampler
    return result, elapsed, max(peak, rss_mb())


# ------------------------------------------------------------------------------ baseline


async def bare_loop(base_url: str, recipients: int, concurrency: int) -> dict[str, Any]:
    """Send with aiogram alone: `concurrency` sends at a time (1 = a plain loop)."""
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    session = AiohttpSession(api=TelegramAPIServer.from_base(base_url))
    bot = Bot(TOKEN, session=session)
    chats = iter(range(FIRST_CHAT, FIRST_CHAT + recipients))

    async def worker() -> int:
        sent = 0
        for chat in chats:
            await bot.send_message(chat_id=chat, text="Spring sale: 20% off everything")
            sent += 1
        return sent

    async def run() -> int:
        return sum(await asyncio.gather(*(worker() for _ in range(concurrency))))

    try:
        sent, elapsed, peak = await timed(run)
    finally:
        await session.close()
    return {"sent": sent, "seconds": elapsed, "peak_mb": peak}


def in_child(phase: str, out: Any, *args: Any) -> None:
    """Run one timed phase in this (fresh) process and send back its figures."""
    rss_at_start = rss_mb()
    if phase == "bare":
        result = asyncio.run(bare_loop(*args))
    else:
        result = asyncio.run(courier_run(*args))
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["rss_at_start_mb"] = rss_at_start
    out.send(result)


def run_child(phase: str, *args: Any, target: Any = None) -> dict[str, Any]:
    """Run a phase in a spawned process, so each one's memory is measured on its own
    (`target`: the module-level function that runs it there, `in_child` by default)."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=target or in_child, args=(phase, send, *args))
    child.start()
    result = receive.recv()
    child.join()
    return result


# ------------------------------------------------------------------------------- courier


async def pg_admin(url: str, statement: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def prepare(database_url: str, recipients: int, now: datetime) -> None:
    """Build the schema, one shop and its consenting customers, and one promo row for each."""
    from sqlalchemy import insert, text
    from sqlmodel import SQLModel

    from bot.db import create_engine, session_factory, transaction
    from bot.models import Customer, Lane
    from bot.store.outbox import schedule_many
    from bot.store.shops import create_shop

    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
    sessions = session_factory(engine)
    async with transaction(sessions) as session:
        shop = await create_shop(
            session=session,
            name="Bench",
            platform="generic",
            bot_token=TOKEN,
            default_locale="uk",
            timezone="UTC",
            # the benchmark runs at any hour: no quiet hours
            settings={"quiet_hours_start": "00:00", "quiet_hours_end": "00:00"},
            now=now,
        )
        shop_id = shop.id
    people = [
        {
            "shop_id": shop_id,
            "first_name": "Customer",
            "telegram_chat_id": FIRST_CHAT + n,
            "consent": "opted_in",
            "locale": ("uk", "ru", "pl", "en")[n % 4],
            "attributes": {},
            "needs_follow_up": False,
            "created_at": now,
            "updated_at": now,
        }
        for n in range(recipients)
    ]
    async with transaction(sessions) as session:
        for start in range(0, recipients, 2000):
            await session.execute(insert(Customer), people[start : start + 2000])
    del people
    async with transaction(sessions) as session:
        ids = await session.execute(Customer.__table__.select().with_only_columns(Customer.id))
        customer_ids = [row[0] for row in ids]
        await schedule_many(
            session=session,
            rows=(
                {
                    "shop_id": shop_id,
                    "customer_id": customer_id,
                    "kind": "text",
                    "dedupe_key": f"campaign:1:{customer_id}",
                    "due_at": now - timedelta(seconds=1),
                    "lane": Lane.PROMO,
                    "topic": "campaign:1",
                    "payload": {"text": "Spring sale: 20% off everything"},
                }
                for customer_id in customer_ids
            ),
        )
    if engine.dialect.name == "postgresql":
        # A live database has planner statistics (autovacuum); a freshly filled one has none.
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE"))
    await engine.dispose()


async def courier_run(database_url: str, base_url: str, options: dict[str, Any]) -> dict[str, Any]:
    """Time the Courier draining a prepared database."""
    from pydantic import SecretStr

    from bot.clock import SystemClock
    from bot.config import Settings
    from bot.db import create_engine, session_factory
    from bot.delivery.channels.telegram import TelegramChannel
    from bot.delivery.courier import Courier
    from bot.delivery.limiter import SlidingWindowLimiter
    from bot.telegram import BotPool

    clock = SystemClock()
    settings = Settings(
        database_url=database_url,
        secret_key=SecretStr("bench-secret-key-0123456789"),
        telegram_api_base=base_url,  # type: ignore[arg-type]
    )
    engine = create_engine(database_url)
    bots = BotPool(base_url)
    # Limits off at the sandbox; the limiter still runs, with a rate nothing here reaches.
    limiter = SlidingWindowLimiter(options["rate"], per_chat=1.0)
    courier = Courier(
        sessions=session_factory(engine),
        # the cap on requests in flight is the channel's since #12 (the Courier's lanes)
        channel=TelegramChannel(bots, limiter, max_in_flight=options["concurrency"]),
        clock=clock,
        settings=settings,
        batch_size=options["batch"],
        concurrency=options["concurrency"],
    )
    try:
        counts, elapsed, peak = await timed(courier.drain)
    finally:
        await bots.close()
        await engine.dispose()
    return {"sent": counts.sent, "counts": counts.as_dict(), "seconds": elapsed, "peak_mb": peak}


async def bench(args: argparse.Namespace) -> None:
    context = multiprocessing.get_context("spawn")
    port_in, port_out = context.Pipe(duplex=False)
    stop = context.Event()
    server = context.Process(target=serve_sandbox, args=(args.recipients, port_out, stop))
    server.start()
    base_url = port_in.recv()
    options = {"rate": args.rate, "batch": args.batch, "concurrency": args.concurrency}
    rows: list[tuple[str, dict[str, Any]]] = []
    try:
        for concurrency in (1, args.concurrency):
            result = run_child("bare", base_url, args.recipients, concurrency)
            rows.append((f"bare aiogram, {concurrency} at a time", result))
        for backend in args.backends.split(","):
            tmp = tempfile.mkdtemp(prefix="nudge-bench-")
            name = f"nudge_bench_{uuid.uuid4().hex[:8]}"
            if backend == "sqlite":
                url = f"sqlite+aiosqlite:///{tmp}/bench.db"
            else:
                from sqlalchemy.engine import make_url

                await pg_admin(args.pg_url, f'CREATE DATABASE "{name}"')
                url = make_url(args.pg_url).set(database=name).render_as_string(False)
            try:
                await prepare(url, args.recipients, datetime.now(UTC))
                result = await asyncio.to_thread(run_child, "courier", url, base_url, options)
            finally:
                if backend != "sqlite":
                    await pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if result["sent"] != args.recipients:
                print(f"warning: {backend}: {result['counts']}", file=sys.stderr)
            rows.append((f"courier ({backend})", result))
    finally:
        stop.set()
        server.join(timeout=30)
    report(rows, args)
    if args.summary:
        found = json.dumps(summary(rows, args), indent=1)
        await asyncio.to_thread(Path(args.summary).write_text, found)


def report(rows: list[tuple[str, dict[str, Any]]], args: argparse.Namespace) -> None:
    loop = rows[0][1]
    loop_rate = loop["sent"] / loop["seconds"]
    print(
        f"\n{args.recipients} recipients, batch {args.batch}, concurrency {args.concurrency}, "
        f"{os.cpu_count()} CPUs; each sender in its own process"
    )
    print(
        f"{'sender':<30}{'sent':>7}{'seconds':>9}{'msg/s':>8}{'vs loop':>9}"
        f"{'RSS idle':>10}{'RSS peak':>10}"
    )
    for name, r in rows:
        rate = r["sent"] / r["seconds"]
        print(
            f"{name:<30}{r['sent']:>7}{r['seconds']:>9.2f}{rate:>8.0f}{rate / loop_rate:>9.2f}"
            f"{r['rss_at_start_mb']:>9.0f}M{r['max_rss_mb']:>9.0f}M"
        )


def summary(rows: list[tuple[str, dict[str, Any]]], args: argparse.Namespace) -> list[dict]:
    """Return the figures as summary rows (bench/run_all.py); the targets are the Courier's."""

    def row(figure: str, value: float, unit: str, target: str = "-", met: bool | None = None):
        fields = {"figure": figure, "value": round(value, 2), "unit": unit, "target": target}
        return {"benchmark": "dispatch", **fields, "met": met}

    loop_rate = rows[0][1]["sent"] / rows[0][1]["seconds"]
    found = []
    for name, r in rows:
        rate, rss = r["sent"] / r["seconds"], r["max_rss_mb"]
        ratio = rate / loop_rate
        head = f"{name}, {args.recipients:,} recipients"
        if not name.startswith("courier"):
            found.append(row(f"{head}: msg/s", rate, "msg/s"))
            continue
        found += [
            row(f"{head}: msg/s", rate, "msg/s", ">= 1000", rate >= 1000),
            row(f"{name}: vs the bare loop", ratio, "x", ">= 0.6", ratio >= 0.6),
            row(f"{name}: peak RSS", rss, "MB", "< 200", rss < 200),
        ]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=100_000, help="limiter rate per bot")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "NUDGE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--summary", help="write the figures as JSON to this file")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()

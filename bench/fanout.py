"""Benchmark: fanning a 100,000-recipient campaign out into the outbox, then sending it.

Generates one shop with N linked, opted-in customers (SQL only) in a fresh database, creates a
campaign with two variants, a 10% holdout and a local-time schedule (so every recipient's due
time is computed from their zone), and times `start` + `fan_out` (what `nudge campaign send`
runs) with the process's peak RSS. Targets (issue #14): at most 10 s on PostgreSQL and 20 s on
SQLite, peak RSS under 300 MB.

With `--send`, the campaign (scheduled "now" instead) is then sent through the Telegram sandbox
answering after `--latency` (50 ms by default) by the real Courier, with the bot limited to
`--rate` messages a second; the target is completion within 5% of the ideal (recipients / rate).

    .venv/bin/python bench/fanout.py [--customers 100000] [--backends postgresql,sqlite]
        [--send] [--rate 1000] [--latency 0.05] [--pg-url URL] [--summary PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TARGETS = {"postgresql": 10.0, "sqlite": 20.0}
TOKEN = "7100000001:AAbenchfanoutbottoken000000000000"
CAMPAIGN = {
    "name": "Bench",
    "segment": {"field": "consent", "op": "=", "value": "opted_in"},
    "topic": "bench",
    "holdout_percent": 10,
    "variants": [
        {"name": "A", "weight": 1, "messages": {"uk": {"text": "{first_name}, весна!"}}},
        {"name": "B", "weight": 1, "messages": {"uk": {"text": "Весняні знижки, {first_name}"}}},
    ],
}

PG_FILL = """INSERT INTO customers (id, shop_id, external_id, first_name, locale, timezone,
        attributes, telegram_chat_id, consent, linked_at, needs_follow_up, created_at, updated_at)
    SELECT g, 1, 'c' || g, 'Customer', (ARRAY['uk','ru','pl','en'])[1 + g % 4],
           (ARRAY['Europe/Kyiv','Europe/Warsaw','America/New_York', NULL])[1 + g % 4], '{}',
           1000000 + g, 'opted_in', :now, false, :now, :now
    FROM generate_series(1, :customers) AS g"""
SQLITE_FILL = """WITH RECURSIVE g(n) AS
        (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :customers)
    INSERT INTO customers (id, shop_id, external_id, first_name, locale, timezone, attributes,
        telegram_chat_id, consent, linked_at, needs_follow_up, created_at, updated_at)
    SELECT n, 1, 'c' || n, 'Customer',
           CASE n % 4 WHEN 0 THEN 'uk' WHEN 1 THEN 'ru' WHEN 2 THEN 'pl' ELSE 'en' END,
           CASE n % 4 WHEN 0 THEN 'Europe/Kyiv' WHEN 1 THEN 'Europe/Warsaw'
                      WHEN 2 THEN 'America/New_York' ELSE NULL END,
           '{}', 1000000 + n, 'opted_in', :now, 0, :now, :now
    FROM g"""


def peak_rss_mb() -> float:
    """Return this process's peak resident set size so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def prepare(url: str, customers: int) -> None:
    """Migrate a fresh database and fill it with one shop and its customers."""
    from sqlalchemy import text

    from bot.db import create_engine, session_factory, transaction
    from bot.migrate import upgrade_engine
    from bot.store.shops import create_shop

    engine = create_engine(url)
    await upgrade_engine(engine)
    async with transaction(session_factory(engine)) as session:
        await create_shop(
            session=session,
            name="Bench",
            platform="generic",
            now=NOW,
            bot_token=TOKEN,
            bot_username="bench_bot",
            default_locale="uk",
            timezone="Europe/Kyiv",
            settings={
                "frequency_cap": 100,
                "quiet_hours_start": "00:00",
                "quiet_hours_end": "00:00",
            },
        )
    postgres = engine.dialect.name == "postgresql"
    async with engine.begin() as conn:
        now = NOW if postgres else NOW.replace(tzinfo=None).isoformat(sep=" ")
        await conn.execute(
            text(PG_FILL if postgres else SQLITE_FILL), {"now": now, "customers": customers}
        )
    async with engine.connect() as conn:
        if postgres:
            await conn.execute(text("COMMIT"))
        await conn.execute(text("ANALYZE"))
        if not postgres:
            await conn.commit()
    await engine.dispose()


async def fan(url: str, raw: dict) -> dict[str, float]:
    """Create the campaign, start it and fan it out; return the figures."""
    from bot.db import create_engine, session_factory, transaction
    from bot.models import Shop
    from bot.store import campaigns as store

    engine = create_engine(url)
    sessions = session_factory(engine)
    async with transaction(sessions) as session:
        campaign = await store.create_campaign(session=session, shop_id=1, raw=raw, now=NOW)
    started = time.perf_counter()
    async with transaction(sessions) as session:
        shop = await session.get(Shop, 1)
        found = await store.get_campaign(session=session, shop_id=1, campaign_id=campaign.id)
        await store.start(session=session, shop=shop, campaign=found, now=NOW)
    done = await store.fan_out(
        sessions=sessions, shop_id=1, campaign_id=campaign.id, now=lambda: NOW
    )
    seconds = time.perf_counter() - started
    await engine.dispose()
    return {
        "fan_out_s": seconds,
        "recipients": done.recipients,
        "scheduled": done.scheduled,
        "holdout": done.holdout,
        "campaign_id": campaign.id,
    }


def serve_sandbox(port_out: Any, count: int, latency: float) -> None:
    """Run the sandbox in its own process: the bench bot and its customers, limits off (the
    sender's limiter is what is measured; the sandbox counts arrivals per second)."""
    from bot.sandbox import Limits, Sandbox

    async def serve() -> None:
        sandbox = Sandbox(latency=latency)
        sandbox.add_bot(TOKEN, username="bench_bot", first_name="Bench")
        sandbox.set_limits(Limits.off(), TOKEN)
        for n in range(1, count + 1):
            sandbox.customer(TOKEN, 1_000_000 + n, "Customer")
        port_out.send(await sandbox.start("127.0.0.1", 0))
        await asyncio.Event().wait()

    asyncio.run(serve())


async def send(url: str, rate: float, latency: float, customers: int) -> dict[str, float]:
    """Send every due row through the real Courier (a fresh process, as bench/fleet.py does)
    to a sandbox in another process answering after `latency`, the bot limited to `rate`."""
    import multiprocessing

    from fleet import run_child, sandbox_stats

    context = multiprocessing.get_context("spawn")
    receive, port = context.Pipe(duplex=False)
    server = context.Process(target=serve_sandbox, args=(port, customers, latency), daemon=True)
    server.start()
    try:
        base_url = receive.recv()
        options = {"rate": rate, "batch": 2000, "in_flight": 256}
        result = await asyncio.to_thread(run_child, "courier", url, base_url, options)
        [stats] = await sandbox_stats(base_url, [TOKEN])
    finally:
        server.kill()
    return {
        "send_s": result["seconds"],
        "sent": result["sent"],
        "ideal_s": result["sent"] / rate,
        "max_in_1s": stats["max_arrivals_in_1s"],
        "sender_rss_mb": result["max_rss_mb"],
    }


def report(backend: str, figures: dict[str, float]) -> list[dict]:
    """Print each figure beside its target; return them as summary rows (bench/run_all.py)."""
    target = TARGETS[backend]
    took = figures["fan_out_s"]
    print(f"\n{backend}:")
    print(
        f"  fan-out {int(figures['recipients']):,} recipients ({int(figures['scheduled']):,} "
        f"scheduled, {int(figures['holdout']):,} held out) in {took:.2f} s"
        f"  target <= {target:.0f} s: {'met' if took <= target else 'MISSED'}"
    )
    rss = figures["peak_rss_mb"]
    print(f"  peak RSS {rss:.0f} MB  target < 300 MB: {'met' if rss < 300 else 'MISSED'}")
    if "send_s" in figures:
        ratio = figures["send_s"] / figures["ideal_s"] if figures["ideal_s"] else 0
        print(
            f"  sent {int(figures['sent']):,} in {figures['send_s']:.1f} s (ideal "
            f"{figures['ideal_s']:.1f} s, {ratio:.3f}x)  target <= 1.05x: "
            f"{'met' if ratio <= 1.05 else 'MISSED'}; most in one second at the receiver "
            f"{int(figures['max_in_1s'])} (limit {figures['rate']:.0f}); sender peak RSS "
            f"{figures['sender_rss_mb']:.0f} MB"
        )
    return summary(backend, figures)


def summary(backend: str, figures: dict[str, float]) -> list[dict]:
    """Return the figures beside their targets as summary rows."""

    def row(figure: str, value: float, unit: str, target: str, met: bool) -> dict:
        fields = {"figure": figure, "value": round(value, 2), "unit": unit, "target": target}
        return {"benchmark": "fanout", **fields, "met": met}

    took, rss, target = figures["fan_out_s"], figures["peak_rss_mb"], TARGETS[backend]
    fanned = f"fan-out of {int(figures['recipients']):,} recipients, {backend}"
    found = [
        row(fanned, took, "s", f"<= {target:g}", took <= target),
        row(f"fan-out peak RSS, {backend}", rss, "MB", "< 300", rss < 300),
    ]
    if "send_s" in figures:
        rate, worst = figures["rate"], figures["max_in_1s"]
        ratio = figures["send_s"] / figures["ideal_s"]
        head = f"{int(figures['sent']):,} sent at {rate:g}/s, {backend}"
        found += [
            row(f"{head}: x ideal", ratio, "x", "<= 1.05", ratio <= 1.05),
            row(f"{head}: most in 1 s at the receiver", worst, "", f"<= {rate:g}", worst <= rate),
        ]
    return found


async def run(url: str, backend: str, args: argparse.Namespace) -> list[dict]:
    await prepare(url, args.customers)
    raw = dict(CAMPAIGN, schedule={"local_time": "10:00"})
    figures = await fan(url, raw if not args.send else CAMPAIGN)
    figures["peak_rss_mb"] = peak_rss_mb()
    if args.send:
        figures.update(await send(url, args.rate, args.latency, args.customers))
        figures["rate"] = args.rate
    return report(backend, figures)


async def main() -> None:
    """Run the benchmark on each backend asked for."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--send", action="store_true", help="also send it through the sandbox")
    parser.add_argument("--rate", type=float, default=1000.0, help="the bot's messages a second")
    parser.add_argument("--latency", type=float, default=0.05, help="the sandbox's answer delay")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "NUDGE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--summary", help="write the figures as JSON to this file")
    args = parser.parse_args()
    print(f"{args.customers:,} customers; load {os.getloadavg()}")
    rows = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                rows += await run(f"sqlite+aiosqlite:///{folder}/fanout.db", backend, args)
            continue
        import asyncpg
        from sqlalchemy.engine import make_url

        base = make_url(args.pg_url)
        name = f"nudge_bench_fanout_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(
            host=base.host, port=base.port, user=base.username, database=base.database
        )
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = base.set(database=name).render_as_string(hide_password=False)
            rows += await run(url, backend, args)
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.close()
    if args.summary:
        await asyncio.to_thread(Path(args.summary).write_text, json.dumps(rows, indent=1))


if __name__ == "__main__":
    asyncio.run(main())

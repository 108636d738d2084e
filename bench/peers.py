"""Benchmark (#12): Nudge beside its peers, in one run, against one 50 ms sandbox.

The sandbox is bench/fleet.py's (its own process, every call answered 50 ms after it arrived,
every send request counted per bot and rolling second). Each sender runs in a fresh process of
its own, one after another for the throughput runs:

1. limits off, messages a second, all to a bot the sandbox never refuses:
   bare aiogram `Bot.send_message` loops at 1, 64 and 200 in flight; python-telegram-bot with
   its `AIORateLimiter` (rates 0: off) and 64 sends in flight; aiogram-broadcaster (one
   mailer, its normal use, and the chats split over 64 mailers); Nudge's real path (outbox rows
   in SQLite, the Courier, 64 in flight, as `nudge dispatch` sends).
2. limits on: completion time of N recipients at 25 msg/s (ideal N / 25 s), each sender with
   its own bot under Telegram's flood control in the sandbox (30 a second per bot, one a second
   per chat): python-telegram-bot with `AIORateLimiter(overall_max_rate=25)`, aiogram-
   broadcaster with a 1/25 s interval between sends, Nudge with its limiter at 25/s. These three
   run at the same time (75 sends a second together leave the CPU idle). Checked at the
   receiver: the most sends that arrived in any one second (<= 25), 429 answers, deliveries.

N is 1,000 by default (ideal 40 s) so that `make bench` stays under 15 minutes; `--full` sends
the issue's 10,000 (ideal 400 s).

    .venv/bin/python bench/peers.py [--full] [--count 5000] [--paced 1000] [--summary PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import sys
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import dispatch  # noqa: E402
import fleet  # noqa: E402
from dispatch import timed  # noqa: E402
from fleet import PAIR_CHAT, PAIR_TOKEN, TEXT, fresh_database, populate, sandbox_stats  # noqa: E402

RATE = 25.0
# The paced senders' own bots and chats (registered through the sandbox's control API).
PACED = {
    "python-telegram-bot": ("700301:BENCH-paced-ptb", 51_000_000),
    "aiogram-broadcaster": ("700302:BENCH-paced-broadcaster", 52_000_000),
    "nudge": ("700303:BENCH-paced-nudge", 53_000_000),
}
MARGIN = 1.05  # the completion target: within 5% of the ideal (#14)
# The peers are benchmark-only dependencies: module -> what to install.
PEERS = {
    "telegram": "python-telegram-bot[rate-limiter]",
    "aiolimiter": "python-telegram-bot[rate-limiter]",
    "aiogram_broadcaster": "aiogram-broadcaster",
}


# ------------------------------------------------------------------------- the peers


async def ptb_send(
    base_url: str, token: str, first_chat: int, count: int, in_flight: int, rate: float
) -> dict[str, Any]:
    """Send with python-telegram-bot and its AIORateLimiter (`rate` 0: its limits off)."""
    from telegram.error import TelegramError
    from telegram.ext import AIORateLimiter, ExtBot
    from telegram.request import HTTPXRequest

    # Three retries after a 429 (AIORateLimiter then pauses every request), so that a 429
    # costs time rather than the message; its default, 0, drops the message.
    limiter = AIORateLimiter(overall_max_rate=rate, group_max_rate=0, max_retries=3)
    request = HTTPXRequest(connection_pool_size=in_flight, pool_timeout=30.0, read_timeout=30.0)
    bot = ExtBot(token, base_url=f"{base_url}/bot", request=request, rate_limiter=limiter)
    await bot.initialize()
    chats = iter(range(first_chat, first_chat + count))
    failed = 0

    async def worker() -> int:
        nonlocal failed
        sent = 0
        for chat in chats:
            try:
                await bot.send_message(chat_id=chat, text=TEXT)
            except TelegramError:
                failed += 1
            else:
                sent += 1
        return sent

    async def run() -> int:
        return sum(await asyncio.gather(*(worker() for _ in range(in_flight))))

    try:
        sent, elapsed, peak = await timed(run)
    finally:
        await bot.shutdown()
    return {"sent": sent, "failed": failed, "seconds": elapsed, "peak_mb": peak}


async def broadcaster_send(
    base_url: str, token: str, first_chat: int, count: int, mailers: int, rate: float
) -> dict[str, Any]:
    """Send with aiogram-broadcaster: `mailers` mailers, each over its share of the chats,
    pausing 1/`rate` s between its sends (`rate` 0: no pause). A mailer sends one message at a
    time; the pause is its only pacing (the library has no rate limiter)."""
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram_broadcaster import Broadcaster
    from aiogram_broadcaster.contents import TextContent
    from aiogram_broadcaster.intervals import SimpleInterval

    session = AiohttpSession(api=TelegramAPIServer.from_base(base_url), limit=mailers + 16)
    bot = Bot(token, session=session)
    broadcaster = Broadcaster(bot)
    chats = list(range(first_chat, first_chat + count))
    interval = SimpleInterval(interval=1 / rate) if rate else None
    for part in range(mailers):
        await broadcaster.create_mailer(
            chats=chats[part::mailers], content=TextContent(text=TEXT), interval=interval
        )
    group = broadcaster.get_mailers()
    try:
        _, elapsed, peak = await timed(group.start_and_wait)
    finally:
        await session.close()
    sent = sum(len(mailer.chats.success) for mailer in group)
    failed = sum(len(mailer.chats.failed) for mailer in group)
    return {"sent": sent, "failed": failed, "seconds": elapsed, "peak_mb": peak}


SENDERS = {"bare": fleet.bare_loop, "ptb": ptb_send, "broadcaster": broadcaster_send}


def serve_senders(conn: Any) -> None:
    """Run the senders the parent asks for, one after another, until it sends None."""
    while (job := conn.recv()) is not None:
        phase, args = job
        conn.send(asyncio.run(SENDERS[phase](*args)))


def in_child(phase: str, out: Any, *args: Any) -> None:
    """Run one sender in this (fresh) process and send back its figures."""
    out.send(asyncio.run(SENDERS[phase](*args)))


def run_child(phase: str, *args: Any) -> dict[str, Any]:
    """Run one sender in a spawned process (bench/dispatch.py's spawner)."""
    return dispatch.run_child(phase, *args, target=in_child)


class SenderProcess:
    """A fresh process that runs senders one after another: a library is imported once for
    all of its runs (importing aiogram's types alone takes seconds of CPU here)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=serve_senders, args=(child,))
        self.process.start()

    def run(self, phase: str, *args: Any) -> dict[str, Any]:
        """Run one sender there and return its figures."""
        self.conn.send((phase, args))
        return self.conn.recv()

    def close(self) -> None:
        """Let the process end."""
        self.conn.send(None)
        self.process.join()


async def nudge_send(
    base_url: str, token: str, first_chat: int, count: int, options: dict[str, Any]
) -> dict[str, Any]:
    """Send through Nudge's real path: due outbox rows in a fresh SQLite database, drained by
    the Courier in a fresh process (bench/fleet.py's `courier` phase)."""
    url, _ = await fresh_database("sqlite", "")
    try:
        await populate(url, [(token, first_chat, count)])
        result = await asyncio.to_thread(fleet.run_child, "courier", url, base_url, options)
    finally:
        shutil.rmtree(Path(url.split("///", 1)[1]).parent)
    result["failed"] = count - result["sent"]
    return result


# ---------------------------------------------------------------------------- the run


class Figures:
    """Figures beside their targets, printed as they come and kept for the summary."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.started = time.monotonic()

    def add(
        self, figure: str, value: float, unit: str, target: str = "-", met: bool | None = None
    ) -> None:
        """Record one figure and print it at once, with the load average now."""
        self.rows.append(
            {
                "benchmark": "peers",
                "figure": figure,
                "value": round(value, 2),
                "unit": unit,
                "target": target,
                "met": met,
            }
        )
        verdict = "-" if met is None else ("met" if met else "MISSED")
        elapsed = time.monotonic() - self.started
        print(
            f"  {figure}\n      {value:,.2f} {unit}   target {target}: {verdict}"
            f"   (load average {os.getloadavg()[0]:.1f}; {elapsed:.0f} s in)",
            flush=True,
        )


async def throughput(args: argparse.Namespace, base_url: str, figures: Figures) -> None:
    """Limits off: each sender alone, one after another, to bench/fleet.py's pair bot (its
    chats open, flood control off). The aiogram-based senders share one process, then
    python-telegram-bot gets its own, then the Courier (a fresh process, as in fleet.py)."""
    n = args.in_flight
    libraries = [
        [
            (f"bare aiogram, {k} in flight", "bare", args.serial if k == 1 else args.count, k)
            for k in (1, n, 200)
        ]
        + [
            ("aiogram-broadcaster, 1 mailer", "broadcaster", args.serial, 1),
            (f"aiogram-broadcaster, {n} mailers", "broadcaster", args.count, n),
        ],
        [(f"python-telegram-bot + AIORateLimiter (off), {n} in flight", "ptb", args.ptb, n)],
    ]
    rates = {}
    for runs in libraries:
        process = SenderProcess()
        try:
            for name, phase, count, k in runs:
                await sandbox_stats(base_url, [PAIR_TOKEN], reset=True)
                if phase == "bare":  # bench/fleet.py's loop, to the pair bot's chats
                    job: tuple[Any, ...] = (base_url, count, k)
                else:
                    job = (base_url, PAIR_TOKEN, PAIR_CHAT, count, k, 0.0)
                result = await asyncio.to_thread(process.run, phase, *job)
                rates[name] = await throughput_figure(base_url, name, count, result, figures)
        finally:
            process.close()
    name = f"nudge: outbox -> Courier (SQLite), {n} in flight"
    await sandbox_stats(base_url, [PAIR_TOKEN], reset=True)
    options = {"rate": 100_000.0, "batch": 2000, "in_flight": n}
    result = await nudge_send(base_url, PAIR_TOKEN, PAIR_CHAT, args.count, options)
    rate = await throughput_figure(base_url, name, args.count, result, figures)
    ratio = rate / rates[f"bare aiogram, {n} in flight"]
    figures.add(
        f"limits off: nudge vs bare aiogram, {n} in flight", ratio, "x", ">= 0.8", ratio >= 0.8
    )


async def throughput_figure(
    base_url: str, name: str, count: int, result: dict[str, Any], figures: Figures
) -> float:
    """Record a throughput run's messages a second (cross-checked at the sandbox)."""
    [stats] = await sandbox_stats(base_url, [PAIR_TOKEN], reset=True)
    rate = result["sent"] / result["seconds"]
    lost = count - result["sent"]
    note = f" ({lost:,} not sent)" if lost else ""
    figures.add(f"limits off: {name}: {count:,} sent{note}", rate, "msg/s")
    if stats["sends"] < result["sent"]:
        print(f"    warning: the sandbox saw {stats['sends']} sends", file=sys.stderr)
    return rate


async def register_paced(base_url: str, count: int) -> None:
    """Add each paced sender's bot and its `count` customers to the sandbox (they get its
    default limits: Telegram's flood control)."""
    import aiohttp

    control = f"{base_url}/_sandbox"
    async with aiohttp.ClientSession() as http:
        for token, first in PACED.values():
            async with http.post(f"{control}/bots", json={"token": token}) as response:
                response.raise_for_status()
            queue = iter(range(first, first + count))

            async def add(token: str = token, queue: Any = queue) -> None:
                for user in queue:
                    url = f"{control}/bots/{token}/customers"
                    async with http.post(url, json={"user_id": user}) as response:
                        response.raise_for_status()

            await asyncio.gather(*(add() for _ in range(16)))


async def paced(args: argparse.Namespace, base_url: str, figures: Figures) -> None:
    """Limits on: the three paced senders at 25/s, at the same time, each to its own bot."""
    count = args.paced
    await register_paced(base_url, count)
    ptb_token, ptb_chat = PACED["python-telegram-bot"]
    caster_token, caster_chat = PACED["aiogram-broadcaster"]
    nudge_token, nudge_chat = PACED["nudge"]
    runs = {
        "python-telegram-bot + AIORateLimiter(overall_max_rate=25)": asyncio.to_thread(
            run_child, "ptb", base_url, ptb_token, ptb_chat, count, args.in_flight, RATE
        ),
        "aiogram-broadcaster, 1 mailer, interval 1/25 s": asyncio.to_thread(
            run_child, "broadcaster", base_url, caster_token, caster_chat, count, 1, RATE
        ),
        "nudge: outbox -> Courier (SQLite), limiter 25/s": nudge_send(
            base_url,
            nudge_token,
            nudge_chat,
            count,
            {"rate": RATE, "batch": 200, "in_flight": 256},
        ),
    }
    tokens = [token for token, _ in PACED.values()]
    await sandbox_stats(base_url, tokens, reset=True)
    print(f"  ({count:,} recipients each at {RATE:g}/s, the three at once)", flush=True)
    results = await asyncio.gather(*runs.values())
    stats = await sandbox_stats(base_url, tokens, reset=True)
    ideal = count / RATE
    for name, result, stat in zip(runs, results, stats, strict=True):
        seconds = result["seconds"]
        head = f"limits on, {count:,} at 25/s: {name}"
        figures.add(
            f"{head}: completion (ideal {ideal:.0f} s; {seconds / ideal:.2f}x)",
            seconds,
            "s",
            f"<= {ideal * MARGIN:.1f} ({MARGIN}x ideal)",
            seconds <= ideal * MARGIN,
        )
        worst = stat["max_arrivals_in_1s"]
        figures.add(
            f"{head}: most sends in 1 s at the receiver", worst, "sends", "<= 25", worst <= RATE
        )
        refused = stat["errors"].get("429", 0)
        figures.add(f"{head}: 429 answers", refused, "", "0", refused == 0)
        figures.add(
            f"{head}: delivered", result["sent"], "msgs", f"{count:,}", result["sent"] == count
        )


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    context = multiprocessing.get_context("spawn")
    port_in, port_out = context.Pipe(duplex=False)
    stop = context.Event()
    server = context.Process(target=fleet.serve_sandbox, args=(port_out, stop))
    server.start()
    base_url = port_in.recv()
    figures = Figures()
    print(
        f"sandbox at {base_url}, {fleet.LATENCY * 1000:.0f} ms latency; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    try:
        if "throughput" in args.only:
            await throughput(args, base_url, figures)
        if "paced" in args.only:
            await paced(args, base_url, figures)
    finally:
        stop.set()
        server.join(timeout=30)
    print(f"load average now {os.getloadavg()[0]:.1f}")
    return figures.rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="sent per throughput run")
    parser.add_argument("--serial", type=int, default=150, help="sent by 1-at-a-time senders")
    parser.add_argument("--ptb", type=int, default=1000, help="sent by python-telegram-bot")
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--paced", type=int, default=1000, help="recipients at 25/s")
    parser.add_argument("--full", action="store_true", help="10,000 recipients at 25/s")
    parser.add_argument("--only", default="throughput,paced")
    parser.add_argument("--summary", help="write the figures as JSON to this file")
    args = parser.parse_args()
    missing = sorted({package for module, package in PEERS.items() if not find_spec(module)})
    if missing:
        sys.exit(f"peers.py needs the benchmark-only packages: pip install {' '.join(missing)}")
    if args.full:
        args.paced = 10_000
    rows = asyncio.run(bench(args))
    if args.summary:
        Path(args.summary).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

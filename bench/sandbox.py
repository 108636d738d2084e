"""Benchmark: sendMessage calls per second the sandbox serves with flood control off.

The sandbox runs in its own process (`python -m bot.sandbox --no-limits`); this process is the
client: one aiohttp session, N concurrent workers, each sending sendMessage in a loop to one of
many customers' chats. Bodies are form-encoded as aiogram sends them (or JSON with --json).

    .venv/bin/python bench/sandbox.py [--seconds 5] [--concurrency 50] [--json] [--summary PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:BENCH-token"
CUSTOMERS = 1000


async def start_server() -> tuple[asyncio.subprocess.Process, str]:
    """Start the sandbox in a subprocess and return it with its base URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.sandbox",
        "--port",
        "0",
        "--no-limits",
        "--bot",
        TOKEN,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
    if "sandbox at " not in line:
        raise RuntimeError(f"unexpected sandbox output: {line!r}")
    return process, line.rsplit(" ", 1)[1]


async def worker(
    http: aiohttp.ClientSession,
    url: str,
    index: int,
    stop_at: float,
    use_json: bool,
    counts: list[int],
) -> None:
    """Send messages until `stop_at`, counting successes and failures."""
    n = index
    while time.monotonic() < stop_at:
        chat_id = 1 + n % CUSTOMERS
        n += 1
        fields = {"chat_id": str(chat_id), "text": f"Your cart is waiting #{n}"}
        kwargs = {"json": fields} if use_json else {"data": fields}
        async with http.post(url, **kwargs) as resp:
            await resp.read()
            counts[0 if resp.status == 200 else 1] += 1


async def main() -> None:
    """Run the benchmark and print the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="send JSON bodies instead of forms")
    parser.add_argument("--summary", help="write the figures as JSON to this file")
    args = parser.parse_args()

    process, base_url = await start_server()
    try:
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=connector) as http:
            control = f"{base_url}/_sandbox/bots/{TOKEN}"
            for user_id in range(1, CUSTOMERS + 1):
                async with http.post(f"{control}/customers", json={"user_id": user_id}) as r:
                    r.raise_for_status()
            url = f"{base_url}/bot{TOKEN}/sendMessage"
            results: dict[str, list[int]] = {}
            for phase, seconds in (("warmup", args.warmup), ("measure", args.seconds)):
                counts = [0, 0]
                started = time.monotonic()
                await asyncio.gather(
                    *(
                        worker(http, url, i, started + seconds, args.json, counts)
                        for i in range(args.concurrency)
                    )
                )
                results[phase] = [*counts, int((time.monotonic() - started) * 1000)]
            ok, failed, elapsed_ms = results["measure"]
            async with http.get(f"{control}/stats") as r:
                stats = (await r.json())["result"]
    finally:
        process.send_signal(signal.SIGINT)
        await process.wait()
    rate = ok / (elapsed_ms / 1000)
    body = "JSON" if args.json else "form-encoded"
    print(
        f"sendMessage: {rate:,.0f} req/s served ({ok} ok, {failed} failed in "
        f"{elapsed_ms / 1000:.1f} s; {args.concurrency} concurrent; {body} bodies; limits off)"
    )
    print(json.dumps({"server_sends": stats["sends"], "server_errors": stats["errors"]}))
    if args.summary:
        figure = f"sendMessage served, limits off, {args.concurrency} in flight, {body} bodies"
        rows = [
            (figure, round(rate), "req/s", ">= 2000", rate >= 2000),
            ("failed calls", failed, "", "0", failed == 0),
        ]
        keys = ("figure", "value", "unit", "target", "met")
        summary = [{"benchmark": "sandbox", **dict(zip(keys, row, strict=True))} for row in rows]
        await asyncio.to_thread(Path(args.summary).write_text, json.dumps(summary, indent=1))


if __name__ == "__main__":
    asyncio.run(main())

"""Benchmark the webhook intake: authenticated deliveries stored durably per second, and latency.

    .venv/bin/python bench/ingest.py [--requests 6000] [--concurrency 64] [--rate 500]
                                     [--backends sqlite,postgresql] [--pg-url URL]
                                     [--summary PATH]

For each backend the real app (`bot.app.build_app`, background workers off) runs in its own
process; a bare aiohttp handler that reads the body and answers 200 runs in another, measured
in the same run. The client (this process) sends signed generic `cart.updated` deliveries,
each with a new idempotency key:
1. throughput: a closed loop with `--concurrency` requests in flight, all of `--requests`;
2. latency at a fixed rate: `--rate` requests a second for `--seconds`, open loop.
Afterwards it counts the inbox rows: every 200 must be a stored row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-webhook-secret-0123456789abcdef"
KEY = "bench-secret-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------------- servers


def serve_nudge(database_url: str, port: int) -> None:
    """Run the real app on a port (child process)."""
    from aiohttp import web
    from pydantic import SecretStr

    from bot.app import build_app
    from bot.config import Settings

    settings = Settings(database_url=database_url, secret_key=SecretStr(KEY), telegram_mode="off")
    web.run_app(
        build_app(settings, workers=False),
        host="127.0.0.1",
        port=port,
        print=None,
        access_log=None,
    )


def serve_bare(port: int) -> None:
    """Run a bare aiohttp handler that reads the body and answers 200 (child process)."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "stored"})

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/hooks/{platform}/{shop_id}", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args], cwd=ROOT, stdout=subprocess.DEVNULL)


async def wait_ready(port: int, server: Any = None, tries: int = 1200) -> None:
    """Wait for a server to listen (a minute by default: importing the app takes long on a busy
    machine); with its process (`server`, a Popen), fail at once when it has exited."""
    for _ in range(tries):
        if server is not None and server.poll() is not None:
            raise RuntimeError(f"the app exited with {server.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


# ---------------------------------------------------------------------------- databases


async def prepare(database_url: str) -> int:
    """Create the schema and one generic shop; return its id."""
    from sqlmodel import SQLModel

    from bot.db import create_engine, session_factory, transaction
    from bot.models import Shop

    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
    async with transaction(session_factory(engine)) as session:
        shop = Shop(name="bench", platform="generic", webhook_secret=SECRET, country="UA")
        session.add(shop)
        await session.flush()
        shop_id = shop.id
    await engine.dispose()
    return shop_id  # type: ignore[return-value]


async def count_inbox(database_url: str) -> int:
    from sqlalchemy import func, select

    from bot.db import create_engine
    from bot.models import Inbox

    engine = create_engine(database_url)
    async with engine.connect() as conn:
        stored = await conn.scalar(select(func.count()).select_from(Inbox))
    await engine.dispose()
    return int(stored or 0)


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


# ------------------------------------------------------------------------------- client


def deliveries(count: int) -> list[tuple[bytes, dict[str, str]]]:
    """Return signed generic cart.updated deliveries, each with its own idempotency key."""
    from integrations.generic import sign

    template = json.loads((ROOT / "tests/data/generic/cart.updated.json").read_bytes())
    made = []
    for n in range(count):
        template["id"] = f"bench-{uuid.uuid4().hex}"
        template["data"]["token"] = f"cart-{n % 500}"
        body = json.dumps(template, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Nudge-Topic": "cart.updated",
            "X-Nudge-Signature": sign(body, SECRET),
        }
        made.append((body, headers))
    return made


async def closed_loop(url: str, work: list, concurrency: int) -> tuple[float, list[float], int]:
    """Send everything with `concurrency` requests in flight; return (seconds, latencies, ok)."""
    import aiohttp

    latencies: list[float] = []
    ok = 0
    queue = iter(work)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def runner() -> None:
            nonlocal ok
            for body, headers in queue:
                began = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    ok += response.status == 200
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(runner() for _ in range(concurrency)))
        return time.perf_counter() - began, latencies, ok


async def open_loop(url: str, work: list, rate: float) -> tuple[list[float], int]:
    """Send at a fixed rate regardless of answers; return (latencies from schedule, ok)."""
    import aiohttp

    latencies: list[float] = []
    ok = 0
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(when: float, body: bytes, headers: dict[str, str]) -> None:
            nonlocal ok
            delay = when - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                ok += response.status == 200
            latencies.append(time.perf_counter() - when)

        start_at = time.perf_counter() + 0.2
        await asyncio.gather(*(one(start_at + n / rate, b, h) for n, (b, h) in enumerate(work)))
    return latencies, ok


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def measure(name: str, url: str, args: argparse.Namespace) -> dict:
    warm = deliveries(200)
    await closed_loop(url, warm, 16)
    seconds, latencies, ok = await closed_loop(url, deliveries(args.requests), args.concurrency)
    paced = deliveries(int(args.rate * args.seconds))
    rate_latencies, rate_ok = await open_loop(url, paced, args.rate)
    return {
        "server": name,
        "per_second": ok / seconds,
        "ok": ok + rate_ok + len(warm),
        "p50": statistics.median(latencies) * 1000,
        "p99": pct(latencies, 0.99),
        "rate_p50": pct(rate_latencies, 0.50),
        "rate_p99": pct(rate_latencies, 0.99),
    }


async def bench_backend(backend: str, args: argparse.Namespace) -> list[dict]:
    tmp = tempfile.mkdtemp(prefix="nudge-bench-")
    name = f"nudge_bench_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        database_url = f"sqlite+aiosqlite:///{tmp}/bench.db"
    else:
        await pg_admin(args.pg_url, f'CREATE DATABASE "{name}"')
        from sqlalchemy.engine import make_url

        database_url = make_url(args.pg_url).set(database=name).render_as_string(False)
    results = []
    try:
        shop_id = await prepare(database_url)
        port, bare_port = free_port(), free_port()
        servers = [start(["--serve", "nudge", database_url, str(port)])]
        servers.append(start(["--serve", "bare", "-", str(bare_port)]))
        try:
            await wait_ready(port)
            await wait_ready(bare_port)
            path = f"/hooks/generic/{shop_id}"
            bare = await measure("bare aiohttp", f"http://127.0.0.1:{bare_port}{path}", args)
            real = await measure(f"nudge ({backend})", f"http://127.0.0.1:{port}{path}", args)
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=15)
        real["stored"] = await count_inbox(database_url)
        results = [bare, real]
    finally:
        if backend != "sqlite":
            await pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return results


def report(rows: list[dict], args: argparse.Namespace) -> None:
    print(
        f"\n{args.requests} deliveries, {args.concurrency} in flight; "
        f"then {args.rate:g}/s for {args.seconds:g}s ({os.cpu_count()} CPUs)"
    )
    print(
        f"{'server':<22}{'deliveries/s':>13}{'p50 ms':>9}{'p99 ms':>9}"
        f"{f'p50@{args.rate:g}/s':>12}{f'p99@{args.rate:g}/s':>12}{'stored':>10}"
    )
    for r in rows:
        stored = f"{r['stored']}/{r['ok']}" if "stored" in r else "-"
        print(
            f"{r['server']:<22}{r['per_second']:>13.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}"
            f"{r['rate_p50']:>12.1f}{r['rate_p99']:>12.1f}{stored:>10}"
        )


def summary(rows: list[dict], args: argparse.Namespace) -> list[dict]:
    """Return the figures as summary rows (bench/run_all.py); the targets are the app's."""

    def row(figure: str, value: float, unit: str, target: str = "-", met: bool | None = None):
        fields = {"figure": figure, "value": round(value, 1), "unit": unit, "target": target}
        return {"benchmark": "ingest", **fields, "met": met}

    found = []
    for bare, r in zip(rows[::2], rows[1::2], strict=True):  # each backend: bare, then nudge
        name, rate = r["server"], r["per_second"]
        throughput = f"deliveries/s, {args.concurrency} in flight"
        p99, stored, answered = r["rate_p99"], r["stored"], r["ok"]
        found += [
            row(f"bare aiohttp (beside {name}): {throughput}", bare["per_second"], "req/s"),
            row(f"{name}: {throughput}", rate, "req/s", ">= 1500", rate >= 1500),
            row(f"{name}: p99 at {args.rate:g}/s", p99, "ms", "< 50", p99 < 50),
            row(f"{name}: 200s stored", stored, "rows", f"{answered:,}", stored == answered),
        ]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "NUDGE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--summary", help="write the figures as JSON to this file")
    args = parser.parse_args()
    if args.serve:
        kind, database_url, port = args.serve
        if kind == "bare":
            serve_bare(int(port))
        else:
            serve_nudge(database_url, int(port))
        return
    rows: list[dict] = []
    for backend in args.backends.split(","):
        rows += asyncio.run(bench_backend(backend.strip(), args))
    report(rows, args)
    if args.summary:
        Path(args.summary).write_text(json.dumps(summary(rows, args), indent=1))


if __name__ == "__main__":
    main()

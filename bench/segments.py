"""Benchmark: customer metrics refresh and segment counts at a million customers.

Generates, inside a fresh database (SQL only: generate_series on PostgreSQL, a recursive CTE
on SQLite), one shop with N customers (linked and opted in, locales and cities spread) and M
placed orders with one line each in one of 20 categories, spread over the last three years;
runs ANALYZE; then times

- `refresh_metrics` for the whole shop (metrics, RFM, stages, stage events),
- counting a five-condition segment (stage, RFM, category bought, locale, last order),

and reports peak RSS of this process. Targets (issue #13): refresh <= 60 s on PostgreSQL;
the count <= 2 s on PostgreSQL and <= 6 s on SQLite; peak RSS < 300 MB.

    .venv/bin/python bench/segments.py [--customers 1000000] [--orders 5000000]
        [--backends sqlite,postgresql] [--pg-url URL] [--reuse] [--counts 5] [--summary PATH]

The targets are for 1,000,000 customers; at a smaller `--customers` (`make bench` runs 200,000
with 1,000,000 orders) the time targets are scaled by customers / 1,000,000 and say so.

`--reuse` keeps the generated shop between runs (PostgreSQL database `nudge_bench_segments`,
SQLite file /tmp/nudge_bench_segments.db; `--pg-db`, `--sqlite-file` name others): a later run
with the same sizes and schema skips the generation, empties the metrics and stage events and
builds any index the schema gained, so every run times the same first whole-shop refresh.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SEGMENT = {
    "all": [
        {"field": "stage", "op": "in", "value": ["active", "at_risk"]},
        {"field": "rfm_r", "op": ">=", "value": 3},
        {"field": "bought_category", "op": "contains", "value": "category-7"},
        {"field": "locale", "op": "=", "value": "uk"},
        {"field": "last_order_days", "op": "<=", "value": 180},
    ]
}
TARGETS = {"postgresql": {"refresh": 60.0, "count": 2.0}, "sqlite": {"count": 6.0}}


def cpu_s(backend_pid: int | None) -> float:
    """CPU seconds used so far by the database work: the PostgreSQL backend serving this
    session (read from /proc; parallel workers not included), or this process for SQLite.

    On a loaded machine this shows what the work costs apart from waiting for a core.
    """
    if backend_pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        fields = Path(f"/proc/{backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def backend_pid(session) -> int | None:
    """Return the PostgreSQL backend's process id (None on SQLite)."""
    from sqlalchemy import text

    if session.bind.dialect.name != "postgresql":
        return None
    return int(await session.scalar(text("SELECT pg_backend_pid()")))


def peak_rss_mb() -> float:
    """Return this process's peak resident set size so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


PG_FILL = [
    """INSERT INTO shops (id, name, platform, currency, default_locale, timezone,
           webhook_secret, settings, signature_failures, created_at)
       VALUES (1, 'Bench', 'generic', 'UAH', 'uk', 'Europe/Kyiv', 'secret', '{}', 0, :now)""",
    """INSERT INTO customers (id, shop_id, external_id, first_name, locale, city,
           attributes, telegram_chat_id, consent, linked_at, needs_follow_up, created_at,
           updated_at)
       SELECT g, 1, 'c' || g, 'Customer', (ARRAY['uk','ru','pl','en'])[1 + g % 4],
              (ARRAY['Kyiv','Lviv','Odesa','Warszawa','Kraków'])[1 + g % 5], '{}',
              g, CASE WHEN g % 10 = 0 THEN 'opted_out' ELSE 'opted_in' END,
              CAST(:now AS timestamptz) - (g % 700) * interval '1 day', false, :now, :now
       FROM generate_series(1, :customers) AS g""",
    """INSERT INTO orders (id, shop_id, customer_id, external_id, status, total, currency,
           discount_codes, placed_at, updated_at)
       SELECT g, 1, 1 + (hashint(g) % :customers), 'o' || g,
              CASE WHEN g % 20 = 0 THEN 'cancelled' ELSE 'placed' END,
              10 + (hashint(g * 7) % 5000), 'UAH', '[]',
              CAST(:now AS timestamptz)
                  - ((hashint(g * 13) % (3 * 365 * 24)) * interval '1 hour'), :now
       FROM generate_series(1, :orders) AS g""",
    """INSERT INTO order_items (shop_id, order_id, title, category, quantity)
       SELECT 1, g, 'Item', 'category-' || (g % 20), 1 FROM generate_series(1, :orders) AS g""",
]

SQLITE_FILL = [
    """INSERT INTO shops (id, name, platform, currency, default_locale, timezone,
           webhook_secret, settings, signature_failures, created_at)
       VALUES (1, 'Bench', 'generic', 'UAH', 'uk', 'Europe/Kyiv', 'secret', '{}', 0, :now)""",
    """WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :customers)
       INSERT INTO customers (id, shop_id, external_id, first_name, locale, city, attributes,
           telegram_chat_id, consent, linked_at, needs_follow_up, created_at, updated_at)
       SELECT n, 1, 'c' || n, 'Customer',
              CASE n % 4 WHEN 0 THEN 'uk' WHEN 1 THEN 'ru' WHEN 2 THEN 'pl' ELSE 'en' END,
              CASE n % 5 WHEN 0 THEN 'Kyiv' WHEN 1 THEN 'Lviv' WHEN 2 THEN 'Odesa'
                         WHEN 3 THEN 'Warszawa' ELSE 'Kraków' END,
              '{}', n, CASE WHEN n % 10 = 0 THEN 'opted_out' ELSE 'opted_in' END,
              datetime(:now, '-' || (n % 700) || ' days'), 0, :now, :now
       FROM g""",
    """WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :orders)
       INSERT INTO orders (id, shop_id, customer_id, external_id, status, total, currency,
           discount_codes, placed_at, updated_at)
       SELECT n, 1, 1 + ((n * 2654435761) % :customers), 'o' || n,
              CASE WHEN n % 20 = 0 THEN 'cancelled' ELSE 'placed' END,
              (10 + (n * 7919) % 5000) * 10000, 'UAH', '[]',
              datetime(:now, '-' || ((n * 104729) % (3 * 365 * 24)) || ' hours'), :now
       FROM g""",
    """WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :orders)
       INSERT INTO order_items (shop_id, order_id, title, category, quantity)
       SELECT 1, n, 'Item', 'category-' || (n % 20), 1 FROM g""",
]

PG_HASH = """CREATE OR REPLACE FUNCTION hashint(x bigint) RETURNS bigint AS
$$ SELECT abs(hashtextextended(x::text, 42)) $$ LANGUAGE sql IMMUTABLE"""


async def fill(engine, customers: int, orders: int) -> float:
    """Generate the shop in SQL; return the seconds it took."""
    from sqlalchemy import text

    postgres = engine.dialect.name == "postgresql"
    started = time.perf_counter()
    async with engine.begin() as conn:
        if postgres:
            await conn.execute(text(PG_HASH))
        now = NOW if postgres else NOW.replace(tzinfo=None).isoformat(sep=" ")
        for statement in PG_FILL if postgres else SQLITE_FILL:
            params = {"now": now, "customers": customers, "orders": orders}
            await conn.execute(text(statement), params)
    await analyze(engine)
    return time.perf_counter() - started


async def generated(engine, customers: int, orders: int) -> bool:
    """Return whether the database holds this benchmark's shop at these sizes and schema."""
    from sqlalchemy import inspect, text
    from sqlmodel import SQLModel

    def schema_matches(conn) -> bool:
        """Add tables and nullable columns the models gained; False if more is needed."""
        found = inspect(conn)
        SQLModel.metadata.create_all(conn)  # tables the models gained since
        for table in SQLModel.metadata.sorted_tables:
            have = {column["name"] for column in found.get_columns(table.name)}
            for column in table.columns:
                if column.name in have:
                    continue
                if not column.nullable:
                    return False
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
        return True

    async with engine.begin() as conn:
        if not await conn.run_sync(schema_matches):
            return False
        sizes = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM customers WHERE shop_id = 1),"
                    " (SELECT count(*) FROM orders WHERE shop_id = 1),"
                    " (SELECT count(*) FROM order_items WHERE shop_id = 1)"
                )
            )
        ).one()
    return tuple(sizes) == (customers, orders, orders)


async def reset(engine) -> None:
    """Forget the last run's metrics and stage events; build indexes the schema gained."""
    from sqlalchemy import text
    from sqlmodel import SQLModel

    def add_indexes(conn) -> None:
        for table in SQLModel.metadata.sorted_tables:
            for index in table.indexes:
                index.create(conn, checkfirst=True)

    postgres = engine.dialect.name == "postgresql"
    async with engine.begin() as conn:
        if postgres:
            await conn.execute(text("TRUNCATE customer_metrics, customer_events"))
        else:
            await conn.execute(text("DELETE FROM customer_metrics"))
            await conn.execute(text("DELETE FROM customer_events"))
        await conn.execute(text("UPDATE shops SET median_interval_days = NULL"))
        await conn.run_sync(add_indexes)
        if postgres:
            from bot.models import ORDER_ITEM_CATEGORY_STATISTICS

            await conn.execute(text(ORDER_ITEM_CATEGORY_STATISTICS))
    await analyze(engine)


async def analyze(engine, table: str = "") -> None:
    """Refresh the planner's statistics (outside a transaction on PostgreSQL)."""
    from sqlalchemy import text

    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("COMMIT"))
            await conn.execute(text(f"VACUUM ANALYZE {table}".strip()))
        else:
            await conn.execute(text(f"ANALYZE {table}".strip()))
            await conn.commit()


async def explain(engine, sessions) -> None:
    """Print the plan of the segment count (with timings on PostgreSQL)."""
    from sqlalchemy import func, select, text

    from bot.segments import audience
    from bot.store.segments import scope_for

    async with sessions() as session:
        scope = await scope_for(session=session, shop_id=1, now=NOW)
        query = select(func.count()).select_from(audience(SEGMENT, scope).subquery())
        compiled = query.compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
        if engine.dialect.name == "postgresql":
            rows = await session.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}"))
            print("\n".join(row[0] for row in rows))
        else:
            rows = await session.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
            print("\n".join(str(tuple(row)) for row in rows))


def trace(engine) -> None:
    """Print each statement's duration and its first words (to see where a refresh goes)."""
    from sqlalchemy import event

    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        conn.info.setdefault("started", []).append(time.perf_counter())

    def after(conn, cursor, statement, parameters, context, executemany) -> None:
        took = time.perf_counter() - conn.info["started"].pop()
        if took >= 0.05:
            print(f"    {took:7.2f} s  {' '.join(statement.split())[:100]}", flush=True)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)


async def measure(url: str, args: argparse.Namespace) -> dict[str, float]:
    """Build the schema and fill it (or reuse it), time the refresh and the segment count."""
    from sqlmodel import SQLModel

    from bot.db import create_engine, session_factory, transaction
    from bot.lifecycle import refresh_metrics
    from bot.store.segments import count_audience

    engine = create_engine(url)
    if args.trace:
        trace(engine)
    figures: dict[str, float] = {"fill_s": 0.0}
    if args.reuse and await generated(engine, args.customers, args.orders):
        await reset(engine)
    else:
        async with engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.drop_all)
            await conn.run_sync(SQLModel.metadata.create_all)
        figures["fill_s"] = await fill(engine, args.customers, args.orders)
    sessions = session_factory(engine)
    refreshes = []
    for later in range(2 if args.again else 1):  # again: the periodic job, a day later
        started = time.perf_counter()
        async with transaction(sessions) as session:
            pid = await backend_pid(session)
            cpu = cpu_s(pid)
            done = await refresh_metrics(
                session=session, shop_id=1, now=NOW + timedelta(days=later)
            )
            if later:
                figures["again_cpu_s"] = cpu_s(pid) - cpu
                figures["again_changes"] = done.stage_changes
            figures.setdefault("refresh_cpu_s", cpu_s(pid) - cpu)
        refreshes.append(time.perf_counter() - started)
        figures.setdefault("stage_changes", done.stage_changes)
    figures["refresh_s"] = refreshes[0]
    if args.again:
        figures["again_s"] = refreshes[1]
    await analyze(engine, "customer_metrics")
    if args.explain:
        await explain(engine, sessions)
    counts, cpus = [], []
    for _ in range(args.counts):  # the first count reads cold pages
        async with sessions() as session:
            pid = await backend_pid(session)
            started, cpu = time.perf_counter(), cpu_s(pid)
            audience = await count_audience(
                session=session, shop_id=1, definition=SEGMENT, now=NOW
            )
            counts.append(time.perf_counter() - started)
            cpus.append(cpu_s(pid) - cpu)
    figures["count_cpu_s"] = min(cpus)
    figures["count_s"] = min(counts)
    figures["count_median_s"] = statistics.median(counts)
    figures["count_cold_s"] = counts[0]
    figures["audience"] = audience
    figures["peak_rss_mb"] = peak_rss_mb()
    await engine.dispose()
    return figures


def report(backend: str, figures: dict[str, float], customers: int) -> list[dict]:
    """Print each figure beside its target (time targets scaled to `customers`); return them
    as summary rows (bench/run_all.py)."""
    scale = customers / 1_000_000
    targets = {name: seconds * scale for name, seconds in TARGETS.get(backend, {}).items()}
    print(f"\n{backend}:")
    made = f"generated in {figures['fill_s']:.1f} s" if figures["fill_s"] else "reused"
    print(f"  {made}; audience {int(figures['audience']):,}")
    print(f"  stage changes {int(figures['stage_changes']):,}")
    for name, key in (("refresh", "refresh_s"), ("count", "count_s")):
        target = targets.get(name)
        verdict = (
            ""
            if target is None
            else f"  target <= {target:.1f} s: " + ("met" if figures[key] <= target else "MISSED")
        )
        print(f"  {name:8} {figures[key]:8.2f} s{verdict}")
    print(
        f"  CPU: refresh {figures['refresh_cpu_s']:.2f} s, count {figures['count_cpu_s']:.2f} s"
        " (PostgreSQL: the session's backend, without parallel workers)"
    )
    if "again_s" in figures:
        print(
            f"  refresh a day later {figures['again_s']:.2f} s"
            f" (CPU {figures['again_cpu_s']:.2f} s,"
            f" {int(figures['again_changes']):,} stage changes)"
        )
    print(
        f"  count median {figures['count_median_s']:.2f} s,"
        f" first (cold) {figures['count_cold_s']:.2f} s"
    )
    rss = figures["peak_rss_mb"]
    print(f"  peak RSS {rss:.0f} MB  target < 300 MB: {'met' if rss < 300 else 'MISSED'}")
    return summary(backend, figures, customers, targets)


def summary(
    backend: str, figures: dict[str, float], customers: int, targets: dict[str, float]
) -> list[dict]:
    """Return the figures beside their (scaled) targets as summary rows."""

    def row(figure: str, value: float, unit: str, target: str = "-", met: bool | None = None):
        fields = {"figure": figure, "value": round(value, 2), "unit": unit, "target": target}
        return {"benchmark": "segments", **fields, "met": met}

    size = f"{customers:,} customers, {backend}"
    scaled = "" if customers == 1_000_000 else f" (1M target x {customers / 1_000_000:g})"
    found = []
    for name, key, aim in (
        ("first whole-shop refresh", "refresh_s", "refresh"),
        ("segment count (best)", "count_s", "count"),
    ):
        target = targets.get(aim)
        if target is None:
            found.append(row(f"{name}, {size}", figures[key], "s"))
            continue
        limit = f"<= {target:.1f}{scaled}"
        found.append(row(f"{name}, {size}", figures[key], "s", limit, figures[key] <= target))
    rss = figures["peak_rss_mb"]
    found.append(row(f"peak RSS, {size}", rss, "MB", "< 300", rss < 300))
    return found


async def main() -> None:
    """Run the benchmark on each backend asked for."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=5_000_000)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "NUDGE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--reuse", action="store_true", help="keep the generated shop")
    parser.add_argument("--pg-db", default="nudge_bench_segments")
    parser.add_argument("--sqlite-file", default="/tmp/nudge_bench_segments.db")
    parser.add_argument("--counts", type=int, default=5, help="times the count is run")
    parser.add_argument("--again", action="store_true", help="also time the refresh a day later")
    parser.add_argument("--explain", action="store_true", help="print the count's plan")
    parser.add_argument("--trace", action="store_true", help="print each slow statement")
    parser.add_argument("--summary", help="write the figures as JSON to this file")
    args = parser.parse_args()
    print(f"{args.customers:,} customers, {args.orders:,} orders; load {os.getloadavg()}")
    rows: list[dict] = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            if args.reuse:
                url = f"sqlite+aiosqlite:///{args.sqlite_file}"
                rows += report(backend, await measure(url, args), args.customers)
                continue
            with tempfile.TemporaryDirectory() as folder:
                url = f"sqlite+aiosqlite:///{folder}/bench.db"
                rows += report(backend, await measure(url, args), args.customers)
            continue
        import asyncpg
        from sqlalchemy.engine import make_url

        base = make_url(args.pg_url)
        name = args.pg_db if args.reuse else f"nudge_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(
            host=base.host, port=base.port or 5432, user=base.username, database=base.database
        )
        known = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not known:
            await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = base.set(database=name).render_as_string(hide_password=False)
            rows += report(backend, await measure(url, args), args.customers)
        finally:
            if not args.reuse:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    print(f"load after {os.getloadavg()}")
    if args.summary:
        await asyncio.to_thread(Path(args.summary).write_text, json.dumps(rows, indent=1))


if __name__ == "__main__":
    asyncio.run(main())

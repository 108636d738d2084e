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
        [--backends sqlite,postgresql] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
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
    async with engine.connect() as conn:
        if postgres:
            await conn.execute(text("COMMIT"))
            await conn.execute(text("ANALYZE"))
        else:
            await conn.execute(text("ANALYZE"))
            await conn.commit()
    return time.perf_counter() - started


async def measure(url: str, customers: int, orders: int) -> dict[str, float]:
    """Build the schema, fill it, time the refresh and the segment count."""
    from sqlmodel import SQLModel

    from bot.db import create_engine, session_factory, transaction
    from bot.lifecycle import refresh_metrics
    from bot.store.segments import count_audience

    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
    figures = {"fill_s": await fill(engine, customers, orders)}
    sessions = session_factory(engine)
    started = time.perf_counter()
    async with transaction(sessions) as session:
        report = await refresh_metrics(session=session, shop_id=1, now=NOW)
    figures["refresh_s"] = time.perf_counter() - started
    figures["stage_changes"] = report.stage_changes
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            from sqlalchemy import text

            await conn.execute(text("COMMIT"))
            await conn.execute(text("ANALYZE customer_metrics"))
    counts = []
    for _ in range(3):  # the first count reads cold pages; report the best of three
        started = time.perf_counter()
        async with sessions() as session:
            audience = await count_audience(
                session=session, shop_id=1, definition=SEGMENT, now=NOW
            )
        counts.append(time.perf_counter() - started)
    figures["count_s"] = min(counts)
    figures["count_cold_s"] = counts[0]
    figures["audience"] = audience
    figures["peak_rss_mb"] = peak_rss_mb()
    await engine.dispose()
    return figures


def report(backend: str, figures: dict[str, float]) -> None:
    """Print each figure beside its target."""
    targets = TARGETS.get(backend, {})
    print(f"\n{backend}:")
    print(f"  generated in {figures['fill_s']:.1f} s; audience {int(figures['audience']):,}")
    for name, key in (("refresh", "refresh_s"), ("count", "count_s")):
        target = targets.get(name)
        verdict = (
            ""
            if target is None
            else f"  target <= {target:.0f} s: " + ("met" if figures[key] <= target else "MISSED")
        )
        print(f"  {name:8} {figures[key]:8.2f} s{verdict}")
    print(f"  first count (cold) {figures['count_cold_s']:.2f} s")
    rss = figures["peak_rss_mb"]
    print(f"  peak RSS {rss:.0f} MB  target < 300 MB: {'met' if rss < 300 else 'MISSED'}")


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
    args = parser.parse_args()
    print(f"{args.customers:,} customers, {args.orders:,} orders")
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                url = f"sqlite+aiosqlite:///{folder}/bench.db"
                report(backend, await measure(url, args.customers, args.orders))
            continue
        import asyncpg
        from sqlalchemy.engine import make_url

        base = make_url(args.pg_url)
        name = f"nudge_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(
            host=base.host, port=base.port or 5432, user=base.username, database=base.database
        )
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = base.set(database=name).render_as_string(hide_password=False)
            report(backend, await measure(url, args.customers, args.orders))
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())

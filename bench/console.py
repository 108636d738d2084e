"""Benchmark: every console page's latency with 100,000 customers in one shop (issue #16).

Builds a fresh database per backend (a temp SQLite file; a throwaway PostgreSQL database at
`NUDGE_TEST_POSTGRES_URL` or `--pg-url`), migrated by the shipped migrations, and fills one
shop with N customers and a realistic history: about 3 orders each (20 customers with 50),
carts, events, ~3 flow messages each (sent, skipped with reasons, cancelled, blocked, failed,
waiting), clicks, "not interested", attributed orders, NPS answers, tags, promo codes,
support conversations, saved segments and four campaigns: one sent to every opted-in customer
(~64% of the shop, 10% held out, two variants, a follow-up step, clicks, opt-outs and orders),
one small one sent, a draft and a cancelled one. Bulk rows are generated in SQL (one
`INSERT … SELECT` per table over a numbers table); the campaigns, the metrics refresh, the
segments and the token go through the service's own functions.

Then it starts the real app (`bot.app.build_app`, background workers off) in its own process,
logs into the console with a shop token and times each page: 2 warm-up requests, then 20
timed, one at a time. Target (#16): p95 under 200 ms for every page.

    .venv/bin/python bench/console.py [--customers 100000] [--backends sqlite,postgresql]
        [--reuse] [--summary PATH] [--requests 20] [--pg-url URL]

`--reuse` keeps the generated shop between runs (PostgreSQL database `nudge_bench_console`,
SQLite file /tmp/nudge_bench_console.db); a later run with the same size only migrates it
(indexes added since are built) and runs ANALYZE. `--summary PATH` writes the p95 figures as
JSON rows for bench/run_all.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from ingest import wait_ready  # noqa: E402

KEY = "bench-console-secret-key-0123456789abcdef"
BOT_TOKEN = "7100000016:AAbenchconsolebottoken0000000000000"
TARGET_MS = 200.0
VIPS = 20  # customers 1..VIPS have 50 orders and ~150 messages each: the card's worst case
FIRST = [
    "Олена", "Андрій", "Марія", "Тарас", "Ірина", "Олег", "Наталія", "Дмитро",
    "Anna", "Piotr", "Katarzyna", "John", "Мария", "Сергей", "Ольга", "Ігор",
]  # fmt: skip
LAST = [
    "Коваль", "Шевченко", "Бондаренко", "Ткаченко", "Кравченко", "Олійник", "Мельник",
    "Лисенко", "Nowak", "Kowalski", "Wiśniewska", "Smith", "Иванов", "Петрова", "Савчук",
    "Гончаренко", "Руденко", "Мороз", "Павленко", "Левченко", "Zieliński", "Brown",
    "Соколова", "Кузьмин", "Марченко", "Поліщук", "Юрченко", "Бойко", "Wójcik", "Taylor",
    "Романенко", "Ткачук",
]  # fmt: skip
SPRING = {
    "name": "Spring sale",
    "segment": {"field": "consent", "op": "=", "value": "opted_in"},
    "topic": "spring",
    "holdout_percent": 10,
    "variants": [
        {
            "name": "A",
            "weight": 1,
            "messages": {
                "uk": {"text": "{first_name}, весна! −20% на все"},
                "en": {"text": "{first_name}, spring is here: 20% off"},
            },
        },
        {
            "name": "B",
            "weight": 1,
            "messages": {
                "uk": {"text": "Весняні знижки, {first_name}"},
                "en": {"text": "Spring deals, {first_name}"},
            },
        },
    ],
    "follow_up": {
        "after": "24h",
        "messages": {"uk": {"text": "Знижки ще діють"}, "en": {"text": "Still on"}},
    },
}
LVIV = {
    "name": "Lviv opening",
    "segment": {
        "all": [
            {"field": "city", "op": "=", "value": "Lviv"},
            {"field": "consent", "op": "=", "value": "opted_in"},
        ]
    },
    "topic": "stores",
    "messages": {"uk": {"text": "Ми відкрились у Львові!"}},
}
SUMMER = {
    "name": "Summer (draft)",
    "segment": "Active Kyiv",
    "topic": "summer",
    "messages": {"uk": {"text": "Літо, {first_name}!"}, "pl": {"text": "Lato!"}},
}
SEGMENTS = {
    "Active Kyiv": {
        "all": [
            {"field": "stage", "op": "in", "value": ["active", "new"]},
            {"field": "city", "op": "=", "value": "Kyiv"},
        ]
    },
    "Lapsed": {"field": "stage", "op": "=", "value": "lapsed"},
    "Promoters": {"field": "nps", "op": ">=", "value": 9},
}
# the editor's live count: three conditions, as the form sends them
AUDIENCE_FORM = {
    "match": "all",
    "field0": "stage",
    "op0": "in",
    "value0": "active,at_risk",
    "field1": "locale",
    "op1": "=",
    "value1": "uk",
    "field2": "last_order_days",
    "op2": "<=",
    "value2": "180",
}


# ------------------------------------------------------------------------------- SQL fill


class Sql:
    """The few expressions the fill writes differently on PostgreSQL and SQLite."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres

    def ago(self, minutes: str) -> str:
        """A moment `minutes` before :now (negative: after), as each backend stores it."""
        if self.postgres:
            return f"(CAST(:now AS timestamptz) - ({minutes}) * interval '1 minute')"
        return f"strftime('%Y-%m-%d %H:%M:%f000', :now, (-({minutes})) || ' minutes')"

    def money(self, units: str) -> str:
        """An amount in currency units (SQLite keeps 1/10000 units, bot.db.Money)."""
        return f"CAST(({units}) AS numeric)" if self.postgres else f"(({units}) * 10000)"

    def json(self, text: str) -> str:
        return f"CAST(({text}) AS jsonb)" if self.postgres else f"({text})"

    @staticmethod
    def mix(x: str, salt: int, m: int) -> str:
        """A pseudo-random 0..m-1 from an integer (Knuth's multiplicative hash, bits 8-31)."""
        return f"(((({x}) + {salt * 1000003}) * 2654435761) % 4294967296 / 256 % {m})"

    @staticmethod
    def pick(index: str, values: list[str | None]) -> str:
        """The value at `index` (0-based) of a list of texts (None: NULL)."""
        arms = " ".join(
            f"WHEN {i} THEN " + ("NULL" if v is None else "'" + v.replace("'", "''") + "'")
            for i, v in enumerate(values)
        )
        return f"(CASE {index} {arms} END)"


def fill_statements(q: Sql, n: int) -> list[str]:
    """The INSERT … SELECT statements that generate shop 1's history (`nums` holds 1..max)."""
    mix, pick, ago, money, js = q.mix, q.pick, q.ago, q.money, q.json
    orders, carts, flows = 3 * n, 3 * n // 2, 3 * n
    talks = min(2000, max(20, n // 50))  # support conversations
    linked = f"(n <= {VIPS} OR {mix('n', 6, 10)} < 7)"
    opted_in = f"({linked} AND (n <= {VIPS} OR {mix('n', 9, 100)} < 92))"
    buyer = (
        f"CASE WHEN n <= {VIPS * 50} THEN 1 + n % {VIPS}"
        f" WHEN {mix('n', 20, 25)} = 0 THEN NULL ELSE 1 + {mix('n', 21, n)} END"
    )
    placed = ago(mix("n", 23, 3 * 525600))
    converted = f"{mix('n', 30, 10)} < 6"
    kinds = [
        ("post_purchase.thanks", None, "transactional", 0),
        ("post_purchase.thanks", None, "transactional", 0),
        ("post_purchase.thanks", None, "transactional", 0),
        ("cart.reminder", None, "reminder", 1),
        ("cart.reminder", None, "reminder", 1),
        ("welcome.step", None, "promo", 2),
        ("nps.question", None, "transactional", 0),
        ("winback.offer", "winback", "promo", 2),
        ("cart.followup", None, "reminder", 1),
        ("birthday.greeting", "birthday", "promo", 2),
    ]
    kind_at = mix("n", 51, 10)
    roll = mix("n", 52, 100)
    state = (
        f"CASE WHEN {roll} < 78 THEN 'sent' WHEN {roll} < 88 THEN 'skipped'"
        f" WHEN {roll} < 93 THEN 'cancelled' WHEN {roll} < 96 THEN 'blocked'"
        f" WHEN {roll} < 98 THEN 'failed' ELSE 'scheduled' END"
    )
    skipped = pick(
        mix("n", 53, 6),
        ["no_consent", "unsubscribed", "frequency_cap", "excluded", "unreachable", "support_open"],
    )
    cancelled = pick(mix("n", 53, 3), ["ordered", "cart_closed", "stage_changed"])
    due = (
        f"CASE WHEN {roll} >= 98 THEN {ago('-' + mix('n', 54, 10000))}"
        f" ELSE {ago(mix('n', 54, 3 * 525600))} END"
    )
    cart_payload = js("""'{"token": "' || token || '"}'""")
    order_payload = js("""'{"order_id": "' || external_id || '"}'""")
    viewed_payload = js("""'{"product_id": "p' || """ + mix("n", 41, 500) + """ || '"}'""")
    nps_payload = js("""'{"score": ' || nps_score || '}'""")
    return [
        # the customers: 70% linked to Telegram, 92% of those opted in; VIPs first
        f"""INSERT INTO customers (id, shop_id, external_id, email, phone, first_name, last_name,
            locale, timezone, attributes, country, city, telegram_chat_id, telegram_username,
            linked_at, consent, consent_source, consent_at, unreachable_since, needs_follow_up,
            nps_score, created_at, updated_at)
        SELECT n, 1, 'c' || n,
            CASE WHEN {mix("n", 1, 5)} <> 0 THEN 'customer' || n || '@example.com' END,
            CASE WHEN {mix("n", 2, 10)} < 7 THEN '+38067' || (1000000 + n) END,
            {pick(mix("n", 3, 16), FIRST)}, {pick(mix("n", 4, len(LAST)), LAST)},
            {pick(mix("n", 5, 8), ["uk", "uk", "uk", "uk", "ru", "ru", "en", "pl"])},
            {pick(mix("n", 17, 4), ["Europe/Kyiv", "Europe/Kyiv", "Europe/Warsaw", None])},
            {js("'{}'")}, 'UA',
            {pick(mix("n", 16, 6), ["Kyiv", "Lviv", "Odesa", "Kharkiv", "Dnipro", "Kyiv"])},
            CASE WHEN {linked} THEN 5000000000 + n END,
            CASE WHEN {linked} AND {mix("n", 7, 2)} = 0 THEN 'user_' || n END,
            CASE WHEN {linked} THEN {ago(mix("n", 8, 1500000))} END,
            CASE WHEN {opted_in} THEN 'opted_in' WHEN {linked} THEN 'opted_out'
                 ELSE 'unknown' END,
            CASE WHEN {opted_in} THEN 'start' END,
            CASE WHEN {opted_in} THEN {ago(mix("n", 8, 1500000))} END,
            CASE WHEN {linked} AND n > {VIPS} AND {mix("n", 10, 33)} = 0
                 THEN {ago(mix("n", 11, 100000))} END,
            FALSE,
            CASE WHEN {mix("n", 12, 5)} = 0 THEN {mix("n", 13, 11)} END,
            {ago("1600000 + " + mix("n", 14, 50000))}, {ago(mix("n", 15, 20000))}
        FROM nums WHERE n <= {n}""",
        f"""INSERT INTO customer_tags (shop_id, customer_id, tag)
        SELECT 1, n, {pick(mix("n", 60, 9), ["vip", "wholesale", "newsletter"] + [None] * 6)}
        FROM nums WHERE n <= {n} AND {mix("n", 60, 9)} < 3""",
        f"""INSERT INTO products (shop_id, external_id, title, category, url, price, currency,
            updated_at)
        SELECT 1, 'p' || (n - 1), 'Product ' || (n - 1), 'category-' || ((n - 1) % 20),
            'https://kvitka.example/p/' || (n - 1), {money("50 + n * 7 % 2000")}, 'UAH', :now
        FROM nums WHERE n <= 500""",
        # ~3 orders a customer (4% guests), 5% cancelled, 60% from a cart
        f"""INSERT INTO orders (id, shop_id, customer_id, external_id, cart_token, status, total,
            currency, discount_codes, placed_at, updated_at)
        SELECT n, 1, {buyer}, 'o' || n,
            CASE WHEN n <= {carts} AND {converted} THEN 'cart-' || n END,
            CASE WHEN {mix("n", 24, 20)} = 0 THEN 'cancelled' ELSE 'placed' END,
            {money("100 + " + mix("n", 22, 4900))}, 'UAH', {js("'[]'")}, {placed}, {placed}
        FROM nums WHERE n <= {orders}""",
        f"""INSERT INTO order_items (shop_id, order_id, product_external_id, title, category,
            price, quantity)
        SELECT 1, n, 'p' || {mix("n", 31, 500)}, 'Product ' || {mix("n", 31, 500)},
            'category-' || ({mix("n", 31, 500)} % 20), {money("50 + " + mix("n", 33, 2000))},
            1 + {mix("n", 34, 3)}
        FROM nums WHERE n <= {orders}""",
        f"""INSERT INTO order_items (shop_id, order_id, product_external_id, title, category,
            price, quantity)
        SELECT 1, n, 'p' || {mix("n", 35, 500)}, 'Product ' || {mix("n", 35, 500)},
            'category-' || ({mix("n", 35, 500)} % 20), {money("50 + " + mix("n", 36, 2000))}, 1
        FROM nums WHERE n <= {orders} AND n % 2 = 0""",
        f"""INSERT INTO carts (id, shop_id, customer_id, token, status, currency, total,
            recovery_url, order_id, created_at, updated_at)
        SELECT n, 1, {buyer}, 'cart-' || n,
            CASE WHEN {converted} THEN 'converted' WHEN {mix("n", 30, 10)} < 8 THEN 'open'
                 WHEN {mix("n", 30, 10)} < 9 THEN 'emptied' ELSE 'replaced' END,
            'UAH', {money("100 + " + mix("n", 22, 4900))},
            'https://kvitka.example/cart/' || n, CASE WHEN {converted} THEN n END,
            {ago("90 + " + mix("n", 23, 3 * 525600))}, {ago("30 + " + mix("n", 23, 3 * 525600))}
        FROM nums WHERE n <= {carts}""",
        f"""INSERT INTO cart_items (shop_id, cart_id, position, product_external_id, title,
            category, price, quantity, url)
        SELECT 1, n, 0, 'p' || {mix("n", 31, 500)}, 'Product ' || {mix("n", 31, 500)},
            'category-' || ({mix("n", 31, 500)} % 20), {money("50 + " + mix("n", 33, 2000))}, 1,
            'https://kvitka.example/p/' || {mix("n", 31, 500)}
        FROM nums WHERE n <= {carts}""",
        # the event log: linked, carts, orders, product views, NPS answers
        f"""INSERT INTO customer_events (shop_id, customer_id, type, payload, source, occurred_at)
        SELECT 1, id, 'telegram_linked', {js("'{}'")}, 'telegram', linked_at
        FROM customers WHERE shop_id = 1 AND linked_at IS NOT NULL""",
        f"""INSERT INTO customer_events (shop_id, customer_id, type, payload, source, occurred_at)
        SELECT 1, customer_id, 'cart_updated', {cart_payload},
            'shop', created_at
        FROM carts WHERE shop_id = 1 AND customer_id IS NOT NULL""",
        f"""INSERT INTO customer_events (shop_id, customer_id, type, payload, source, occurred_at)
        SELECT 1, customer_id, 'order_placed',
            {order_payload}, 'shop', placed_at
        FROM orders WHERE shop_id = 1 AND customer_id IS NOT NULL""",
        f"""INSERT INTO customer_events (shop_id, customer_id, type, payload, source, occurred_at)
        SELECT 1, 1 + {mix("n", 40, n)}, 'product_viewed',
            {viewed_payload}, 'shop',
            {ago(mix("n", 42, 525600))}
        FROM nums WHERE n <= {2 * n}""",
        f"""INSERT INTO customer_events (shop_id, customer_id, type, payload, source, occurred_at)
        SELECT 1, id, 'nps_answered', {nps_payload}, 'telegram',
            {ago(mix("id", 43, 365 * 1440))}
        FROM customers WHERE shop_id = 1 AND nps_score IS NOT NULL""",
        # the flows' messages: ~3 a customer (150 for each VIP)
        f"""INSERT INTO outbox (shop_id, customer_id, kind, topic, lane, priority, payload,
            dedupe_key, due_at, state, skip_reason, attempts, last_error, telegram_message_id,
            sent_at, at_least_once, created_at, updated_at)
        SELECT 1,
            CASE WHEN n <= {VIPS * 150} THEN 1 + n % {VIPS} ELSE 1 + {mix("n", 50, n)} END,
            {pick(kind_at, [k[0] for k in kinds])}, {pick(kind_at, [k[1] for k in kinds])},
            {pick(kind_at, [k[2] for k in kinds])},
            CASE {kind_at} {" ".join(f"WHEN {i} THEN {k[3]}" for i, k in enumerate(kinds))} END,
            {js("'{}'")}, 'bench:' || n, {due}, {state},
            CASE WHEN {roll} >= 78 AND {roll} < 88 THEN {skipped}
                 WHEN {roll} >= 88 AND {roll} < 93 THEN {cancelled} END,
            CASE WHEN {roll} >= 98 THEN 0 ELSE 1 END,
            CASE WHEN {roll} >= 96 AND {roll} < 98 THEN 'Telegram server says: Bad Gateway' END,
            CASE WHEN {roll} < 78 THEN n END,
            CASE WHEN {roll} < 78 THEN {due} END, FALSE, {due}, {due}
        FROM nums WHERE n <= {flows}""",
        "ANALYZE",  # the statements below join what was just written
        """INSERT INTO clicks (shop_id, outbox_id, customer_id, target, clicked_at)
        SELECT shop_id, id, customer_id, 'button', sent_at FROM outbox
        WHERE shop_id = 1 AND state = 'sent' AND id % 11 = 0""",
        """INSERT INTO exclusions (shop_id, customer_id, topic, outbox_id, created_at)
        SELECT 1, customer_id, 'winback', min(id), min(sent_at) FROM outbox
        WHERE shop_id = 1 AND kind = 'winback.offer' AND state = 'sent' AND id % 9 = 0
        GROUP BY customer_id""",
        """UPDATE orders SET attributed_outbox_id = (
            SELECT max(o.id) FROM outbox o
            WHERE o.shop_id = 1 AND o.customer_id = orders.customer_id AND o.state = 'sent')
        WHERE shop_id = 1 AND id % 12 = 0 AND customer_id IS NOT NULL""",
        # a promo pool: 20,000 codes, 8,000 given out
        """INSERT INTO promo_pools (id, shop_id, name, pattern, created_at)
        VALUES (1, 1, 'spring', NULL, :now)""",
        f"""INSERT INTO promo_codes (shop_id, pool_id, code, customer_id, issued_at, created_at)
        SELECT 1, 1, 'SPRING-' || n,
            CASE WHEN n <= {VIPS * 5} THEN 1 + n % {VIPS}
                 WHEN n <= 8000 THEN 1 + {mix("n", 61, n)} END,
            CASE WHEN n <= 8000 THEN {ago(mix("n", 62, 525600))} END, {ago("600000")}
        FROM nums WHERE n <= 20000""",
        # support: 2,000 conversations (10% open) of 6 messages
        f"""INSERT INTO support_conversations (id, shop_id, customer_id, telegram_user_id, name,
            locale, state, opened_at, last_customer_at, first_response_at, last_answer_at,
            undelivered, closed_at)
        SELECT n, 1, 1 + (n * 37) % {n}, 5000000001 + (n * 37) % {n},
            {pick(mix("n", 70, 16), FIRST)}, 'uk',
            CASE WHEN n % 10 = 0 THEN 'open' ELSE 'closed' END,
            {ago("60 + " + mix("n", 71, 525600))}, {ago(mix("n", 71, 525600))},
            {ago("50 + " + mix("n", 71, 525600))}, {ago("10 + " + mix("n", 71, 525600))}, 0,
            CASE WHEN n % 10 <> 0 THEN {ago(mix("n", 71, 525600))} END
        FROM nums WHERE n <= {talks}""",
        """INSERT INTO support_messages (shop_id, conversation_id, direction, content, text,
            source_chat_id, source_message_id, relay, attempts, created_at)
        SELECT 1, c.id, CASE WHEN k.n % 2 = 1 THEN 'in' ELSE 'out' END, 'text',
            'Message ' || k.n || ' about order o' || c.id, c.telegram_user_id,
            c.id * 10 + k.n, 'done', 1, c.opened_at
        FROM (SELECT n FROM nums WHERE n <= 6) AS k CROSS JOIN support_conversations AS c
        WHERE c.shop_id = 1""",
    ]


NUMBERS = {
    True: "CREATE TEMPORARY TABLE nums AS SELECT g AS n FROM generate_series(1, :top) AS g",
    False: """CREATE TEMPORARY TABLE nums AS WITH RECURSIVE g(n) AS
        (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :top) SELECT n FROM g""",
}


async def sync_sequences(conn: Any) -> None:
    """PostgreSQL: move each id sequence past the ids the fill wrote itself."""
    from sqlalchemy import text
    from sqlmodel import SQLModel

    for table in SQLModel.metadata.sorted_tables:
        if "id" in table.c and table.c.id.primary_key:
            await conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'),"
                    f" coalesce(max(id), 0) + 1, false) FROM {table.name}"
                )
            )


async def analyze(engine: Any) -> None:
    """Refresh the planner's statistics (VACUUM ANALYZE outside a transaction on PostgreSQL)."""
    from sqlalchemy import text

    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("COMMIT"))
            await conn.execute(text("VACUUM ANALYZE"))
        else:
            await conn.execute(text("ANALYZE"))
            await conn.commit()


def marker(customers: int) -> str:
    """The main shop's name once its history is complete (what `--reuse` looks for)."""
    return f"Kvitka ({customers} customers)"


async def ready(engine: Any, customers: int) -> bool:
    """Tell whether the database already holds a complete bench shop of this size."""
    from sqlalchemy import text

    async with engine.connect() as conn:
        try:
            name = await conn.scalar(text("SELECT name FROM shops WHERE id = 1"))
        except Exception:  # no schema yet
            return False
    return name == marker(customers)


async def fill(url: str, customers: int) -> dict[str, float]:
    """Migrate a fresh database and generate the shop; return the seconds each part took."""
    from sqlalchemy import text

    from bot.db import create_engine, session_factory, transaction
    from bot.lifecycle import refresh_metrics
    from bot.migrate import upgrade_engine
    from bot.store.segments import save_segment
    from bot.store.shops import create_shop

    engine = create_engine(url)
    postgres = engine.dialect.name == "postgresql"
    took: dict[str, float] = {}
    started = time.perf_counter()
    await upgrade_engine(engine)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    async with transaction(session_factory(engine)) as session:
        await create_shop(
            session=session,
            name="Kvitka",
            platform="generic",
            currency="UAH",
            country="UA",
            default_locale="uk",
            timezone="Europe/Kyiv",
            bot_token=BOT_TOKEN,
            bot_username="kvitka_bot",
            settings={"languages": "uk,ru,en,pl"},
            now=now,
        )
        for name, locale in (("Other shop", "pl"), ("Third shop", "en")):
            await create_shop(
                session=session, name=name, platform="shopify", default_locale=locale, now=now
            )
    q = Sql(postgres)
    bound = now if postgres else now.replace(tzinfo=None).isoformat(sep=" ")
    async with engine.begin() as conn:
        await conn.execute(text(NUMBERS[postgres]), {"top": max(3 * customers, 20000)})
        for statement in fill_statements(q, customers):
            await conn.execute(text(statement), {"now": bound})
        if postgres:
            await sync_sequences(conn)
    await analyze(engine)
    took["generate"] = time.perf_counter() - started
    sessions = session_factory(engine)
    began = time.perf_counter()
    async with transaction(sessions) as session:
        for name, definition in SEGMENTS.items():
            await save_segment(
                session=session, shop_id=1, name=name, definition=definition, now=now
            )
        await refresh_metrics(session=session, shop_id=1, now=now)
    took["metrics refresh"] = time.perf_counter() - began
    began = time.perf_counter()
    await campaigns(engine, sessions, q, now, bound)
    took["campaigns"] = time.perf_counter() - began
    await analyze(engine)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE shops SET name = :name WHERE id = 1"), {"name": marker(customers)}
        )
    took["total"] = time.perf_counter() - started
    await engine.dispose()
    return took


async def campaigns(engine: Any, sessions: Any, q: Sql, now: datetime, bound: Any) -> None:
    """Send the big and the small campaign through the service, ten and three days ago, with
    their outcomes; leave a draft and a cancelled one."""
    from bot.db import transaction
    from bot.models import Shop
    from bot.store import campaigns as store

    for raw, days in ((SPRING, 10), (LVIV, 3)):
        started = now - timedelta(days=days)
        async with transaction(sessions) as session:
            made = await store.create_campaign(session=session, shop_id=1, raw=raw, now=started)
            shop = await session.get(Shop, 1)
            await store.start(session=session, shop=shop, campaign=made, now=started)
        await store.fan_out(
            sessions=sessions, shop_id=1, campaign_id=made.id, now=lambda s=started: s
        )
        await outcomes(engine, q, bound)
        if raw is SPRING:  # a day later: the follow-up to those who did not click
            while True:
                async with transaction(sessions) as session:
                    found = await store.get_campaign(
                        session=session, shop_id=1, campaign_id=made.id
                    )
                    planned = await store.plan_follow_ups(
                        session=session, campaign=found, now=started + timedelta(days=1)
                    )
                if not planned:
                    break
            await outcomes(engine, q, bound)
    async with transaction(sessions) as session:
        await store.create_campaign(session=session, shop_id=1, raw=SUMMER, now=now)
        dropped = await store.create_campaign(
            session=session, shop_id=1, raw=dict(SUMMER, name="Autumn (cancelled)"), now=now
        )
        await store.cancel(session=session, campaign=dropped, now=now)


async def outcomes(engine: Any, q: Sql, bound: Any) -> None:
    """Settle the campaign rows still waiting the way a send goes: 86% sent, 9% skipped, 3%
    blocked, 1% failed, 1% still waiting; then clicks, "not interested" and orders."""
    from sqlalchemy import text

    waiting = "shop_id = 1 AND kind = 'campaign.message' AND state = 'scheduled'"
    roll = "(id * 7 % 100)"
    statements = [
        f"""UPDATE outbox SET
            state = CASE WHEN {roll} < 86 THEN 'sent' WHEN {roll} < 95 THEN 'skipped'
                         WHEN {roll} < 98 THEN 'blocked' WHEN {roll} < 99 THEN 'failed'
                         ELSE 'scheduled' END,
            skip_reason = CASE WHEN {roll} >= 86 AND {roll} < 95 THEN
                {q.pick("id % 4", ["frequency_cap", "excluded", "unreachable", "detractor"])} END,
            sent_at = CASE WHEN {roll} < 86 THEN due_at END,
            telegram_message_id = CASE WHEN {roll} < 86 THEN id END,
            attempts = CASE WHEN {roll} < 99 THEN 1 ELSE 0 END
        WHERE {waiting} AND sent_at IS NULL AND attempts = 0""",
        """INSERT INTO clicks (shop_id, outbox_id, customer_id, target, clicked_at)
        SELECT o.shop_id, o.id, o.customer_id, 'button', o.sent_at FROM outbox o
        WHERE o.shop_id = 1 AND o.kind = 'campaign.message' AND o.state = 'sent'
            AND o.id % 16 = 0
            AND NOT EXISTS (SELECT 1 FROM clicks c WHERE c.outbox_id = o.id)""",
        """INSERT INTO exclusions (shop_id, customer_id, topic, outbox_id, created_at)
        SELECT o.shop_id, o.customer_id, o.topic, o.id, o.sent_at FROM outbox o
        WHERE o.shop_id = 1 AND o.kind = 'campaign.message' AND o.state = 'sent'
            AND o.id % 97 = 0
            AND NOT EXISTS (SELECT 1 FROM exclusions x WHERE x.shop_id = 1
                AND x.customer_id = o.customer_id AND x.topic = o.topic)""",
        f"""INSERT INTO orders (shop_id, customer_id, external_id, status, total, currency,
            discount_codes, attributed_outbox_id, placed_at, updated_at)
        SELECT o.shop_id, o.customer_id, 'camp-' || o.id, 'placed',
            {q.money("200 + o.id % 3000")}, 'UAH', {q.json("'[]'")}, o.id,
            {q.ago("1440 + o.id % 2880")}, {q.ago("1440")}
        FROM outbox o
        WHERE o.shop_id = 1 AND o.kind = 'campaign.message' AND o.state = 'sent'
            AND o.id % 40 = 0
            AND NOT EXISTS (SELECT 1 FROM orders x WHERE x.shop_id = 1
                AND x.external_id = 'camp-' || o.id)""",
    ]
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement), {"now": bound})


# ------------------------------------------------------------------------------ the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(database_url: str, port: int) -> None:
    """Run the real app, background workers off (child process)."""
    from aiohttp import web
    from pydantic import SecretStr

    from bot.app import build_app
    from bot.config import Settings

    settings = Settings(
        database_url=database_url,
        secret_key=SecretStr(KEY),
        telegram_mode="off",
    )
    web.run_app(
        build_app(settings, workers=False),
        host="127.0.0.1",
        port=port,
        print=None,
        access_log=None,
    )


# ------------------------------------------------------------------------------ the client


async def shop_token(url: str) -> str:
    """Make a fresh token of the bench shop (as `nudge token create --shop 1`)."""
    from bot.db import create_engine, session_factory, transaction
    from bot.store.tokens import create_token

    engine = create_engine(url)
    async with transaction(session_factory(engine)) as session:
        _record, secret = await create_token(
            session=session, now=datetime.now(UTC), shop_id=1, name="bench"
        )
    await engine.dispose()
    return secret


async def targets(url: str) -> dict[str, Any]:
    """Pick what the pages look at: the busiest customer, one to search for, the big campaign."""
    from sqlalchemy import text

    from bot.db import create_engine

    engine = create_engine(url)
    async with engine.connect() as conn:
        busiest = (
            await conn.execute(
                text(
                    "SELECT customer_id, count(*) FROM outbox WHERE shop_id = 1"
                    " GROUP BY customer_id ORDER BY count(*) DESC, customer_id LIMIT 1"
                )
            )
        ).one()
        middle = (
            await conn.execute(
                text(
                    "SELECT id, first_name, last_name, email, phone, telegram_username"
                    " FROM customers WHERE shop_id = 1 AND email IS NOT NULL"
                    " AND phone IS NOT NULL AND telegram_username IS NOT NULL"
                    " AND id > (SELECT max(id) / 2 FROM customers WHERE shop_id = 1)"
                    " ORDER BY id LIMIT 1"
                )
            )
        ).one()
        big = (
            await conn.execute(
                text(
                    "SELECT c.id, count(r.id) FROM campaigns c JOIN campaign_recipients r"
                    " ON r.campaign_id = c.id WHERE c.shop_id = 1 GROUP BY c.id"
                    " ORDER BY count(r.id) DESC LIMIT 1"
                )
            )
        ).one()
        sizes = {
            table: await conn.scalar(text(f"SELECT count(*) FROM {table} WHERE shop_id = 1"))
            for table in (
                "customers",
                "orders",
                "order_items",
                "carts",
                "customer_events",
                "outbox",
                "clicks",
                "exclusions",
                "promo_codes",
                "campaign_recipients",
                "customer_metrics",
                "support_conversations",
                "support_messages",
            )
        }
    await engine.dispose()
    return {
        "busiest": busiest[0],
        "busiest_messages": busiest[1],
        "search": middle,
        "campaign": big[0],
        "campaign_recipients": big[1],
        "sizes": sizes,
    }


def hidden(html: str, name: str = "csrf") -> str:
    """Return a hidden input's value from a page."""
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    if not match:
        raise RuntimeError(f"no {name} on the page: {html[:300]}")
    return match.group(1)


def pages(found: dict[str, Any]) -> list[tuple[str, str, str, dict[str, str] | None]]:
    """The pages to time: (name, method, path, form)."""
    shop = "/console/shops/1"
    who = found["search"]
    card = f"{shop}/customers/{found['busiest']}"
    return [
        ("shops", "GET", "/console/shops", None),
        ("shop", "GET", shop, None),
        ("customers", "GET", f"{shop}/customers", None),
        ("search name", "GET", f"{shop}/customers?q={who.first_name} {who.last_name}", None),
        ("search phone", "GET", f"{shop}/customers?q={who.phone}", None),
        ("search email", "GET", f"{shop}/customers?q={who.email}", None),
        ("search @username", "GET", f"{shop}/customers?q=@{who.telegram_username}", None),
        ("customer card", "GET", card, None),
        ("export", "GET", f"{card}/export", None),
        ("campaigns", "GET", f"{shop}/campaigns", None),
        ("campaign", "GET", f"{shop}/campaigns/{found['campaign']}", None),
        ("campaign editor", "GET", f"{shop}/campaigns/new", None),
        ("audience count", "POST", f"{shop}/audience", AUDIENCE_FORM),
        ("reports", "GET", f"{shop}/reports", None),
        ("support", "GET", f"{shop}/support", None),
    ]


def nearest_rank(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted values by the nearest-rank method (p95 of 20: the 19th)."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def time_pages(
    port: int, server: subprocess.Popen[bytes], token: str, found: dict[str, Any], requests: int
) -> list[dict]:
    """Wait for the app, log in with the token, then time every page; a page that does not
    answer 200 (the support desk before it exists: 404) is left out."""
    import aiohttp

    await wait_ready(port, server, tries=2400)  # importing aiogram alone takes 5-10 s here
    base = f"http://127.0.0.1:{port}"
    results = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(base + "/console/login") as r:
            login = hidden(await r.text())
        async with http.post(
            base + "/console/login", data={"token": token, "csrf": login}, allow_redirects=False
        ) as r:
            if r.status != 303:
                raise RuntimeError(f"login failed: {r.status} {await r.text()}")
        async with http.get(base + "/console/shops/1/campaigns/new") as r:
            csrf = hidden(await r.text())
        for name, method, path, form in pages(found):
            data = {**form, "csrf": csrf} if form else None
            took, size, status = [], 0, 0
            for i in range(2 + requests):
                began = time.perf_counter()
                async with http.request(method, base + path, data=data) as r:
                    body = await r.read()
                    status = r.status
                elapsed = (time.perf_counter() - began) * 1000
                if status != 200:
                    break
                size = len(body)
                if i >= 2:
                    took.append(elapsed)
            if status != 200:
                results.append({"page": name, "path": path, "status": status})
                continue
            ordered = sorted(took)
            results.append(
                {
                    "page": name,
                    "path": path,
                    "status": status,
                    "bytes": size,
                    "p50": statistics.median(ordered),
                    "p95": nearest_rank(ordered, 0.95),
                    "max": ordered[-1],
                }
            )
    return results


# ------------------------------------------------------------------------------- the runs


async def pg_database(pg_url: str, name: str, *, create: bool) -> str:
    """Create (or drop, with create=False) a PostgreSQL database; return its URL."""
    import asyncpg
    from sqlalchemy.engine import make_url

    base = make_url(pg_url)
    admin = await asyncpg.connect(
        host=base.host,
        port=base.port or 5432,
        user=base.username,
        password=base.password,
        database=base.database,
    )
    try:
        known = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if create and not known:
            await admin.execute(f'CREATE DATABASE "{name}"')
        if not create:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    return base.set(database=name).render_as_string(hide_password=False)


async def prepare(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Reuse a complete bench shop (migrated to head, statistics fresh) or generate one; then
    pick the pages' subjects and make a shop token."""
    from bot.db import create_engine
    from bot.migrate import upgrade_engine

    took: dict[str, float] = {}
    engine = create_engine(url)
    try:
        if args.reuse and await ready(engine, args.customers):
            began = time.perf_counter()
            await upgrade_engine(engine)
            await analyze(engine)
            took = {"reused (migrate + analyze)": time.perf_counter() - began}
    finally:
        await engine.dispose()
    if not took:
        took = await fill(url, args.customers)
    return {"took": took, "found": await targets(url), "token": await shop_token(url)}


def run_backend(backend: str, args: argparse.Namespace) -> list[dict]:
    """Prepare the database, start the app on it in its own process and time the pages."""
    folder = None
    if backend == "sqlite":
        if args.reuse:
            url = f"sqlite+aiosqlite:///{args.sqlite_file}"
        else:
            folder = tempfile.TemporaryDirectory(prefix="nudge-bench-console-")
            url = f"sqlite+aiosqlite:///{folder.name}/console.db"
    else:
        name = args.pg_db if args.reuse else f"nudge_bench_console_{uuid.uuid4().hex[:8]}"
        url = asyncio.run(pg_database(args.pg_url, name, create=True))
    try:
        if args.reuse and not asyncio.run(_is_ready(url, args)):  # start afresh
            if backend == "sqlite":
                for suffix in ("", "-wal", "-shm"):
                    Path(args.sqlite_file + suffix).unlink(missing_ok=True)
            else:
                asyncio.run(pg_database(args.pg_url, args.pg_db, create=False))
                asyncio.run(pg_database(args.pg_url, args.pg_db, create=True))
        made = asyncio.run(prepare(url, args))
        found = made["found"]
        print(f"\n{backend}: " + ", ".join(f"{k} {v:.1f} s" for k, v in made["took"].items()))
        print("  rows of the shop: " + ", ".join(f"{k} {v:,}" for k, v in found["sizes"].items()))
        print(
            f"  customer card: customer {found['busiest']} ({found['busiest_messages']} "
            f"messages); campaign {found['campaign']} ({found['campaign_recipients']:,} "
            "recipients)"
        )
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", url, str(port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        try:
            load = os.getloadavg()
            rows = asyncio.run(time_pages(port, server, made["token"], found, args.requests))
            print(f"  load average before the timing: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        finally:
            server.terminate()
            server.wait(timeout=15)
    finally:
        if backend != "sqlite" and not args.reuse:
            asyncio.run(pg_database(args.pg_url, url.rsplit("/", 1)[1], create=False))
        if folder is not None:
            folder.cleanup()
    for row in rows:
        row["backend"] = backend
    return rows


async def _is_ready(url: str, args: argparse.Namespace) -> bool:
    from bot.db import create_engine

    engine = create_engine(url)
    try:
        return await ready(engine, args.customers)
    finally:
        await engine.dispose()


def report(rows: list[dict], requests: int) -> None:
    """Print the table: p50, p95 and max of each page and whether p95 meets the target."""
    print(f"\n{requests} timed requests a page after 2 warm-up; target p95 < {TARGET_MS:.0f} ms")
    print(f"{'backend':<11}{'page':<18}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}  {'met':<5}bytes")
    for row in rows:
        if "p95" not in row:
            print(
                f"{row['backend']:<11}{row['page']:<18}"
                f"  skipped: {row['path']} answered {row['status']}"
            )
            continue
        met = "yes" if row["p95"] < TARGET_MS else "NO"
        print(
            f"{row['backend']:<11}{row['page']:<18}{row['p50']:>8.1f}{row['p95']:>8.1f}"
            f"{row['max']:>8.1f}  {met:<5}{row['bytes']:,}"
        )


def summary(rows: list[dict]) -> list[dict]:
    """The p95 figures as the rows bench/run_all.py collects."""
    return [
        {
            "benchmark": "console",
            "figure": f"{row['page']} p95 ({row['backend']})",
            "value": round(row["p95"], 1),
            "unit": "ms",
            "target": f"< {TARGET_MS:.0f}",
            "met": row["p95"] < TARGET_MS,
        }
        for row in rows
        if "p95" in row
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--requests", type=int, default=20, help="timed requests a page")
    parser.add_argument("--reuse", action="store_true", help="keep the generated shop")
    parser.add_argument("--pg-db", default="nudge_bench_console")
    parser.add_argument("--sqlite-file", default="/tmp/nudge_bench_console.db")
    parser.add_argument("--summary", help="write the p95 figures as JSON rows to this file")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "NUDGE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    print(f"{args.customers:,} customers; load average {os.getloadavg()}")
    rows: list[dict] = []
    for backend in args.backends.split(","):
        measured = run_backend(backend.strip(), args)
        report(measured, args.requests)
        rows += measured
    if args.summary:
        Path(args.summary).write_text(json.dumps(summary(rows), indent=2) + "\n")


if __name__ == "__main__":
    main()

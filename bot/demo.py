"""`nudge demo`: the abandoned-cart story against the Telegram sandbox, printed as it happens.

Everything is real but the clock: SQLite in a temporary directory migrated with Alembic, the
web app on a local port, Shopify's signed webhooks over HTTP, the inbox worker, the outbox
dispatcher, and the bot talking Bot API to the sandbox. The clock is advanced by hand so an
hour's delay or a three-day follow-up takes no time.
"""

from __future__ import annotations

import copy
import html
import json
import re
import tempfile
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import click

from bot.clock import ManualClock
from bot.db import create_engine, transaction
from bot.linking import deep_link, make_link_token
from bot.migrate import upgrade_engine
from bot.models import Customer, Shop
from bot.playground import Playground
from bot.sandbox import Customer as Chat
from bot.sandbox import TranscriptEntry
from bot.store.codes import check_pattern, codes_of, ensure_pool
from bot.store.customers import list_events
from bot.store.offers import list_exclusions
from bot.store.reports import flow_report
from bot.store.shops import update_shop

SAMPLES = Path(__file__).resolve().parent / "demo_data"

CAST = {
    "en": {
        "bot": "bloom_linen_bot",
        "shop": "Bloom & Linen",
        "currency": "USD",
        "country": "US",
        "tz": "America/New_York",
        "first": ("Emma", "Brown", "emma@example.com"),
        "second": ("Jack", "Wilson", "jack@example.com"),
        "items": [
            ("Linen dress", "89.00", 1, "Dresses"),
            ("Silk scarf", "24.50", 2, "Accessories"),
        ],
        "bag": [("Leather tote bag", "129.00", 1, "Bags")],
    },
    "ru": {
        "bot": "zerno_coffee_bot",
        "shop": "Зерно",
        "currency": "KZT",
        "country": "KZ",
        "tz": "Asia/Almaty",
        "first": ("Ольга", "Смирнова", "olga@example.com"),
        "second": ("Андрей", "Ким", "andrey@example.com"),
        "items": [
            ("Кофе «Эфиопия Сидамо», 250 г", "4900.00", 2, "Кофе"),
            ("Кемекс на 6 чашек", "29900.00", 1, "Посуда"),
        ],
        "bag": [("Кофемолка ручная", "17900.00", 1, "Техника")],
    },
    "uk": {
        "bot": "kvitka_shop_bot",
        "shop": "Квітка",
        "currency": "UAH",
        "country": "UA",
        "tz": "Europe/Kyiv",
        "first": ("Олена", "Коваль", "olena@example.com"),
        "second": ("Тарас", "Мельник", "taras@example.com"),
        "items": [
            ("Лляна сукня", "1450.00", 1, "Сукні"),
            ("Шовкова хустка", "390.50", 2, "Аксесуари"),
            ("Соломʼяний капелюх", "620.00", 1, "Аксесуари"),
            ("Сандалі шкіряні", "1890.00", 1, "Взуття"),
            ("Сумка-шопер", "540.00", 1, "Сумки"),
            ("Шкарпетки лляні", "120.00", 3, "Аксесуари"),
            ("Пояс плетений", "310.00", 1, "Аксесуари"),
        ],
        "bag": [("Шкіряна сумка", "2100.00", 1, "Сумки")],
    },
    "pl": {
        "bot": "len_i_jedwab_bot",
        "shop": "Len i Jedwab",
        "currency": "PLN",
        "country": "PL",
        "tz": "Europe/Warsaw",
        "first": ("Anna", "Nowak", "anna@example.com"),
        "second": ("Piotr", "Wiśniewski", "piotr@example.com"),
        "items": [
            ("Lniana sukienka", "329.00", 1, "Sukienki"),
            ("Jedwabna apaszka", "89.99", 2, "Dodatki"),
        ],
        "bag": [("Skórzana torba", "459.00", 1, "Torby")],
    },
}


class Narrator:
    """Print the story: what the shop owner does, what the service does, what customers see."""

    def __init__(self) -> None:
        self._seen: dict[int, set[tuple[int, int]]] = {}

    def step(self, text: str) -> None:
        """Print a narration line."""
        click.secho(f"\n▸ {text}", fg="cyan", bold=True)

    def note(self, text: str) -> None:
        """Print a detail line."""
        click.echo(f"  {text}")

    def chat(self, chat: Chat, who: str) -> None:
        """Print the bot messages of a chat that were not printed yet (or changed since)."""
        seen = self._seen.setdefault(chat.chat_id, set())
        for entry in chat.bot_messages():
            key = (entry.message_id, len(entry.history))
            if key in seen:
                continue
            seen.add(key)
            self._message(entry, who)

    def _message(self, entry: TranscriptEntry, who: str) -> None:
        label = "edited" if entry.edited else "bot"
        click.secho(
            f"  ┌─ {label} → {who}" + (f"  [photo: {entry.photo_source}]" if entry.photo else ""),
            fg="green",
        )
        for line in _plain(entry.text or "").splitlines() or [""]:
            click.echo(f"  │ {line}")
        for row in entry.buttons:
            click.echo("  │ " + "  ".join(f"[{text}]" for text, _ in row))
        click.secho("  └─", fg="green")


def _plain(text: str) -> str:
    return html.unescape(re.sub(r"</?(b|i|code|a)[^>]*>", "", text))


def _checkout(
    clock: ManualClock, who: tuple[str, str, str], token: str, items: list[Any], currency: str
) -> dict[str, Any]:
    payload = copy.deepcopy(json.loads((SAMPLES / "shopify_checkouts_update.json").read_text()))
    first, last, email = who
    payload.update(
        token=token,
        cart_token=f"c-{token}",
        email=email,
        currency=currency,
        presentment_currency=currency,
        completed_at=None,
        updated_at=clock.now().isoformat(),
        abandoned_checkout_url=f"https://shop.example/checkouts/{token}/recover",
    )
    payload["customer"].update(_customer_ids(email), email=email, first_name=first, last_name=last)
    base = payload["line_items"][0]
    payload["line_items"] = [
        {
            **base,
            "title": title,
            "presentment_title": title,
            "price": price,
            "quantity": qty,
            "product_type": category,
            "product_id": 100 + n,
            "variant_id": 200 + n,
            "key": f"l{n}",
        }
        for n, (title, price, qty, category) in enumerate(items)
    ]
    total = sum(float(p) * q for _, p, q, _ in items)
    payload["total_price"] = payload["subtotal_price"] = payload["total_line_items_price"] = (
        f"{total:.2f}"
    )
    return payload


def _customer_ids(email: str) -> dict[str, Any]:
    number = zlib.crc32(email.encode()) % 10**9
    return {"id": number, "admin_graphql_api_id": f"gid://shopify/Customer/{number}"}


def _sample(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((SAMPLES / name).read_text()))


def _customer_created(
    clock: ManualClock, who: tuple[str, str, str], locale: str
) -> dict[str, Any]:
    first, last, email = who
    payload = _sample("shopify_customers_create.json")
    payload.update(
        _customer_ids(email),
        email=email,
        first_name=first,
        last_name=last,
        locale=locale,
        updated_at=clock.now().isoformat(),
        created_at=clock.now().isoformat(),
        phone=None,
    )
    return payload


def _order(
    clock: ManualClock,
    who: tuple[str, str, str],
    token: str,
    total: str,
    currency: str,
    order_id: int,
) -> dict[str, Any]:
    first, last, email = who
    payload = _sample("shopify_orders_create.json")
    now = clock.now().isoformat()
    payload.update(
        id=order_id,
        admin_graphql_api_id=f"gid://shopify/Order/{order_id}",
        checkout_token=token,
        cart_token=f"c-{token}",
        email=email,
        contact_email=email,
        total_price=total,
        currency=currency,
        presentment_currency=currency,
        created_at=now,
        updated_at=now,
        processed_at=now,
        cancelled_at=None,
    )
    payload["customer"].update(_customer_ids(email), email=email, first_name=first, last_name=last)
    return payload


async def run_demo(locale: str) -> None:
    """Run the story in one locale and print it."""
    cast = CAST[locale]
    say = Narrator()
    clock = ManualClock(datetime(2026, 3, 2, 13, 0, tzinfo=UTC))  # daytime in every cast's zone
    with tempfile.TemporaryDirectory(prefix="nudge-demo-") as folder:
        url = f"sqlite+aiosqlite:///{folder}/nudge.db"
        engine = create_engine(url)
        try:
            await upgrade_engine(engine)
            async with Playground(url, engine=engine, clock=clock) as pg:
                await _story(pg, cast, locale, say)
        finally:
            await engine.dispose()


async def _story(pg: Playground, cast: dict[str, Any], locale: str, say: Narrator) -> None:
    say.step(f"A shop owner connects their Shopify store (demo locale: {locale})")
    shop = await pg.add_shop(
        name=cast["shop"],
        platform="shopify",
        bot_username=cast["bot"],
        currency=cast["currency"],
        country=cast["country"],
        default_locale=locale,
        timezone=cast["tz"],
    )
    assert shop.id is not None
    async with transaction(pg.services.sessions) as session:
        await update_shop(
            session=session,
            shop_id=shop.id,
            key="catalog_url",
            value="https://shop.example/catalog",
        )
        await ensure_pool(
            session=session,
            shop_id=shop.id,
            name="followup",
            now=pg.clock.now(),
            pattern=check_pattern("HELLO-XXXXXX"),
        )
    say.note(f"shop #{shop.id} «{shop.name}», bot @{shop.bot_username}")
    say.note(f"webhook URL: {pg.settings.public_base}/hooks/shopify/{shop.id}")
    say.note("promo pool 'followup' generates personal codes like HELLO-XXXXXX")

    first_who, second_who = cast["first"], cast["second"]
    say.step(f"Shopify sends customers/create for {first_who[0]} (signed webhook)")
    status = await pg.deliver_webhook(
        shop, "customers/create", _customer_created(pg.clock, first_who, locale)
    )
    await pg.process_inbox()
    say.note(f"POST /hooks/shopify/{shop.id} → {status}; the inbox worker stored the profile")

    first = await _link(pg, shop, first_who, 1001, locale, say)
    say.step(f"{first_who[0]} starts a checkout and leaves ({len(cast['items'])} items)")
    status = await pg.deliver_webhook(
        shop,
        "checkouts/update",
        _checkout(pg.clock, first_who, "ck-first", cast["items"], cast["currency"]),
    )
    await pg.process_inbox()
    say.note(f"checkouts/update webhook → {status}; reminder scheduled for one hour of silence")

    pg.advance(timedelta(minutes=59))
    counts = await pg.dispatch()
    say.step(f"59 minutes later the dispatcher runs: {counts['sent']} sent (too early)")
    pg.advance(timedelta(minutes=1))
    counts = await pg.dispatch()
    say.step(f"One hour after the last cart update: {counts['sent']} reminder sent")
    say.chat(first, first_who[0])

    not_interested = first.last_message().buttons[-1][0][0]
    say.step(f"{first_who[0]} taps «{not_interested}»")
    tap = await first.tap(not_interested)
    await pg.settle()
    say.note(f"toast: «{tap.answer_text}»")
    say.chat(first, first_who[0])

    pg.advance(timedelta(days=3))
    counts = await pg.dispatch()
    say.step(f"Three days later the broader follow-up goes out ({counts['sent']} sent)")
    say.chat(first, first_who[0])

    say.step(f"{second_who[0]} links the shop's bot and leaves a cart too")
    status = await pg.deliver_webhook(
        shop, "customers/create", _customer_created(pg.clock, second_who, locale)
    )
    await pg.process_inbox()
    second = await _link(pg, shop, second_who, 1002, locale, say)
    await pg.deliver_webhook(
        shop,
        "checkouts/update",
        _checkout(pg.clock, second_who, "ck-second", cast["bag"], cast["currency"]),
    )
    await pg.process_inbox()
    pg.advance(timedelta(hours=1))
    await pg.dispatch()
    say.chat(second, second_who[0])
    order_button = second.last_message().buttons[0][-1][0]
    tap = await second.tap(order_button)
    async with aiohttp.ClientSession() as http, http.get(tap.url, allow_redirects=False) as r:
        where = r.headers.get("Location")
        say.step(f"{second_who[0]} taps «{order_button}»: GET /r/… → {r.status} {where}")
    pg.advance(timedelta(minutes=20))
    total = f"{sum(float(p) * q for _, p, q, _ in cast['bag']):.2f}"
    status = await pg.deliver_webhook(
        shop,
        "orders/create",
        _order(pg.clock, second_who, "ck-second", total, cast["currency"], 7001),
    )
    await pg.process_inbox()
    say.note(f"orders/create webhook → {status}; the order is credited to the reminder")

    say.step(f"The shop owner's report: nudge report --shop {shop.id} --flow cart")
    async with pg.services.sessions() as session:
        report = (await flow_report(session=session, shop_id=shop.id, flow="cart")).as_dict()
    report["currency"] = shop.currency
    from bot.cli.report import print_report

    print_report(report)
    await _profile(pg, shop, first_who, say)


async def _link(
    pg: Playground, shop: Shop, who: tuple[str, str, str], user_id: int, locale: str, say: Narrator
) -> Chat:
    from sqlalchemy import select

    async with pg.services.sessions() as session:
        customer = (
            await session.scalars(
                select(Customer).where(Customer.shop_id == shop.id, Customer.email == who[2])
            )
        ).one()
    token = make_link_token(
        secret_key=pg.services.secret_key,
        shop_id=shop.id,  # type: ignore[arg-type]
        customer_id=customer.id,
        now=pg.clock.now(),
    )  # type: ignore[arg-type]
    link = deep_link(shop.bot_username, token)
    say.step(f"{who[0]} opens the link from the shop: {link}")
    chat = pg.customer(shop, user_id=user_id, first_name=who[0], language_code=locale)
    await chat.start(token)
    await pg.settle()
    say.chat(chat, who[0])
    return chat


async def _profile(pg: Playground, shop: Shop, who: tuple[str, str, str], say: Narrator) -> None:
    from sqlalchemy import select

    say.step(f"{who[0]}'s profile")
    async with pg.services.sessions() as session:
        customer = (
            await session.scalars(
                select(Customer).where(Customer.shop_id == shop.id, Customer.email == who[2])
            )
        ).one()
        assert customer.id is not None and shop.id is not None
        events = await list_events(session=session, shop_id=shop.id, customer_id=customer.id)
        exclusions = await list_exclusions(
            session=session, shop_id=shop.id, customer_id=customer.id
        )
        codes = await codes_of(session=session, shop_id=shop.id, customer_id=customer.id)
    c = customer
    say.note(f"{c.first_name} {c.last_name} <{c.email}>, locale {c.locale}")
    say.note(f"Telegram chat {c.telegram_chat_id}, consent {c.consent} via {c.consent_source}")
    say.note("not interested in: " + (", ".join(e.topic for e in exclusions) or "-"))
    say.note("promo codes: " + (", ".join(c.code for c in codes) or "-"))
    say.note("events: " + ", ".join(e.type for e in reversed(events)))

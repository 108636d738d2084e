"""Birthdays: the birthday question, and a greeting with a personal promo code once a year.

The greeting is due at 10:00 in the customer's time zone (else the shop's) on the birthday, or
`birthday_days_before` days earlier; 29 February birthdays are greeted on 28 February in other
years. It is planned when a birthday is stored and by `plan_birthday_greetings`, which the
`birthday_scheduler` worker runs every hour for every shop; the dedupe key
`birthday:{customer}:{year}` makes it once a year however often that runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import sign_ref
from bot.dates import Birthday
from bot.db import transaction
from bot.messages import surveys as texts
from bot.messages.render import RenderContext, Rendered, register_kind
from bot.models import Consent, Customer, Lane, Outbox, Shop
from bot.services import Services
from bot.shop_settings import load_shop_settings
from bot.store.codes import issue_code
from bot.store.outbox import schedule
from bot.store.shops import list_shops
from bot.store.surveys import birthday_of
from bot.surveys import BIRTHDAY_KIND, zone_of

log = logging.getLogger(__name__)

GREETING_KIND = "birthday.greeting"
GREETING_TIME = time(10, 0)
HORIZON_DAYS = 1
SCAN_INTERVAL = timedelta(hours=1)


def next_greeting(birthday: Birthday, days_before: int, today: date) -> tuple[date, int]:
    """Return (the day to greet on, the year of the birthday celebrated), on or after today."""
    for year in (today.year, today.year + 1):
        greet = birthday.on_year(year) - timedelta(days=days_before)
        if greet >= today:
            return greet, year
    greet = birthday.on_year(today.year + 2) - timedelta(days=days_before)
    return greet, today.year + 2


def _reachable(customer: Customer) -> bool:
    return (
        customer.telegram_chat_id is not None
        and customer.consent == Consent.OPTED_IN
        and customer.redacted_hash is None
    )


async def plan_customer_greeting(
    *, session: AsyncSession, shop: Shop, customer: Customer, now: datetime
) -> Outbox | None:
    """Schedule the customer's next greeting when it is due within a day (once per year)."""
    birthday = birthday_of(customer)
    if birthday is None or not _reachable(customer) or customer.id is None or shop.id is None:
        return None
    days_before = load_shop_settings(shop.settings).birthday_days_before
    zone = zone_of(shop, customer)
    today = now.astimezone(zone).date()
    greet, year = next_greeting(birthday, days_before, today)
    if greet > today + timedelta(days=HORIZON_DAYS):
        return None
    due = max(datetime.combine(greet, GREETING_TIME, zone), now)
    return await schedule(
        session=session,
        shop_id=shop.id,
        customer_id=customer.id,
        kind=GREETING_KIND,
        dedupe_key=f"birthday:{customer.id}:{year}",
        due_at=due,
        lane=Lane.PROMO,
        payload={
            "month": birthday.month,
            "day": birthday.day,
            "year": year,
            "early": days_before > 0,
        },
        now=now,
    )


async def plan_birthday_greetings(*, session: AsyncSession, shop: Shop, now: datetime) -> int:
    """Schedule every greeting of the shop due within a day; return how many are new."""
    query = select(Customer).where(
        Customer.shop_id == shop.id,
        Customer.birthday.is_not(None),  # type: ignore[union-attr]
        Customer.telegram_chat_id.is_not(None),  # type: ignore[union-attr]
        Customer.consent == Consent.OPTED_IN,
    )
    planned = 0
    for customer in (await session.scalars(query)).all():
        if await plan_customer_greeting(session=session, shop=shop, customer=customer, now=now):
            planned += 1
    return planned


async def plan_all_shops(services: Services) -> int:
    """Run the greeting planner for every shop, one transaction per shop."""
    async with services.sessions() as session:
        shops = await list_shops(session=session)
    planned = 0
    for shop in shops:
        async with transaction(services.sessions) as session:
            planned += await plan_birthday_greetings(
                session=session, shop=shop, now=services.clock.now()
            )
    return planned


async def birthday_scheduler(app: web.Application) -> AsyncIterator[None]:
    """Worker (an aiohttp cleanup context): plan birthday greetings every hour."""
    from bot.web.keys import SERVICES

    async def loop() -> None:
        while True:
            try:
                await plan_all_shops(app[SERVICES])
            except Exception:  # a bad hour must not stop next hour's run
                log.exception("planning birthday greetings failed")
            await asyncio.sleep(SCAN_INTERVAL.total_seconds())

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# ------------------------------------------------------------------------------ messages


def not_known_yet(ctx: RenderContext) -> str | None:
    """Skip the birthday question when the profile already has a birthday."""
    return "already_known" if ctx.customer.birthday is not None else None


def render_question(ctx: RenderContext) -> Rendered:
    """Render the birthday question with month buttons and Skip."""
    ref = sign_ref(ctx.secret_key, ctx.outbox.id)  # type: ignore[arg-type]
    return Rendered(
        text=texts.birthday_question(ctx.locale),
        buttons=texts.months_keyboard(ref, ctx.locale).inline_keyboard,
    )


def birthday_unchanged(ctx: RenderContext) -> str | None:
    """Skip a greeting planned for a birthday the customer has since changed or removed."""
    birthday = birthday_of(ctx.customer)
    payload = ctx.payload
    if birthday is None or (birthday.month, birthday.day) != (payload["month"], payload["day"]):
        return "birthday_changed"
    return None


async def render_greeting(ctx: RenderContext) -> Rendered:
    """Render the greeting with a personal code from the shop's birthday pool, when it has one."""
    code = await issue_code(
        session=ctx.session,
        shop_id=ctx.shop.id,  # type: ignore[arg-type]
        pool=ctx.shop_settings.birthday_pool,
        customer_id=ctx.customer.id,  # type: ignore[arg-type]
        outbox_id=ctx.outbox.id,
        now=ctx.clock.now(),
    )
    early = None
    if ctx.payload.get("early"):
        early = texts.day_and_month(Birthday(ctx.payload["month"], ctx.payload["day"]), ctx.locale)
    return Rendered(
        text=texts.birthday_greeting(
            shop_name=ctx.shop.name,
            first_name=ctx.customer.first_name,
            code=code,
            early_date=early,
        )
    )


register_kind(BIRTHDAY_KIND, render=render_question, guard=not_known_yet)
register_kind(GREETING_KIND, render=render_greeting, guard=birthday_unchanged)

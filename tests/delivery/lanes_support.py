"""Helpers of the per-bot lane tests (#12): several shops, each with its own bot in the sandbox."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot.clock import ManualClock
from bot.db import transaction
from bot.models import Consent, Customer, Lane, Shop
from bot.sandbox import Sandbox
from bot.store import outbox as store
from bot.store.customers import add_customer
from bot.store.shops import create_shop

_chats = itertools.count(800_001)


@dataclass
class Storefront:
    """A shop, its bot token and its linked, consenting customers (with chats in the sandbox)."""

    database: Any
    sandbox: Sandbox
    clock: ManualClock
    shop: Shop
    token: str
    people: list[Customer] = field(default_factory=list)

    async def crowd(self, count: int) -> list[Customer]:
        """Add `count` customers with open chats, in one transaction."""
        added = []
        async with transaction(self.database.sessions) as session:
            for n in range(count):
                chat = next(_chats)
                added.append(
                    await add_customer(
                        session=session,
                        shop_id=self.shop.id,
                        now=self.clock.now(),
                        first_name=f"Customer {n}",
                        telegram_chat_id=chat,
                        consent=Consent.OPTED_IN,
                    )
                )
                self.sandbox.customer(self.token, chat, f"Customer {n}")
        self.people.extend(added)
        return added

    async def send_each(
        self,
        people: list[Customer],
        text: str,
        *,
        lane: Lane = Lane.PROMO,
        key: str = "campaign",
        due_in: timedelta = timedelta(0),
        **options: Any,
    ) -> int:
        """Schedule one message to each of `people`, due now (or `due_in` from now)."""
        async with transaction(self.database.sessions) as session:
            return await store.schedule_many(
                session=session,
                rows=(
                    {
                        "shop_id": self.shop.id,
                        "customer_id": person.id,
                        "kind": "text",
                        "dedupe_key": f"{key}:{person.id}",
                        "due_at": self.clock.now() + due_in,
                        "lane": lane,
                        "payload": {"text": text},
                        **options,
                    }
                    for person in people
                ),
            )

    def received(self, customer: Customer) -> list[str]:
        """Return the texts the customer's chat got from the bot."""
        person = self.sandbox.customer(self.token, customer.telegram_chat_id or 0)
        return [m.text or "" for m in person.bot_messages()]

    def arrivals(self) -> list[tuple[float, int]]:
        """Return (arrival time, chat id) of every send request the sandbox got from the bot."""
        return list(self.sandbox.bot(self.token).limiter.arrivals)

    async def states(self) -> dict[str, int]:
        """Count the shop's outbox rows by state."""
        async with self.database.sessions() as session:
            stats = await store.outbox_stats(
                session=session, now=self.clock.now(), shop_id=self.shop.id
            )
        return {state: n for state, n in stats["states"].items() if n}


async def storefront(
    database: Any, sandbox: Sandbox, clock: ManualClock, token: str, name: str
) -> Storefront:
    """Create a shop with its own bot in the sandbox; no quiet hours (tests run at any hour)."""
    sandbox.add_bot(token, username=f"{name.lower()}_bot")
    async with transaction(database.sessions) as session:
        shop = await create_shop(
            session=session,
            name=name,
            platform="generic",
            bot_token=token,
            bot_username=f"{name.lower()}_bot",
            settings={"quiet_hours_start": "00:00", "quiet_hours_end": "00:00"},
            now=clock.now(),
        )
    return Storefront(database, sandbox, clock, shop, token)


def most_in_any_window(times: list[float], window: float = 1.0) -> int:
    """Return the most moments that fall into any half-open window of `window` seconds."""
    times = sorted(times)
    best = start = 0
    for end, moment in enumerate(times):
        while times[start] <= moment - window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def eventually(
    check: Callable[[], object],
    timeout: float = 60.0,  # noqa: ASYNC109 - a deadline for tests, raising AssertionError
    what: str = "",
) -> None:
    """Wait until `check()` is true (polling; the deadline only catches a hang)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {what or check}")
        await asyncio.sleep(0.02)

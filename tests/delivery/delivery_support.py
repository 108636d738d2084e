"""Helpers of the delivery tests: the test shop, its customers and a quick bot pool."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import ManualClock
from bot.db import transaction
from bot.models import Consent, Customer, Lane, Outbox, Shop
from bot.sandbox import Sandbox
from bot.sandbox import customers as sandbox_people
from bot.store import outbox as store
from bot.store.customers import add_customer
from bot.telegram import BotPool

TOKEN = "700001:delivery-test-token"
SECRET = "delivery-tests-secret-key-0123456789"


class QuickBotPool(BotPool):
    """BotPool without aiogram's 250 ms wait for TLS connections on close (we speak HTTP)."""

    async def close(self) -> None:
        """Close the HTTP client at once."""
        client = self._session._session
        if client is not None and not client.closed:
            await client.close()


@dataclass
class Shopfront:
    """A shop with a bot, its customers in the database and in the sandbox."""

    database: Any
    sandbox: Sandbox
    clock: ManualClock
    shop: Shop
    _ids: Any = field(default_factory=lambda: itertools.count(5001))
    _keys: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def sessions(self) -> Any:
        """Return the database's session factory."""
        return self.database.sessions

    async def customer(
        self,
        first_name: str = "Olena",
        *,
        in_telegram: bool = True,
        consent: Consent = Consent.OPTED_IN,
        chat_id: int | None = None,
        **fields: Any,
    ) -> tuple[Customer, sandbox_people.Customer | None]:
        """Add a linked, consenting customer (unless told otherwise) and their Telegram chat."""
        user_id = chat_id or next(self._ids)
        async with transaction(self.sessions) as session:
            customer = await add_customer(
                session=session,
                shop_id=self.shop.id,
                now=self.clock.now(),
                first_name=first_name,
                telegram_chat_id=user_id,
                consent=consent,
                consent_at=self.clock.now() if consent == Consent.OPTED_IN else None,
                **fields,
            )
        person = None
        if in_telegram:
            person = self.sandbox.customer(TOKEN, user_id, first_name)
        return customer, person

    async def crowd(self, count: int) -> list[Customer]:
        """Add `count` linked, consenting customers with chats, in one transaction."""
        people = []
        async with transaction(self.sessions) as session:
            for n in range(count):
                user_id = next(self._ids)
                people.append(
                    await add_customer(
                        session=session,
                        shop_id=self.shop.id,
                        now=self.clock.now(),
                        first_name=f"Customer {n}",
                        telegram_chat_id=user_id,
                        consent=Consent.OPTED_IN,
                    )
                )
                self.sandbox.customer(TOKEN, user_id, f"Customer {n}")
        return people

    async def broadcast(self, people: list[Customer], text: str, lane: Lane = Lane.PROMO) -> int:
        """Schedule one message to each customer, due now."""
        async with transaction(self.sessions) as session:
            return await store.schedule_many(
                session=session,
                rows=(
                    {
                        "shop_id": self.shop.id,
                        "customer_id": person.id,
                        "kind": "text",
                        "dedupe_key": f"broadcast:{person.id}",
                        "due_at": self.clock.now(),
                        "lane": lane,
                        "payload": {"text": text},
                    }
                    for person in people
                ),
            )

    def person(self, customer: Customer) -> sandbox_people.Customer:
        """Return the sandbox side of a customer's chat."""
        return self.sandbox.customer(TOKEN, customer.telegram_chat_id, customer.first_name or "")

    async def schedule(
        self,
        customer: Customer,
        text: str = "Hello",
        *,
        lane: Lane = Lane.TRANSACTIONAL,
        kind: str = "text",
        key: str | None = None,
        due_at: datetime | None = None,
        payload: dict[str, Any] | None = None,
        **options: Any,
    ) -> Outbox:
        """Schedule a message for the customer, due now unless told otherwise."""
        async with transaction(self.sessions) as session:
            row = await store.schedule(
                session=session,
                shop_id=self.shop.id,
                customer_id=customer.id,
                kind=kind,
                dedupe_key=key or f"test:{next(self._keys)}",
                due_at=due_at or self.clock.now(),
                lane=lane,
                payload=payload if payload is not None else {"text": text},
                now=self.clock.now(),
                **options,
            )
        assert row is not None
        return row

    async def row(self, row: Outbox | int) -> Outbox:
        """Read an outbox row as it is now."""
        outbox_id = row if isinstance(row, int) else row.id
        async with self.sessions() as session:
            found = await store.get_outbox(
                session=session, shop_id=self.shop.id, outbox_id=outbox_id
            )
        assert found is not None
        return found

    async def reload(self, customer: Customer) -> Customer:
        """Read a customer as it is now."""
        async with self.sessions() as session:
            found = await session.get(Customer, customer.id)
        assert found is not None
        return found

    async def set(self, **settings: Any) -> None:
        """Change the shop's settings (frequency_cap=2, quiet_hours_start='22:00', …)."""
        from bot.store.shops import update_shop

        async with transaction(self.sessions) as session:
            for key, value in settings.items():
                self.shop = await update_shop(
                    session=session, shop_id=self.shop.id, key=key, value=str(value)
                )


@asynccontextmanager
async def stamped_at_head(engine: AsyncEngine) -> AsyncIterator[None]:
    """Mark the test's schema (built from the models) as migrated, so the CLI accepts it."""
    from bot.migrate import head_revision

    async with engine.begin() as conn:
        await conn.execute(
            text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL)")
        )
        await conn.execute(text("DELETE FROM alembic_version"))
        await conn.execute(
            text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": head_revision()}
        )
    try:
        yield
    finally:
        async with engine.begin() as conn:  # the PostgreSQL database is shared by later tests
            await conn.execute(text("DROP TABLE alembic_version"))

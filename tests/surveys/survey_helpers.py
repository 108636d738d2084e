"""Helpers for the survey tests: linked customers, questions sent, what was stored."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.bots import register_webhook
from bot.db import transaction
from bot.models import Customer, CustomerEvent, Lane, Outbox
from bot.playground import Playground
from bot.sandbox import Customer as Chat
from bot.sandbox import Limits
from bot.store.customers import add_customer
from bot.store.outbox import schedule
from bot.surveys import schedule_birthday_survey
from bot.web.keys import DISPATCHER

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "shopify"
LOCALES = ["en", "ru", "uk", "pl"]


@dataclass
class Person:
    """A linked, subscribed customer: their profile id and their chat."""

    id: int
    chat: Chat


async def person(pg: Playground, shop, user_id: int, locale: str = "en", **fields: Any) -> Person:
    """Create a subscribed profile linked to a new chat (as if they had followed the link)."""
    async with transaction(pg.services.sessions) as session:
        profile = await add_customer(
            session=session,
            shop_id=shop.id,
            now=pg.clock.now(),
            first_name=fields.pop("first_name", "Olena"),
            telegram_chat_id=user_id,
            consent="opted_in",
            consent_source="deep_link",
            consent_at=pg.clock.now(),
            locale=locale,
            **fields,
        )
    chat = pg.customer(shop, user_id=user_id, first_name="Olena", language_code=locale)
    return Person(profile.id, chat)


async def profile(pg: Playground, customer_id: int) -> Customer:
    async with pg.services.sessions() as session:
        found = await session.get(Customer, customer_id)
        assert found is not None
        return found


async def events(pg: Playground, customer_id: int, *types: str) -> list[CustomerEvent]:
    async with pg.services.sessions() as session:
        query = select(CustomerEvent).where(CustomerEvent.customer_id == customer_id)
        if types:
            query = query.where(CustomerEvent.type.in_(types))
        return list((await session.scalars(query.order_by(CustomerEvent.id))).all())


async def outbox(pg: Playground, customer_id: int, kind: str | None = None) -> list[Outbox]:
    async with pg.services.sessions() as session:
        query = select(Outbox).where(Outbox.customer_id == customer_id)
        if kind:
            query = query.where(Outbox.kind == kind)
        return list((await session.scalars(query.order_by(Outbox.id))).all())


async def ask_birthday(pg: Playground, shop, *people: Person) -> None:
    """Schedule the birthday question for these people and let the dispatcher send it."""
    async with transaction(pg.services.sessions) as session:
        for p in people:
            await schedule_birthday_survey(
                session=session, shop_id=shop.id, customer_id=p.id, now=pg.clock.now()
            )
    await pg.dispatch()


async def offer(pg: Playground, shop, p: Person, key: str, *, lane=Lane.PROMO, topic=None):
    """Schedule a plain promo text to the person, due now; return the row."""
    async with transaction(pg.services.sessions) as session:
        return await schedule(
            session=session,
            shop_id=shop.id,
            customer_id=p.id,
            kind="text",
            dedupe_key=key,
            due_at=pg.clock.now(),
            lane=lane,
            topic=topic,
            payload={"text": f"Offer {key}"},
            now=pg.clock.now(),
        )


async def reopen(pg_class, database, clock, shop, **settings: Any) -> Playground:
    """Start a second service on the same database (a restart), with the shop's bot."""
    pg = pg_class(
        database.url, engine=database.engine, clock=clock, limits=Limits.off(), **settings
    )
    await pg.__aenter__()
    pg.sandbox.add_bot(shop.bot_token, username=shop.bot_username, first_name=shop.name)
    await register_webhook(pg.services, pg.app[DISPATCHER], shop.id, shop.bot_token)
    return pg


def shopify_order(email: str, *, order_id: int, now, external_id: int = 4242) -> dict[str, Any]:
    """Shopify's own orders/create sample, for a customer by e-mail."""
    payload = copy.deepcopy(json.loads((SAMPLES / "orders" / "create.json").read_text()))
    payload["id"] = order_id
    payload["admin_graphql_api_id"] = f"gid://shopify/Order/{order_id}"
    payload["email"] = payload["contact_email"] = email
    if payload.get("customer"):
        payload["customer"]["email"] = email
        payload["customer"]["id"] = external_id
        payload["customer"]["admin_graphql_api_id"] = f"gid://shopify/Customer/{external_id}"
    payload["created_at"] = payload["updated_at"] = payload["processed_at"] = now.isoformat()
    payload["cancelled_at"] = None
    return payload

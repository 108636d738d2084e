"""A running service with two furnished shops and a token for each, for the admin API's tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from bot import campaign_service
from bot.db import transaction
from bot.models import Consent
from bot.playground import Playground
from bot.store.codes import import_codes
from bot.store.customers import add_customer
from bot.store.segments import save_segment
from bot.store.tokens import create_token


@dataclass
class Furnished:
    """One shop and the ids of what it holds: every kind of record a path can name."""

    id: int
    customers: list[int] = field(default_factory=list)
    campaigns: list[int] = field(default_factory=list)
    segment: str = ""
    pool: str = "spring"


@dataclass
class World:
    """The service, its two shops, and the tokens: owner, each shop's, one read-only."""

    pg: Playground
    shops: dict[str, Furnished]
    tokens: dict[str, str]

    async def call(
        self, method: str, path: str, who: str | None = "owner", **kwargs: Any
    ) -> tuple[int, Any]:
        """Send one API request; return the status and the decoded body (None for 204)."""
        headers = dict(kwargs.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        url = self.pg.settings.public_base + path
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, url, headers=headers, **kwargs) as r,
        ):
            return r.status, (await r.json(content_type=None) if r.status != 204 else None)


async def _furnish(pg: Playground, name: str, locale: str, first_chat: int) -> Furnished:
    """A shop with a bot, three linked customers, a saved segment, codes and two campaigns."""
    shop = await pg.add_shop(name=name, default_locale=locale)
    assert shop.id is not None
    furnished = Furnished(id=shop.id, segment=f"{name.lower()}-regulars")
    now = pg.clock.now()
    async with transaction(pg.services.sessions) as session:
        for n in range(3):
            customer = await add_customer(
                session=session,
                shop_id=shop.id,
                now=now,
                first_name=f"{name} {n}",
                email=f"{name.lower()}{n}@example.com",
                locale=locale,
                telegram_chat_id=first_chat + n,
                consent=Consent.OPTED_IN,
            )
            furnished.customers.append(customer.id)
        definition = {"field": "locale", "op": "=", "value": locale}
        await save_segment(
            session=session,
            shop_id=shop.id,
            name=furnished.segment,
            definition=definition,
            now=now,
        )
        codes = [f"{name.upper()}{n:03d}" for n in range(20)]
        await import_codes(
            session=session, shop_id=shop.id, pool=furnished.pool, codes=codes, now=now
        )
    for title in ("Spring", "Summer"):
        raw = {
            "name": f"{title} at {name}",
            "segment": furnished.segment,
            "topic": "sale",
            "pool": furnished.pool,
            "messages": {locale: {"text": "{first_name}, {code} is yours"}},
        }
        made = await campaign_service.create(
            pg.services.sessions, shop_id=shop.id, raw=raw, now=now
        )
        furnished.campaigns.append(made["id"])
    await campaign_service.send(
        pg.services.sessions, campaign_id=furnished.campaigns[1], now=pg.clock.now
    )
    return furnished


@pytest.fixture
async def world(database, clock) -> Any:
    """The service on a real port with shops "own" (Kvitka) and "other" (Sklep)."""
    async with Playground(database.url, engine=database.engine, clock=clock) as pg:
        pg.sandbox.auto_register = True  # any well-shaped bot token is a bot (POST/PATCH shops)
        shops = {
            "own": await _furnish(pg, "Kvitka", "uk", 500),
            "other": await _furnish(pg, "Sklep", "pl", 600),
        }
        tokens = {}
        async with transaction(pg.services.sessions) as session:
            for key, shop_id, read_only in (
                ("owner", None, False),
                ("own", shops["own"].id, False),
                ("reader", shops["own"].id, True),
                ("other", shops["other"].id, False),
            ):
                _record, tokens[key] = await create_token(
                    session=session, now=clock.now(), shop_id=shop_id, read_only=read_only
                )
        yield World(pg, shops, tokens)

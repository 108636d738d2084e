"""A running service with a shop whose customers read every locale."""

from __future__ import annotations

import pytest
from campaign_helpers import Shopfront

from bot.playground import Playground


@pytest.fixture
async def playground(database, clock):
    async with Playground(database.url, engine=database.engine, clock=clock) as pg:
        yield pg


@pytest.fixture
async def front(playground) -> Shopfront:
    shop = await playground.add_shop(
        name="Kvitka",
        country="UA",
        currency="UAH",
        default_locale="uk",
        timezone="Europe/Kyiv",
        settings={"catalog_url": "https://kvitka.example/catalog", "followup_enabled": False},
    )
    return Shopfront(playground, shop)

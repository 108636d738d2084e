"""A running service on each database backend, for the support desk's end-to-end tests."""

from __future__ import annotations

import pytest

from bot.playground import Playground
from bot.sandbox import Limits


@pytest.fixture
async def playground(database, clock):
    async with Playground(
        database.url, engine=database.engine, clock=clock, limits=Limits.off()
    ) as pg:
        yield pg

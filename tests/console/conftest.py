"""A running service for the console tests."""

from __future__ import annotations

import pytest
from console_helpers import make_console

from bot.playground import Playground


@pytest.fixture
async def console(database, clock):
    async with Playground(database.url, engine=database.engine, clock=clock) as pg:
        yield await make_console(pg)

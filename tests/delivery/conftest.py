"""Fixtures for delivery tests: a shop with a bot in the sandbox, its customers, a Courier."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from delivery_support import SECRET, TOKEN, QuickBotPool, Shopfront
from pydantic import SecretStr

from bot.clock import ManualClock
from bot.config import Settings
from bot.db import transaction
from bot.delivery.channels.telegram import TelegramChannel
from bot.delivery.courier import Courier
from bot.delivery.limiter import SlidingWindowLimiter
from bot.sandbox import Sandbox, run_sandbox
from bot.store.shops import create_shop
from bot.telegram import BotPool


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A running sandbox enforcing Telegram's limits, with the shop's bot registered."""
    async with run_sandbox() as sb:
        sb.add_bot(TOKEN, username="kvitka_bot", first_name="Kvitka")
        yield sb


@pytest.fixture
async def bots(sandbox: Sandbox) -> AsyncIterator[BotPool]:
    """aiogram bots pointed at the sandbox."""
    pool = QuickBotPool(sandbox.base_url)
    yield pool
    await pool.close()


@pytest.fixture
def settings(database: Any, sandbox: Sandbox) -> Settings:
    """Service settings for the test's database and sandbox."""
    return Settings(
        database_url=database.url,
        secret_key=SecretStr(SECRET),
        telegram_api_base=sandbox.base_url,  # type: ignore[arg-type]
        public_url="https://nudge.example.com",  # type: ignore[arg-type]
    )


@pytest.fixture
async def shopfront(database: Any, sandbox: Sandbox, clock: ManualClock) -> Shopfront:
    """The Kvitka shop (Europe/Kyiv, uk) with its bot in the sandbox."""
    async with transaction(database.sessions) as session:
        shop = await create_shop(
            session=session,
            name="Kvitka",
            platform="shopify",
            currency="UAH",
            default_locale="uk",
            timezone="Europe/Kyiv",
            bot_token=TOKEN,
            bot_username="kvitka_bot",
            now=clock.now(),
        )
    return Shopfront(database, sandbox, clock, shop)


@pytest.fixture
async def make_courier(
    database: Any, bots: BotPool, clock: ManualClock, settings: Settings
) -> AsyncIterator[Callable[..., Courier]]:
    """Build a Courier on the test's database, sandbox and clock."""

    def build(
        *, rate: float = 25.0, per_chat: float | None = None, channel: Any = None, **options: Any
    ) -> Courier:
        """Per-chat spacing is off unless asked for: the sandbox allows short bursts per chat."""
        limiter = SlidingWindowLimiter(rate, per_chat)
        options.setdefault("retry_backoff", timedelta(seconds=10))
        return Courier(
            sessions=database.sessions,
            channel=channel or TelegramChannel(bots, limiter),
            clock=clock,
            settings=settings,
            **options,
        )

    yield build

"""What every handler and worker gets by name: sessions, clock, settings, bots."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.delivery.limiter import RateLimiter
from bot.telegram import BotPool


@dataclass(frozen=True, slots=True)
class Services:
    """The service's shared resources, built once in bot/app.py."""

    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    settings: Settings
    bots: BotPool
    limiter: RateLimiter | None = None  # shared through Redis when NUDGE_REDIS_URL is set

    @property
    def secret_key(self) -> str:
        """Return NUDGE_SECRET_KEY's value."""
        assert self.settings.secret_key is not None, "load_settings() sets the secret key"
        return self.settings.secret_key.get_secret_value()

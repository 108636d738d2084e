"""One aiogram Bot per shop token, sharing one HTTP session, pointed at the configured API base."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramRetryAfter

DEFAULT_CONNECTIONS = 256 + 128  # the dispatcher's default in-flight cap, plus headroom
_REPLYING: ContextVar[bool] = ContextVar("nudge_replying", default=False)


@contextmanager
def replying():  # type: ignore[no-untyped-def]
    """Mark the current task as answering an update: its 429s are waited out, not raised."""
    token = _REPLYING.set(True)
    try:
        yield
    finally:
        _REPLYING.reset(token)


class WaitOutFloodControl(BaseRequestMiddleware):
    """Inside an update handler, wait out Telegram's retry_after and send again.

    A customer who taps fast must still get every answer; the outbox dispatcher sends outside
    `replying()` and handles 429 itself (pausing the whole bot).
    """

    def __init__(self, max_wait: float = 10.0) -> None:
        self.max_wait = max_wait

    async def __call__(self, make_request: Any, bot: Bot, method: Any) -> Any:
        waited = 0.0
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if not _REPLYING.get() or waited + exc.retry_after > self.max_wait:
                    raise
                waited += exc.retry_after
                await asyncio.sleep(exc.retry_after)


class BotPool:
    """Create Bot objects lazily by token and close their shared session once."""

    def __init__(
        self, api_base: str, *, timeout: float = 30.0, connections: int = DEFAULT_CONNECTIONS
    ) -> None:
        self._api = TelegramAPIServer.from_base(api_base.rstrip("/"))
        # One pool for every bot: the dispatcher's requests in flight (its cap) plus headroom
        # for replies to updates and long polls, so a granted send never waits for a connection.
        self._session = AiohttpSession(api=self._api, timeout=timeout, limit=connections)
        self._session.middleware(WaitOutFloodControl())
        self._bots: dict[str, Bot] = {}

    @property
    def api(self) -> TelegramAPIServer:
        """Return the Bot API server the bots talk to."""
        return self._api

    def get(self, token: str) -> Bot:
        """Return the Bot for a token, creating it on first use."""
        bot = self._bots.get(token)
        if bot is None:
            bot = Bot(
                token,
                session=self._session,
                default=DefaultBotProperties(parse_mode=ParseMode.HTML),
            )
            self._bots[token] = bot
        return bot

    async def close(self) -> None:
        """Close the shared HTTP session."""
        await self._session.close()
        self._bots.clear()

"""One aiogram Bot per shop token, sharing one HTTP session, pointed at the configured API base."""

from __future__ import annotations

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode


class BotPool:
    """Create Bot objects lazily by token and close their shared session once."""

    def __init__(self, api_base: str, *, timeout: float = 30.0) -> None:
        self._api = TelegramAPIServer.from_base(api_base.rstrip("/"))
        self._session = AiohttpSession(api=self._api, timeout=timeout)
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

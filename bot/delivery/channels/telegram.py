"""The Telegram channel: text or photo with caption, an inline keyboard, through aiogram.

Errors are classified by aiogram's exception type, never by the message text, with one
exception: a 400 whose description says "chat not found" means the chat is gone.

- 429 `TelegramRetryAfter`: the whole bot pauses for retry_after, then the send is retried;
- 403 `TelegramForbiddenError` (blocked, deactivated, kicked) and 400 chat not found:
  the customer is unreachable;
- 5xx, timeouts and network errors: retry later;
- any other 400 (and other API errors): failed for good, with the error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods.base import Response
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.delivery import metrics
from bot.delivery.channels import Delivery, DeliveryStatus
from bot.delivery.limiter import RateLimiter
from bot.messages.render import Rendered
from bot.telegram import BotPool

log = logging.getLogger(__name__)

CHAT_NOT_FOUND = "chat not found"

# aiogram parses every answer as `Response[Message]`; pydantic keeps parametrized generics in a
# weak cache, so under allocation pressure the class is collected and rebuilt (about 10 ms each
# time, every few dozen sends). Holding it here keeps it built.
_RESPONSE_TYPES = (Response[Message], Response[bool])


def bot_id(token: str) -> str:
    """Return the public part of a bot token (its numeric id): safe for logs and limiter keys."""
    return token.split(":", 1)[0]


def keyboard(rows: Sequence[Sequence[Any]]) -> InlineKeyboardMarkup | None:
    """Build an inline keyboard from rows of Button (or InlineKeyboardButton) values."""
    if not rows:
        return None
    built = [
        [
            button
            if isinstance(button, InlineKeyboardButton)
            else InlineKeyboardButton(
                text=button.text, url=button.url, callback_data=button.callback_data
            )
            for button in row
        ]
        for row in rows
    ]
    return InlineKeyboardMarkup(inline_keyboard=built)


class TelegramChannel:
    """Send through the shop's bot, within the limiter's rates and 429 pauses."""

    name = "telegram"

    def __init__(
        self,
        bots: BotPool,
        limiter: RateLimiter,
        *,
        max_flood_waits: int = 5,
        owns_bots: bool = False,
    ) -> None:
        self.bots = bots
        self.limiter = limiter
        self.max_flood_waits = max_flood_waits
        self._owns_bots = owns_bots

    async def send(self, *, sender: str, recipient: int, message: Rendered) -> Delivery:
        """Send one message; wait out 429s by pausing the bot; classify every other error."""
        bot = self.bots.get(sender)
        key = bot_id(sender)
        markup = keyboard(message.buttons)
        floods = 0
        while True:
            await self.limiter.acquire(key, recipient)
            started = time.perf_counter()
            try:
                message_id = await self._request(bot, recipient, message, markup)
            except TelegramRetryAfter as exc:
                metrics.TELEGRAM_RETRY_AFTER.inc()
                self.limiter.pause(key, exc.retry_after)
                floods += 1
                log.warning("bot %s: 429, pausing %ss", key, exc.retry_after)
                if floods > self.max_flood_waits:
                    return self._answer(DeliveryStatus.RETRY, exc, sender, started)
                continue
            except Exception as exc:  # classified below; anything unexpected fails the row
                return self._answer(_classify(exc), exc, sender, started)
            seconds = time.perf_counter() - started
            metrics.SEND_LATENCY.labels(self.name).observe(seconds)
            return Delivery(DeliveryStatus.SENT, message_id=message_id, seconds=seconds)

    async def _request(
        self, bot: Bot, chat_id: int, message: Rendered, markup: InlineKeyboardMarkup | None
    ) -> int:
        if message.photo_url:
            sent = await bot.send_photo(
                chat_id=chat_id, photo=message.photo_url, caption=message.text, reply_markup=markup
            )
        else:
            sent = await bot.send_message(chat_id=chat_id, text=message.text, reply_markup=markup)
        return sent.message_id

    def _answer(
        self, status: DeliveryStatus, exc: BaseException, sender: str, started: float
    ) -> Delivery:
        seconds = time.perf_counter() - started
        metrics.SEND_LATENCY.labels(self.name).observe(seconds)
        error = f"{type(exc).__name__}: {exc}".replace(sender, "<token>")
        if status is DeliveryStatus.FAILED and not isinstance(exc, TelegramAPIError):
            log.exception("unexpected error sending through bot %s", bot_id(sender))
        return Delivery(status, error=error[:2000], seconds=seconds)

    async def close(self) -> None:
        """Close the bots' HTTP session if this channel created it."""
        if self._owns_bots:
            await self.bots.close()


def _classify(exc: BaseException) -> DeliveryStatus:
    if isinstance(exc, TelegramForbiddenError):
        return DeliveryStatus.UNREACHABLE
    if isinstance(exc, TelegramBadRequest | TelegramNotFound):
        if CHAT_NOT_FOUND in exc.message.lower():
            return DeliveryStatus.UNREACHABLE
        return DeliveryStatus.FAILED
    if isinstance(exc, TelegramEntityTooLarge):
        return DeliveryStatus.FAILED
    if isinstance(
        exc,
        TelegramServerError
        | TelegramNetworkError
        | TelegramUnauthorizedError
        | asyncio.TimeoutError
        | ConnectionError,
    ):
        return DeliveryStatus.RETRY
    return DeliveryStatus.FAILED


__all__ = ["TelegramChannel", "bot_id", "keyboard"]

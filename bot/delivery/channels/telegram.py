"""The Telegram channel: text or photo with caption, an inline keyboard, through aiogram.

Errors are classified by aiogram's exception type, never by the message text, with one
exception: a 400 whose description says "chat not found" means the chat is gone.

- 429 `TelegramRetryAfter`: the whole bot pauses for retry_after, then the send is retried;
- 403 `TelegramForbiddenError` (blocked, deactivated, kicked) and 400 chat not found:
  the customer is unreachable;
- 5xx and network errors: retry later;
- no answer within `request_timeout` (or the session's timeout): unknown, since the message
  may have arrived (Telegram has no idempotency key); a hung request costs its own row only;
- any other 400 (and other API errors): failed for good, with the error.

Each bot has at most its rate times `BOT_IN_FLIGHT_SECONDS` sends unanswered (taken before the
limiter's grant), so a stall on Telegram's side cannot pile up a bot's sends to arrive at once.
At most `max_in_flight` requests are out at once over all bots. A send takes its slot only
after the limiter granted it, so waiting for the rate never holds a connection; the bots' HTTP
pool is sized for the cap (`BotPool(connections=...)`).

The rate is kept where Telegram counts it, when a send arrives, not when it was granted: a
granted send may still wait for a slot, a new connection or the event loop's turn (hundreds of
milliseconds on a loaded machine), and sends granted apart would then leave together. So the
limiter counts a granted send as leaving now until its bytes are written: the bot's HTTP session
reports that moment (an aiohttp trace, `on_request_chunk_sent`, run just before the request
goes on the wire), and the answer's delay is measured from it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

import aiohttp
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
from bot.delivery.limiter import Grant, RateLimiter
from bot.messages.render import Rendered
from bot.telegram import BotPool

log = logging.getLogger(__name__)

CHAT_NOT_FOUND = "chat not found"
DEFAULT_MAX_IN_FLIGHT = 256
DEFAULT_REQUEST_TIMEOUT = 10.0  # seconds; Telegram answers in tens of milliseconds
BOT_IN_FLIGHT_SECONDS = 0.25  # one bot's unanswered sends: its rate times this (4 at least)
BOT_IN_FLIGHT_MIN = 4

# aiogram parses every answer as `Response[Message]`; pydantic keeps parametrized generics in a
# weak cache, so under allocation pressure the class is collected and rebuilt (about 10 ms each
# time, every few dozen sends). Holding it here keeps it built.
_RESPONSE_TYPES = (Response[Message], Response[bool])


class _Departure:
    """A granted send on its way: dated (`at`, perf_counter) when its bytes go on the wire."""

    __slots__ = ("at", "grant", "left")

    def __init__(self, grant: Grant) -> None:
        self.grant = grant
        self.left = False
        self.at = 0.0

    def leave(self) -> None:
        """Date the send now, once: the limiter counts it from this moment."""
        if not self.left:
            self.left = True
            self.at = time.perf_counter()
            self.grant.leave()


# The send the current task is making; aiohttp writes the request from a task it creates, which
# inherits this context, so the trace below finds the send whose bytes it is about to write.
_DEPARTING: ContextVar[_Departure | None] = ContextVar("nudge_departing", default=None)


async def _on_chunk_sent(_session: Any, _context: Any, _params: Any) -> None:
    departure = _DEPARTING.get()
    if departure is not None:
        departure.leave()


def _departures() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(_on_chunk_sent)
    trace.freeze()
    return trace


DEPARTURES = _departures()


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
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self.bots = bots
        self.limiter = limiter
        self.max_flood_waits = max_flood_waits
        self._owns_bots = owns_bots
        self.max_in_flight = max_in_flight
        self.request_timeout = request_timeout
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._observe = getattr(limiter, "observe", None)
        self._per_bot: dict[str, asyncio.Semaphore] = {}
        self.in_flight = 0  # requests out now (for tests and gauges)

    async def send(self, *, sender: str, recipient: int, message: Rendered) -> Delivery:
        """Send one message; wait out 429s by pausing the bot; classify every other error."""
        bot = self.bots.get(sender)
        key = bot_id(sender)
        markup = keyboard(message.buttons)
        floods = 0
        await _watch_departures(bot)
        while True:
            async with self._bot_slots(key):
                departure = _Departure(await self.limiter.reserve(key, recipient))
                started = time.perf_counter()
                try:
                    async with self._in_flight:
                        self.in_flight += 1
                        leaving = _DEPARTING.set(departure)
                        try:
                            async with asyncio.timeout(self.request_timeout):
                                message_id = await self._request(bot, recipient, message, markup)
                        finally:
                            _DEPARTING.reset(leaving)
                            self.in_flight -= 1
                            departure.leave()  # not seen leaving: counted from now, to be safe
                    if self._observe is not None:  # answered late: it may have arrived late
                        self._observe(key, time.perf_counter() - departure.at)
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

    def _bot_slots(self, key: str) -> asyncio.Semaphore:
        """Return the bot's own cap on unanswered sends, taken before the limiter's grant.

        While Telegram (or the way there) holds a bot's sends, no more are granted: a stall on
        the far side cannot pile up more than this many, to arrive there all at once.
        """
        slots = self._per_bot.get(key)
        if slots is None:
            rate = getattr(self.limiter, "rate", None) or 30.0
            size = max(BOT_IN_FLIGHT_MIN, math.ceil(rate * BOT_IN_FLIGHT_SECONDS))
            slots = self._per_bot[key] = asyncio.Semaphore(min(size, self.max_in_flight))
        return slots

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


async def _watch_departures(bot: Bot) -> None:
    """Have the bot's aiohttp session report when each request's bytes go out (`DEPARTURES`).

    aiogram opens its aiohttp session lazily and may open it again after a close, so this is
    checked before every send (a look-up once the session is open). Another kind of session
    reports nothing: its sends are dated when answered, later than they left (safe, slower).
    """
    open_session = getattr(bot.session, "create_session", None)
    if open_session is None:
        return
    client = await open_session()
    traces = getattr(client, "trace_configs", None)
    if traces is not None and DEPARTURES not in traces:
        traces.append(DEPARTURES)


def channel_for(
    bots: BotPool, limiter: RateLimiter, settings: Any, *, owns_bots: bool = False
) -> TelegramChannel:
    """Build the channel with the configured cap on requests in flight and request timeout."""
    dispatch = settings.dispatch
    return TelegramChannel(
        bots,
        limiter,
        owns_bots=owns_bots,
        max_in_flight=dispatch.max_in_flight,
        request_timeout=dispatch.request_timeout,
    )


def _timed_out(exc: BaseException) -> bool:
    """Tell a timeout (ours, or aiogram's, which wraps the TimeoutError) from other errors."""
    if isinstance(exc, TimeoutError):
        return True
    return isinstance(exc, TelegramNetworkError) and isinstance(exc.__context__, TimeoutError)


def _classify(exc: BaseException) -> DeliveryStatus:
    if _timed_out(exc):
        return DeliveryStatus.UNKNOWN
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
        TelegramServerError | TelegramNetworkError | TelegramUnauthorizedError | ConnectionError,
    ):
        return DeliveryStatus.RETRY
    return DeliveryStatus.FAILED


__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_REQUEST_TIMEOUT",
    "TelegramChannel",
    "bot_id",
    "channel_for",
    "keyboard",
]

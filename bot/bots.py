"""The Telegram side: one aiogram Dispatcher for every shop's bot, fed by webhook or polling.

Either way every update goes through the dispatcher's `UpdateIntake` (bot/updates.py): handled
once per bot and update_id, a poison update kept and acknowledged. Polling reads getUpdates
itself rather than with aiogram's `start_polling`: one update aiogram cannot parse (say, nested
too deep for `json.loads`) fails aiogram's whole batch, for ever, at the same offset. Here each
update of a batch is read on its own, and the offset moves past it once the intake took it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from aiogram.utils.backoff import Backoff, BackoffConfig
from aiohttp import web

from bot.handlers import routers
from bot.handlers.context import ProfileContext
from bot.services import Services
from bot.store.fsm import build_storage
from bot.store.shops import list_shops_with_bots
from bot.updates import Fetched, UnreadableAnswer, UpdateIntake, Verdict, read_updates

log = logging.getLogger(__name__)
POLL_WAIT = 25  # seconds one getUpdates call waits for an update
POLL_BACKOFF = BackoffConfig(min_delay=1.0, max_delay=30.0, factor=2.0, jitter=0.1)
STOP_GRACE = 10.0  # seconds an update being handled may finish in when polling stops


def build_dispatcher(services: Services) -> Dispatcher:
    """Build the dispatcher with the profile middleware, every router and FSM storage."""
    storage = build_storage(
        services.sessions, services.clock, redis_url=services.settings.redis_url
    )
    dispatcher = Dispatcher(storage=storage, services=services)
    dispatcher.update.outer_middleware(ProfileContext())
    dispatcher.include_routers(*routers())
    dispatcher["intake"] = UpdateIntake(services, dispatcher)
    return dispatcher


def update_intake(dispatcher: Dispatcher) -> UpdateIntake:
    """Return the intake every update of this dispatcher goes through."""
    intake = dispatcher["intake"]
    assert isinstance(intake, UpdateIntake)
    return intake


def webhook_secret(secret_key: str, shop_id: int) -> str:
    """Derive the X-Telegram-Bot-Api-Secret-Token for a shop's webhook."""
    digest = hmac.new(secret_key.encode(), f"telegram-webhook:{shop_id}".encode(), hashlib.sha256)
    return digest.hexdigest()


def webhook_url(services: Services, shop_id: int) -> str:
    """Return where Telegram should POST the shop bot's updates."""
    return f"{services.settings.public_base}/tg/{shop_id}"


async def register_webhook(
    services: Services, dispatcher: Dispatcher, shop_id: int, token: str
) -> None:
    """Point the shop's bot at this service's webhook route."""
    await services.bots.get(token).set_webhook(
        url=webhook_url(services, shop_id),
        secret_token=webhook_secret(services.secret_key, shop_id),
        allowed_updates=dispatcher.resolve_used_update_types(),
    )


async def _shop_bots(services: Services) -> list[tuple[int, str]]:
    async with services.sessions() as session:
        shops = await list_shops_with_bots(session=session)
    return [(s.id, s.bot_token) for s in shops if s.id is not None and s.bot_token]


async def fetch_updates(
    bot: Bot, *, offset: int | None, wait: int, allowed_updates: list[str]
) -> list[Fetched]:
    """Call getUpdates (confirming every update below `offset`) and split the answer.

    `wait` is getUpdates' long-polling timeout in seconds.
    """
    http = await bot.session.create_session()
    params: dict[str, Any] = {"timeout": wait, "allowed_updates": allowed_updates}
    if offset is not None:
        params["offset"] = offset
    url = bot.session.api.api_url(token=bot.token, method="getUpdates")
    limit = aiohttp.ClientTimeout(total=wait + 10)
    async with http.post(url, json=params, timeout=limit) as response:
        return read_updates(await response.read())


class Poller:
    """Long-poll one shop bot and give each update to the intake, in order."""

    def __init__(
        self,
        intake: UpdateIntake,
        bot: Bot,
        shop_id: int,
        *,
        allowed_updates: list[str],
        wait: int = POLL_WAIT,
    ) -> None:
        self.intake = intake
        self.bot = bot
        self.shop_id = shop_id
        self.allowed_updates = allowed_updates
        self.wait = wait
        self._offset: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._handling: asyncio.Future[Verdict] | None = None

    def start(self) -> None:
        """Start polling in the background."""
        self._task = asyncio.create_task(self._run(), name=f"poll-shop-{self.shop_id}")

    async def stop(self) -> None:
        """Stop polling; an update being handled gets STOP_GRACE seconds to finish."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._handling is not None and not self._handling.done():
            await asyncio.wait([self._handling], timeout=STOP_GRACE)

    async def _run(self) -> None:
        backoff = Backoff(POLL_BACKOFF)
        while True:
            try:
                batch = await fetch_updates(
                    self.bot,
                    offset=self._offset,
                    wait=self.wait,
                    allowed_updates=self.allowed_updates,
                )
            except (aiohttp.ClientError, OSError, UnreadableAnswer) as exc:
                log.warning("shop %s: getUpdates failed: %s", self.shop_id, exc)
                await backoff.asleep()
                continue
            if await self._take(batch):
                backoff.reset()
            else:
                await backoff.asleep()

    async def _take(self, batch: list[Fetched]) -> bool:
        """Take a batch in order; False when one must be fetched again (the offset stays)."""
        for item in batch:
            if item.raw is not None:
                taking = self.intake.take_body(self.bot, item.raw, shop_id=self.shop_id)
            else:
                taking = self.intake.take(self.bot, item.data, shop_id=self.shop_id)
            self._handling = asyncio.ensure_future(taking)
            verdict = await asyncio.shield(self._handling)
            if not verdict.acknowledged:
                if item.update_id is not None:
                    self._offset = item.update_id
                return False
            if item.update_id is not None:
                self._offset = item.update_id + 1
        return True


async def telegram_updates(app: web.Application) -> AsyncIterator[None]:
    """Receive updates per NUDGE_TELEGRAM_MODE: set webhooks, or poll, or nothing."""
    from bot.web.keys import DISPATCHER, SERVICES

    services, dispatcher = app[SERVICES], app[DISPATCHER]
    mode = services.settings.telegram_mode
    pollers: list[Poller] = []
    shop_bots = await _shop_bots(services) if mode != "off" else []
    if mode == "webhook":
        for shop_id, token in shop_bots:
            try:
                await register_webhook(services, dispatcher, shop_id, token)
            except (TelegramAPIError, TelegramNetworkError) as exc:
                log.warning("shop %s: could not set the Telegram webhook: %s", shop_id, exc)
    elif mode == "polling":
        allowed = dispatcher.resolve_used_update_types()
        for shop_id, token in shop_bots:
            bot = services.bots.get(token)
            with contextlib.suppress(TelegramAPIError, TelegramNetworkError):
                await bot.delete_webhook()
            poller = Poller(update_intake(dispatcher), bot, shop_id, allowed_updates=allowed)
            poller.start()
            pollers.append(poller)
    yield
    await asyncio.gather(*(poller.stop() for poller in pollers))
    await dispatcher.storage.close()

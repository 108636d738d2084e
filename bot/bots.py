"""The Telegram side: one aiogram Dispatcher for every shop's bot, fed by webhook or polling."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from aiohttp import web

from bot.handlers import routers
from bot.handlers.context import ProfileContext
from bot.services import Services
from bot.store.fsm import build_storage
from bot.store.shops import list_shops_with_bots

log = logging.getLogger(__name__)


def build_dispatcher(services: Services) -> Dispatcher:
    """Build the dispatcher with the profile middleware, every router and FSM storage."""
    storage = build_storage(
        services.sessions, services.clock, redis_url=services.settings.redis_url
    )
    dispatcher = Dispatcher(storage=storage, services=services)
    dispatcher.update.outer_middleware(ProfileContext())
    dispatcher.include_routers(*routers())
    return dispatcher


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


async def telegram_updates(app: web.Application) -> AsyncIterator[None]:
    """Receive updates per NUDGE_TELEGRAM_MODE: set webhooks, or poll, or nothing."""
    from bot.web.keys import DISPATCHER, SERVICES

    services, dispatcher = app[SERVICES], app[DISPATCHER]
    mode = services.settings.telegram_mode
    polling: asyncio.Task[None] | None = None
    shop_bots = await _shop_bots(services) if mode != "off" else []
    if mode == "webhook":
        for shop_id, token in shop_bots:
            try:
                await register_webhook(services, dispatcher, shop_id, token)
            except (TelegramAPIError, TelegramNetworkError) as exc:
                log.warning("shop %s: could not set the Telegram webhook: %s", shop_id, exc)
    elif mode == "polling" and shop_bots:
        bots: list[Bot] = [services.bots.get(token) for _, token in shop_bots]
        for bot in bots:
            with contextlib.suppress(TelegramAPIError, TelegramNetworkError):
                await bot.delete_webhook()
        polling = asyncio.create_task(
            dispatcher.start_polling(*bots, handle_signals=False, close_bot_session=False)
        )
    yield
    if polling is not None:
        with contextlib.suppress(RuntimeError):
            await dispatcher.stop_polling()
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polling
    await dispatcher.storage.close()

"""Composition root: settings, engine, bots, web application and workers, built in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import features
from bot.bots import build_dispatcher, telegram_updates
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.db import create_engine, session_factory
from bot.delivery.courier import courier_context
from bot.flows.birthday import birthday_scheduler
from bot.flows.lifecycle import metrics_refresher
from bot.inbox_worker import inbox_worker
from bot.services import Services
from bot.telegram import BotPool
from bot.web import health, hooks, redirect, storefront, telegram
from bot.web.keys import CLOCK, DISPATCHER, ENGINE, SERVICES, SESSIONS, SETTINGS

CleanupContext = Callable[[web.Application], Any]


def build_app(
    settings: Settings,
    *,
    engine: AsyncEngine | None = None,
    clock: Clock | None = None,
    workers: bool = True,
) -> web.Application:
    """Build the one aiohttp application that serves every route of the service.

    `workers=False` leaves out the background loops (inbox worker, outbox dispatcher) so tests
    and the demo can drive them step by step; Telegram updates flow either way.
    """
    features.load()
    app = web.Application(client_max_size=1024 * 1024)
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app.cleanup_ctx.append(_resources(engine))
    app.add_routes(health.routes)
    app.add_routes(telegram.routes)
    app.add_routes(redirect.routes)
    app.add_routes(hooks.routes)
    app.add_routes(storefront.routes)
    app.cleanup_ctx.append(hooks.intake_context)
    app.cleanup_ctx.append(storefront.storefront_context)
    app.cleanup_ctx.append(telegram_updates)
    if workers:
        # background loops (inbox worker, outbox dispatcher) are appended here
        app.cleanup_ctx.append(inbox_worker)
        app.cleanup_ctx.append(courier_context)
        app.cleanup_ctx.append(birthday_scheduler)
        app.cleanup_ctx.append(metrics_refresher)
    return app


def _resources(engine: AsyncEngine | None) -> CleanupContext:
    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        owned = engine is None
        app[ENGINE] = engine or create_engine(settings.database_url)
        app[SESSIONS] = session_factory(app[ENGINE])
        bots = BotPool(settings.telegram_base)
        app[SERVICES] = Services(
            sessions=app[SESSIONS], clock=app[CLOCK], settings=settings, bots=bots
        )
        app[DISPATCHER] = build_dispatcher(app[SERVICES])
        yield
        await bots.close()
        if owned:
            await app[ENGINE].dispose()

    return context

"""Composition root: settings, engine, bots, web application and workers, built in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import features
from bot.api.app import mount as mount_api
from bot.bots import build_dispatcher, telegram_updates
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.console import mount as mount_console
from bot.db import create_engine, session_factory
from bot.delivery.courier import courier_context
from bot.delivery.redis_limiter import RedisLimiter, build_limiter, shared_redis
from bot.exclusive import exclusive
from bot.flows.birthday import birthday_scheduler
from bot.flows.campaign import follow_up_planner
from bot.flows.lifecycle import metrics_refresher
from bot.inbox_worker import inbox_worker
from bot.services import Services
from bot.support import relay_context as support_relay
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
    app[health.READINESS] = health.Readiness()
    app.cleanup_ctx.append(_resources(engine))
    app.add_routes(health.routes)
    app.add_routes(telegram.routes)
    app.add_routes(redirect.routes)
    app.add_routes(hooks.routes)
    app.add_routes(storefront.routes)
    mount_api(app)
    mount_console(app)
    app.cleanup_ctx.append(hooks.intake_context)
    app.cleanup_ctx.append(storefront.storefront_context)
    # several instances may share one PostgreSQL: one getUpdates consumer per bot (polling),
    # one instance at a time for the whole-deployment loops (bot/exclusive.py)
    if settings.telegram_mode == "polling":
        app.cleanup_ctx.append(exclusive("telegram-polling", telegram_updates))
    else:
        app.cleanup_ctx.append(telegram_updates)
    if workers:
        # background loops (inbox worker, outbox dispatcher) are appended here
        app.cleanup_ctx.append(inbox_worker)
        app.cleanup_ctx.append(courier_context)
        app.cleanup_ctx.append(exclusive("birthday-planner", birthday_scheduler))
        app.cleanup_ctx.append(exclusive("metrics-refresher", metrics_refresher))
        app.cleanup_ctx.append(exclusive("campaign-follow-ups", follow_up_planner))
        app.cleanup_ctx.append(support_relay)  # customers' messages to the support group
    return app


def _resources(engine: AsyncEngine | None) -> CleanupContext:
    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        owned = engine is None
        app[ENGINE] = engine or create_engine(settings.database_url)
        app[SESSIONS] = session_factory(app[ENGINE])
        bots = BotPool(settings.telegram_base, connections=settings.dispatch.max_in_flight + 128)
        redis = shared_redis(settings)
        app[health.READINESS].redis = redis
        limiter = build_limiter(settings, redis)
        app[SERVICES] = Services(
            sessions=app[SESSIONS],
            clock=app[CLOCK],
            settings=settings,
            bots=bots,
            limiter=limiter,
        )
        app[DISPATCHER] = build_dispatcher(app[SERVICES])
        yield
        await app[DISPATCHER].storage.close()  # again: an instance that never polled opened it
        await bots.close()
        if isinstance(limiter, RedisLimiter):
            await limiter.close()
        if redis is not None:
            await redis.aclose()
        if owned:
            await app[ENGINE].dispose()

    return context

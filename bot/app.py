"""Composition root: settings, engine, web application and workers, built in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.db import create_engine, session_factory
from bot.web import health
from bot.web.keys import CLOCK, ENGINE, SESSIONS, SETTINGS


def build_app(
    settings: Settings, *, engine: AsyncEngine | None = None, clock: Clock | None = None
) -> web.Application:
    """Build the one aiohttp application that serves every route of the service."""
    app = web.Application(client_max_size=1024 * 1024)
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app.cleanup_ctx.append(_database(engine))
    app.add_routes(health.routes)
    return app


def _database(engine: AsyncEngine | None):  # type: ignore[no-untyped-def]
    async def context(app: web.Application) -> AsyncIterator[None]:
        owned = engine is None
        app[ENGINE] = engine or create_engine(app[SETTINGS].database_url)
        app[SESSIONS] = session_factory(app[ENGINE])
        yield
        if owned:
            await app[ENGINE].dispose()

    return context

"""Loops that must run in one instance at a time, when several share one PostgreSQL database.

`exclusive(name, context)` wraps a worker (an aiohttp cleanup context). On PostgreSQL each
instance tries to take a session-level advisory lock named after the worker on a connection of
its own; the instance that holds it runs the worker, the others try again every few seconds. A
holder that loses its connection (the database restarted, the network broke) stops its worker at
once, since the server has released the lock, and competes again when the database is back. On
SQLite (one process by design) the worker simply runs.

Used for the periodic whole-deployment loops (metrics refresh, birthday planning) and long
polling (Telegram lets one getUpdates consumer per bot), not for the inbox worker or the Courier:
those claim rows with FOR UPDATE SKIP LOCKED and run everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from sqlalchemy import text

log = logging.getLogger(__name__)

RETRY_EVERY = 5.0  # seconds between attempts to take the lock, and between holder checks

Context = Callable[[web.Application], AsyncIterator[None]]


def lock_id(name: str) -> int:
    """Return the signed 64-bit advisory lock id of a worker name."""
    digest = hashlib.sha256(f"nudge:exclusive:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def exclusive(name: str, context: Context, *, retry_every: float = RETRY_EVERY) -> Context:
    """Wrap a worker so that one instance at a time runs it (on PostgreSQL)."""

    async def wrapped(app: web.Application) -> AsyncIterator[None]:
        from bot.web.keys import ENGINE

        engine = app[ENGINE]
        if engine.dialect.name != "postgresql":
            async with contextlib.asynccontextmanager(context)(app):
                yield
            return
        task = asyncio.create_task(_lead(app, name, context, retry_every), name=f"lead-{name}")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return wrapped


async def _lead(app: web.Application, name: str, context: Context, retry_every: float) -> None:
    from bot.web.keys import ENGINE

    engine = app[ENGINE]
    key = lock_id(name)
    while True:
        try:
            conn = await engine.connect()
        except Exception as exc:  # the database is away: try again later
            log.debug("%s: no database connection to take the lock: %s", name, exc)
            await asyncio.sleep(retry_every)
            continue
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            held = bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
            if held:
                await _run_holding(app, name, context, conn, retry_every)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # lost the connection (the server released the lock), or
            log.warning("%s: stopped in this instance: %s", name, exc)  # the worker failed
        finally:
            # closing the DBAPI connection releases a session lock for certain; a pooled one
            # would keep holding it
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.invalidate())
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.close())
        await asyncio.sleep(retry_every)


async def _run_holding(
    app: web.Application, name: str, context: Context, conn: Any, retry_every: float
) -> None:
    """Run the worker while the lock connection answers."""
    log.info("%s runs in this instance", name)
    async with contextlib.asynccontextmanager(context)(app):
        while True:
            await asyncio.sleep(retry_every)
            async with asyncio.timeout(retry_every * 2):
                await conn.execute(text("SELECT 1"))


__all__ = ["exclusive", "lock_id"]

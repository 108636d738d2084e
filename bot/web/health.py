"""Liveness (/healthz), readiness (/readyz) and metrics endpoints.

`/healthz` answers 200 while the process serves requests, whatever its dependencies do (a
liveness probe must not restart every instance while the database is away); its body still says
whether the database answered. `/readyz` answers 200 only when this instance can do its work:
the database answers, Redis answers when NUDGE_REDIS_URL is set, and the shops' bots are
connected. Otherwise 503, naming each failed check and why, without any secret.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import text

from bot import metrics
from bot.config import mask_secrets
from bot.web.keys import ENGINE, SETTINGS

routes = web.RouteTableDef()

CHECK_TIMEOUT = 2.0  # seconds each readiness check may take


@dataclass
class Readiness:
    """What /readyz consults besides the database, filled in as the service starts (workers
    that start later, such as long polling in one instance, fill it in without touching the
    started application)."""

    redis: Any = None  # the redis.asyncio client, when NUDGE_REDIS_URL is set
    bot_sync: Any = None  # bot.bots.BotSync, while this instance receives Telegram updates


READINESS = web.AppKey("readiness", Readiness)


def _reason(exc: BaseException) -> str:
    """Describe a failure in one line: its kind and message, URL passwords masked."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT:.0f} s"
    message = mask_secrets(str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {message[0][:200]}" if message else type(exc).__name__


async def check_database(app: web.Application) -> dict[str, Any]:
    """Run SELECT 1 on the service's database."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            async with app[ENGINE].connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means not ready
        return {"ok": False, "error": _reason(exc)}
    return {"ok": True}


async def check_redis(app: web.Application) -> dict[str, Any]:
    """PING Redis when one is configured."""
    client = app[READINESS].redis if READINESS in app else None
    if not app[SETTINGS].redis_url or client is None:
        return {"ok": True, "configured": False}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await client.ping()  # type: ignore[attr-defined]
    except Exception as exc:  # any failure means not ready
        return {"ok": False, "configured": True, "error": _reason(exc)}
    return {"ok": True, "configured": True}


def check_bots(app: web.Application) -> dict[str, Any]:
    """Report the shops' bots: connected, and those whose last connect or set-up failed."""
    mode = app[SETTINGS].telegram_mode
    sync = app[READINESS].bot_sync if READINESS in app else None
    if mode == "off" or sync is None:
        return {"ok": True, "mode": mode}
    connected = sorted(sync.connected)  # type: ignore[attr-defined]
    failing = sync.failing()  # type: ignore[attr-defined]
    report: dict[str, Any] = {"ok": True, "mode": mode, "connected": len(connected)}
    if failing:
        report["failing"] = failing
    if failing and not connected:
        report["ok"] = False
        report["error"] = "no bot connected: " + ", ".join(
            f"shop {item['shop']} ({item['step']} failed)" for item in failing
        )
    return report


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Answer 200 while the process serves; say whether the database answered."""
    database = await check_database(request.app)
    return web.json_response(
        {"status": "ok", "database": "ok" if database["ok"] else "unavailable"}
    )


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Answer 200 when the database, Redis (if configured) and the bots are fine, else 503."""
    database, redis = await asyncio.gather(check_database(request.app), check_redis(request.app))
    checks = {"database": database, "redis": redis, "bots": check_bots(request.app)}
    failed = [name for name, check in checks.items() if not check["ok"]]
    if failed:
        body = {"status": "unavailable", "failed": failed, "checks": checks}
        return web.json_response(body, status=503)
    return web.json_response({"status": "ready", "checks": checks})


@routes.get("/metrics")
async def prometheus(request: web.Request) -> web.Response:
    """Expose the service's metrics in Prometheus text format."""
    body, content_type = metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response

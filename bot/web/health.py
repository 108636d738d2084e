"""Liveness and metrics endpoints."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text

from bot import metrics
from bot.web.keys import ENGINE

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Answer 200 when the database answers, 503 otherwise."""
    try:
        async with request.app[ENGINE].connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any database failure means not healthy
        return web.json_response(
            {"status": "unavailable", "database": type(exc).__name__}, status=503
        )
    return web.json_response({"status": "ok", "database": "ok"})


@routes.get("/metrics")
async def prometheus(request: web.Request) -> web.Response:
    """Expose the service's metrics in Prometheus text format."""
    body, content_type = metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response

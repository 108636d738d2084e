"""GET /r/{token}: log a click on a tracked link in a message, then redirect (302)."""

from __future__ import annotations

from aiohttp import web

from bot.offers import follow_click
from bot.web.keys import SERVICES

routes = web.RouteTableDef()


@routes.get("/r/{token:[A-Za-z0-9_-]{8,128}}")
async def tracked_redirect(request: web.Request) -> web.Response:
    """Redirect a valid tracked link; answer 404 to a forged or unknown one."""
    found = await follow_click(request.app[SERVICES], request.match_info["token"])
    if found is None:
        return web.Response(status=404, text="This link is not valid.\n")
    raise web.HTTPFound(found.url)

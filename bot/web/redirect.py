"""GET /r/{token}: log a click on a tracked link in a message, then redirect (302).

The target comes from the database (a cart's recovery URL, a product URL, the shop's catalog
setting). Only a URL that passes the same strict check deliveries pass at the door
(`integrations.base.url_problem`) is served; anything else stored earlier answers 404, never
500 and never an open redirect.
"""

from __future__ import annotations

import logging

from aiohttp import web

from bot.offers import follow_click
from bot.web.keys import SERVICES
from integrations.base import printable, url_problem

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

NOT_VALID = "This link is not valid.\n"


@routes.get("/r/{token:[A-Za-z0-9_-]{8,128}}")
async def tracked_redirect(request: web.Request) -> web.Response:
    """Redirect a valid tracked link; answer 404 to a forged or unknown one, or a bad target."""
    found = await follow_click(request.app[SERVICES], request.match_info["token"])
    if found is None:
        return web.Response(status=404, text=NOT_VALID)
    problem = url_problem(found.url)
    if problem is None:
        try:
            redirect = web.HTTPFound(found.url)
        except ValueError as exc:  # aiohttp refused what the check let through
            problem = str(exc)
        else:
            raise redirect
    log.warning("a tracked link's stored target cannot be served: %s", printable(problem))
    return web.Response(status=404, text=NOT_VALID)

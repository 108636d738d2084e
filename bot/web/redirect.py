"""GET /r/{token}: log a click on a tracked link in a message, then redirect (302).

The target comes from the database (a cart's recovery URL, a product URL, the shop's catalog
or storefront). Only a URL that passes the same strict check deliveries pass at the door
(`integrations.base.url_problem`) is served. A forged link, or one whose target is gone or
cannot be served, gets a small page in the customer's language (else the browser's, else the
shop's) that leads to the shop when the shop is known: 404, never 500, never an open redirect.
A HEAD request (link checkers, previews) answers the same without counting a click.
"""

from __future__ import annotations

import re

from aiohttp import web

from bot.i18n import SUPPORTED_LOCALES, locale_scope, pick_locale
from bot.messages.links import dead_link_page
from bot.offers import DeadLink, follow_click
from bot.web.keys import SERVICES

routes = web.RouteTableDef()

_LANGUAGE_RANGE = re.compile(
    r"^\s*([A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*)\s*(?:;\s*q=([0-9.]+))?"
)


def accepted_languages(header: str | None) -> list[str]:
    """Return the language tags of an Accept-Language header, most wanted first."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((header or "").split(",")[:20]):
        match = _LANGUAGE_RANGE.match(part)
        if not match:
            continue
        try:
            weight = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            continue
        if weight > 0:
            ranked.append((-weight, index, match.group(1)))
    return [tag for _, _, tag in sorted(ranked)]


def _page(request: web.Request, dead: DeadLink) -> web.Response:
    offered = dead.offered or SUPPORTED_LOCALES
    locale = pick_locale(
        dead.customer_locale,
        *accepted_languages(request.headers.get("Accept-Language")),
        dead.shop_locale,
        offered=offered,
    )
    with locale_scope(locale):
        body = dead_link_page(shop_name=dead.shop_name, shop_url=dead.shop_url)
    return web.Response(
        status=404,
        text=body,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Content-Language": locale},
    )


@routes.get("/r/{token:[A-Za-z0-9_-]{8,128}}")
async def tracked_redirect(request: web.Request) -> web.Response:
    """Redirect a valid tracked link (a GET counts as a click); show a page for a dead one."""
    found = await follow_click(
        request.app[SERVICES], request.match_info["token"], count=request.method == "GET"
    )
    if isinstance(found, DeadLink):
        return _page(request, found)
    try:
        redirect = web.HTTPFound(found.url)
    except ValueError:  # aiohttp refused what the check let through
        return _page(request, DeadLink())
    raise redirect

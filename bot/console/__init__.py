"""The web console at /console/: server-rendered pages for shop owners (see views.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot.i18n import _, format_datetime, format_money, format_number, ngettext
from bot.store.customer_card import reason_in_words

HERE = Path(__file__).resolve().parent


@jinja2.pass_context
def _money(context: Any, amount: Any, currency: str) -> str:
    """`{{ value|money(shop.currency) }}`: money as the reader's language writes it."""
    return format_money(Decimal(str(amount or 0)), currency, context["locale"])


@jinja2.pass_context
def _moment(context: Any, value: Any, zone: str = "UTC") -> str:
    """`{{ iso|moment(shop.timezone) }}`: a moment in the shop's zone, in the reader's language."""
    if not value:
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return format_datetime(moment, context["locale"], zone, fmt="short")
    except LookupError:
        return format_datetime(moment, context["locale"], "UTC", fmt="short")


@jinja2.pass_context
def _number(context: Any, value: Any) -> str:
    """`{{ n|number }}`: a count with the reader's digit grouping."""
    return format_number(value or 0, context["locale"])


# Why a console request was refused, by the key its handler raised with (`text=`), as a page in
# the reader's language (error.html says each one in words).
REFUSALS = frozenset({"expired", "read_only", "owner_only"})


@web.middleware
async def _refusals(request: web.Request, handler: Any) -> web.StreamResponse:
    """Answer a refused console request (403, 404) with a page in the reader's language."""
    if not request.path.startswith("/console") or request.path.startswith("/console/static"):
        return await handler(request)
    try:
        return await handler(request)
    except (web.HTTPForbidden, web.HTTPNotFound) as exc:
        from bot.console.views import render

        reason = exc.text if exc.text in REFUSALS else "not_found"
        if isinstance(exc, web.HTTPForbidden) and reason == "not_found":
            reason = "forbidden"
        return render(request, "error.html", {"reason": reason}, status=exc.status)


def mount(app: web.Application) -> None:
    """Add the console's pages and static files to the app."""
    from bot.console.support_views import routes as support_routes
    from bot.console.views import routes

    environment = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        extensions=["jinja2.ext.i18n"],
    )
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        lambda message: _(message), lambda one, many, n: ngettext(one, many, n), newstyle=False
    )
    environment.globals["reason_in_words"] = reason_in_words  # type: ignore[attr-defined]
    environment.filters["money"] = _money  # type: ignore[attr-defined]
    environment.filters["moment"] = _moment  # type: ignore[attr-defined]
    environment.filters["number"] = _number  # type: ignore[attr-defined]
    app.middlewares.append(_refusals)
    app.router.add_static("/console/static", HERE / "static", append_version=False)
    app.add_routes(routes)
    app.add_routes(support_routes)

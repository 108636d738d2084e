"""The web console at /console/: server-rendered pages for shop owners (see views.py)."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot.i18n import _, ngettext

HERE = Path(__file__).resolve().parent


def mount(app: web.Application) -> None:
    """Add the console's pages and static files to the app."""
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
    app.router.add_static("/console/static", HERE / "static", append_version=False)
    app.add_routes(routes)

"""The page a broken or expired tracked link shows: small, localized, with a way to the shop."""

from __future__ import annotations

import html

from bot.i18n import _, get_i18n


def dead_link_page(*, shop_name: str | None, shop_url: str | None) -> str:
    """Return the HTML page (in the current locale) for a link that leads nowhere any more."""
    title = _("This link no longer works")
    if shop_name:
        reason = _(
            "The offer may have ended, or the link was copied incompletely. Everything else at "
            "{shop} is still there."
        ).format(shop=shop_name)
    else:
        reason = _("The offer may have ended, or the link was copied incompletely.")
    parts = [
        "<!doctype html>",
        f'<html lang="{html.escape(get_i18n().current_locale)}">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="robots" content="noindex">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font:17px/1.5 system-ui,sans-serif;max-width:32rem;margin:12vh auto;"
        "padding:0 1.25rem;color:#222}a.go{display:inline-block;margin-top:1rem;"
        "padding:.6rem 1.2rem;border-radius:.5rem;background:#2481cc;color:#fff;"
        "text-decoration:none}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(reason)}</p>",
    ]
    if shop_url:
        label = _("Go to {shop}").format(shop=shop_name) if shop_name else _("Go to the shop")
        parts.append(
            f'<p><a class="go" href="{html.escape(shop_url, quote=True)}" rel="noopener">'
            f"{html.escape(label)}</a></p>"
        )
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)

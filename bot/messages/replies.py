"""Texts of the support path: acknowledging a customer's message and relaying an answer."""

from __future__ import annotations

import html

from bot.i18n import _


def received() -> str:
    """Acknowledge a customer's message, photo or voice note."""
    return _("Thank you! We have passed your message to our team; they will answer here.")


def support_answer(shop_name: str, text: str) -> str:
    """Relay an agent's answer to the customer."""
    return _("Message from {shop}:\n\n{text}").format(
        shop=html.escape(shop_name, quote=False), text=html.escape(text, quote=False)
    )

"""The abandoned-cart reminder and the follow-up offer: localized text and buttons."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from aiogram.utils.formatting import Text

from bot.i18n import _, format_money
from bot.messages.common import CART_TOPIC, flow_topic_label, more_items, topic_label
from bot.messages.names import addressed
from bot.messages.render import Button

MAX_LISTED_ITEMS = 5
CAPTION_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class Line:
    """One cart line as the message shows it."""

    title: str
    quantity: int
    price: Decimal | None


def _esc(value: str) -> str:
    return Text(value).as_html()


def reminder_text(
    *,
    first_name: str | None,
    lines: Sequence[Line],
    total: Decimal | None,
    currency: str,
    locale: str,
    code: str | None = None,
    country: str | None = None,
) -> str:
    """Compose the reminder: greeting, up to five items, "and N more", total, optional code."""
    name = addressed(first_name, locale)
    if name:
        head = _("{name}, you left something in your cart:").format(name=_esc(name))
    else:
        head = _("You left something in your cart:")
    rows = [f"<b>{head}</b>", ""]
    for line in lines[:MAX_LISTED_ITEMS]:
        row = f"• {_esc(line.title)}"
        if line.quantity > 1:
            row += f" × {line.quantity}"
        if line.price is not None:
            row += f" — {format_money(line.price * line.quantity, currency, locale, country)}"
        rows.append(row)
    if len(lines) > MAX_LISTED_ITEMS:
        rows.append(more_items(len(lines) - MAX_LISTED_ITEMS))
    if total is not None:
        rows += [
            "",
            _("Total: {total}").format(
                total=f"<b>{format_money(total, currency, locale, country)}</b>"
            ),
        ]
    rows.append("")
    if code:
        rows.append(
            _("Your cart is still waiting. Here is a personal promo code for you: {code}").format(
                code=f"<code>{_esc(code)}</code>"
            )
        )
    else:
        rows.append(_("Complete your order while the items are still in stock."))
    return "\n".join(rows)


def followup_text(*, first_name: str | None, code: str, locale: str | None = None) -> str:
    """Compose the broader offer that follows a "not interested"."""
    code_html = f"<code>{_esc(code)}</code>"
    name = addressed(first_name, locale)
    if name:
        return _(
            "{name}, perhaps something else from our catalog will catch your eye? Here is your "
            "personal promo code: {code}"
        ).format(name=_esc(name), code=code_html)
    return _(
        "Perhaps something else from our catalog will catch your eye? Here is your personal "
        "promo code: {code}"
    ).format(code=code_html)


def offer_buttons(
    *, catalog_url: str | None, order_url: str | None, not_interested: str | None
) -> list[list[Button]]:
    """Build the offer keyboard: Open catalog, Place order, Not interested (when available)."""
    rows: list[list[Button]] = []
    links = []
    if catalog_url:
        links.append(Button(text=_("Open catalog"), url=catalog_url))
    if order_url:
        links.append(Button(text=_("Place order"), url=order_url))
    if links:
        rows.append(links)
    if not_interested:
        rows.append([Button(text=_("Not interested"), callback_data=not_interested)])
    return rows


def acknowledged_buttons(*, topic: str, ack: str, undo: str) -> list[list[Button]]:
    """Replace an offer's keyboard after "not interested": what stops, and Undo."""
    flow = flow_topic_label(topic)
    if topic == CART_TOPIC:
        done = _("✓ No more cart reminders")
    elif flow:
        done = _("✓ Turned off: {topic}").format(topic=flow)
    else:
        done = _("✓ No reminders about “{topic}”").format(topic=topic_label(topic))
    return [
        [Button(text=done, callback_data=ack)],
        [Button(text=_("Undo"), callback_data=undo)],
    ]


def not_interested_toast(topic: str) -> str:
    """Answer the "Not interested" tap, naming what stops (a toast shows at most 200 chars)."""
    if topic == CART_TOPIC:
        return _("Got it: no more cart reminders. You can turn them back on in /settings.")
    flow = flow_topic_label(topic)
    if flow:
        return _("Got it: no more “{topic}”. You can turn them back on in /settings.").format(
            topic=flow
        )
    return _(
        "Got it: no more reminders about “{topic}”. You can turn them back on in /settings."
    ).format(topic=topic_label(topic))


def undo_toast(topic: str) -> str:
    """Answer the Undo tap, naming what is back on."""
    if topic == CART_TOPIC:
        return _("Done: cart reminders are back on.")
    flow = flow_topic_label(topic)
    if flow:
        return _("Done: “{topic}” are back on.").format(topic=flow)
    return _("Done: reminders about “{topic}” are back on.").format(topic=topic_label(topic))


def inactive_button_toast() -> str:
    """Answer a tap on a button that no longer does anything (old, foreign or forged)."""
    return _("This button is no longer active.")

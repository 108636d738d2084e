"""The lifecycle flows' messages: welcome series, thank-you, restock and win-back texts.

Each text is a greeting (with the customer's name in the form the language needs, or none
when unsure: `bot/messages/names.py`) and a body; the shop's name is never declined, codes
are shown as `<code>` so a tap copies them. Keyboards come from `bot.messages.cart`
(`offer_buttons`: Open catalog, Not interested), built inside the locale scope.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from aiogram.utils.formatting import Text

from bot.i18n import _
from bot.messages.names import addressed

MAX_LISTED_ITEMS = 3


class WelcomeStep(StrEnum):
    """Which text a welcome step shows: the first, a middle one, or the last (with the code)."""

    FIRST = "first"
    MIDDLE = "middle"
    LAST = "last"


def welcome_step_of(step: int, steps: int) -> WelcomeStep:
    """Return the text of step `step` (1-based) in a series of `steps`: the last gets the gift."""
    if step >= steps:
        return WelcomeStep.LAST
    return WelcomeStep.FIRST if step == 1 else WelcomeStep.MIDDLE


def _esc(value: str) -> str:
    return Text(value).as_html()


def _code(code: str) -> str:
    return f"<code>{_esc(code)}</code>"


def greeting(first_name: str | None, locale: str | None = None) -> str:
    """Greet the customer by name when the language's form of it is certain, else without."""
    name = addressed(first_name, locale)
    if name:
        return _("Hello, {name}!").format(name=_esc(name))
    return _("Hello!")


def welcome_text(
    *,
    step: WelcomeStep,
    shop_name: str,
    first_name: str | None,
    locale: str,
    code: str | None = None,
) -> str:
    """Compose one message of the welcome series."""
    shop = _esc(shop_name)
    if step is WelcomeStep.FIRST:
        body = _(
            "Thank you for joining {shop} in Telegram. Have a look at our catalog: new arrivals "
            "and bestsellers are waiting for you."
        ).format(shop=shop)
    elif step is WelcomeStep.MIDDLE:
        body = _(
            "Still looking for something special? Our catalog has something for every taste — "
            "tap the button below to open it."
        )
    elif code:
        body = _(
            "A gift for your first order at {shop}: your personal promo code {code}. Enter it "
            "at checkout."
        ).format(shop=shop, code=_code(code))
    else:
        body = _(
            "Your first order at {shop} is just a few taps away. We will be glad to see you in "
            "our catalog!"
        ).format(shop=shop)
    return f"{greeting(first_name, locale)} {body}"


def thanks_text(
    *, shop_name: str, order_name: str | None, first_name: str | None, locale: str
) -> str:
    """Compose the thank-you after an order was paid (or delivered)."""
    shop = _esc(shop_name)
    if order_name:
        head = _("Thank you for your order {order} at {shop}!").format(
            order=f"<b>{_esc(order_name)}</b>", shop=shop
        )
    else:
        head = _("Thank you for your order at {shop}!").format(shop=shop)
    tail = _(
        "We hope you enjoy your purchase. If you have any questions, just write to us in this "
        "chat."
    )
    return f"{greeting(first_name, locale)} {head} {tail}"


def code_line(code: str) -> str:
    """Offer the customer's personal promo code for the next order."""
    return _("Your personal promo code for the next order: {code}").format(code=_code(code))


def restock_text(
    *,
    shop_name: str,
    first_name: str | None,
    locale: str,
    items: Sequence[str],
    code: str | None = None,
) -> str:
    """Compose "time to restock / you may like" with the last order's items (up to three)."""
    head = _("Time to restock?")
    rows = [f"<b>{head}</b>", ""]
    if items:
        rows.append(
            f"{greeting(first_name, locale)} "
            + _("Your last order at {shop}:").format(shop=_esc(shop_name))
        )
        rows += [f"• {_esc(title)}" for title in items[:MAX_LISTED_ITEMS]]
        rows.append("")
        rows.append(
            _(
                "If something is running out, order again in a couple of taps — and see what "
                "else you may like in our catalog."
            )
        )
    else:
        rows.append(
            f"{greeting(first_name, locale)} "
            + _(
                "If something from your last order at {shop} is running out, order again in a "
                "couple of taps — and see what else you may like in our catalog."
            ).format(shop=_esc(shop_name))
        )
    if code:
        rows += ["", code_line(code)]
    return "\n".join(rows)


def winback_text(
    *,
    lapsed: bool,
    shop_name: str,
    first_name: str | None,
    locale: str,
    code: str | None = None,
) -> str:
    """Compose the win-back: "we miss you" on entering at_risk, the last one on lapsing."""
    shop = _esc(shop_name)
    if lapsed:
        body = _(
            "We have not seen you at {shop} for a long time. This is our last reminder — we "
            "would be glad to see you again."
        ).format(shop=shop)
    else:
        body = _(
            "We miss you! It has been a while since your last order at {shop}, and there is a "
            "lot new in our catalog."
        ).format(shop=shop)
    text = f"{greeting(first_name, locale)} {body}"
    if code:
        text += "\n\n" + code_line(code)
    return text

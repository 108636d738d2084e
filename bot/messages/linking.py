"""Texts and keyboards of linking a chat: greetings, the phone button, refusals."""

from __future__ import annotations

from aiogram.types import KeyboardButton, ReplyKeyboardMarkup, ReplyKeyboardRemove
from aiogram.utils.formatting import Text

from bot.i18n import _
from bot.messages.names import addressed


def _safe(value: str) -> str:
    return Text(value).as_html()


def welcome(first_name: str | None, shop_name: str) -> str:
    """Greet a customer whose chat was just linked, and say how to change or stop messages."""
    name = addressed(first_name)
    if name:
        greeting = _(
            "Hello, {name}! You are subscribed to updates from {shop}: we will remind you about "
            "items left in your cart and send you personal offers."
        ).format(name=_safe(name), shop=_safe(shop_name))
    else:
        greeting = _(
            "Hello! You are subscribed to updates from {shop}: we will remind you about items "
            "left in your cart and send you personal offers."
        ).format(shop=_safe(shop_name))
    return f"{greeting}\n\n{how_to_change()}"


def how_to_change() -> str:
    """Say where the language and offers are changed, and how to unsubscribe."""
    return _(
        "You can change the language or pause offers in /settings, and unsubscribe at any time "
        "with /stop."
    )


def already_linked(shop_name: str) -> str:
    """Tell a returning customer their chat is already linked."""
    return _("Welcome back! You are already subscribed to updates from {shop}.").format(
        shop=_safe(shop_name)
    )


def ask_for_phone(shop_name: str) -> str:
    """Greet an unknown chat and ask for the phone number."""
    return _(
        "Hello! This is the {shop} bot. Share your phone number with the button below so we "
        "can find your orders and remind you about your cart."
    ).format(shop=_safe(shop_name))


def share_phone_keyboard() -> ReplyKeyboardMarkup:
    """Offer the one-tap "Share phone number" button."""
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=_("Share phone number"), request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def no_keyboard() -> ReplyKeyboardRemove:
    """Remove the phone button once it has done its job."""
    return ReplyKeyboardRemove()


def invalid_link() -> str:
    """Explain that a start link is not valid, politely."""
    return _(
        "Sorry, this link doesn't work. Please open the link from the shop again or share your "
        "phone number with the button below."
    )


def expired_link() -> str:
    """Explain that a start link has expired."""
    return _(
        "This link has expired. Please open a fresh link from the shop or share your phone "
        "number with the button below."
    )


def refused() -> str:
    """Say the chat cannot be subscribed (the shop erased this customer's data)."""
    return _("Sorry, we can't subscribe this chat. Please contact the shop if this is a mistake.")


def not_own_contact() -> str:
    """Ask for the customer's own number rather than someone else's contact."""
    return _("Please share your own phone number with the button below.")


def unreadable_phone() -> str:
    """Say the shared phone number could not be read."""
    return _("We couldn't read this phone number. Please try the button below again.")


def link_taken(shop_name: str) -> str:
    """Refuse a link whose profile is already linked to another chat."""
    return _(
        "This link is already connected to another Telegram account, so we can't use it here. "
        "If it's yours, please contact {shop} and we'll sort it out."
    ).format(shop=_safe(shop_name))


def phone_taken(shop_name: str) -> str:
    """Refuse a shared phone number whose profile is already linked to another chat."""
    return _(
        "This phone number is already connected to another Telegram account, so we can't "
        "link it here. If it's yours, please contact {shop} and we'll sort it out."
    ).format(shop=_safe(shop_name))

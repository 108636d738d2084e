"""Texts and keyboards of /settings, /stop, /help and subscribing again after /stop."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from babel import Locale

from bot.callbacks import SettingsAction, SettingsCallback
from bot.i18n import SUPPORTED_LOCALES, _, format_date
from bot.messages.common import CART_TOPIC, flow_topic_label, topic_label


def _safe(value: str) -> str:
    return html.escape(value, quote=False)


def _button(text: str, action: SettingsAction, arg: str = "") -> InlineKeyboardButton:
    packed = SettingsCallback(action=action, arg=arg).pack()
    assert len(packed.encode()) <= 64, packed
    return InlineKeyboardButton(text=text, callback_data=packed)


def language_name(locale: str) -> str:
    """Return a language's own name, capitalized: English, Русский, Українська, Polski."""
    name = Locale.parse(locale).get_display_name(locale) or locale
    return name[:1].upper() + name[1:]


def settings_button() -> InlineKeyboardMarkup:
    """The small Settings button under /help."""
    return InlineKeyboardMarkup(inline_keyboard=[[_button(_("⚙️ Settings"), SettingsAction.MENU)]])


def menu(*, locale: str, subscribed: bool, paused_until: datetime | None, timezone: str) -> str:
    """Describe the customer's current settings."""
    lines = [
        _("<b>Settings</b>"),
        _("Language: {language}").format(language=language_name(locale)),
    ]
    if not subscribed:
        lines.append(_("Messages: you are unsubscribed"))
    elif paused_until is not None:
        until = format_date(paused_until.astimezone(_zone(timezone)).date(), locale)
        lines.append(_("Offers: paused until {date}").format(date=until))
    else:
        lines.append(_("Messages: on"))
    return "\n".join(lines)


def _zone(name: str):  # type: ignore[no-untyped-def]
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def menu_keyboard(*, subscribed: bool, paused: bool) -> InlineKeyboardMarkup:
    """Language, topics, pause or resume, unsubscribe or subscribe."""
    rows = [
        [_button(_("🌐 Language"), SettingsAction.LANGUAGES)],
        [_button(_("Reminders turned off"), SettingsAction.TOPICS)],
    ]
    if subscribed:
        if paused:
            rows.append([_button(_("Resume offers"), SettingsAction.RESUME)])
        else:
            rows.append([_button(_("Pause offers for 30 days"), SettingsAction.PAUSE)])
        rows.append([_button(_("Unsubscribe"), SettingsAction.UNSUBSCRIBE)])
    else:
        rows.append([_button(_("Subscribe again"), SettingsAction.SUBSCRIBE)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def back_row() -> list[InlineKeyboardButton]:
    """A row with the button back to the settings menu."""
    return [_button(_("« Settings"), SettingsAction.MENU)]


def back_keyboard() -> InlineKeyboardMarkup:
    """Only the button back to the settings menu."""
    return InlineKeyboardMarkup(inline_keyboard=[back_row()])


def choose_language() -> str:
    """Ask which language to use."""
    return _("Choose your language:")


def languages_keyboard(offered: Sequence[str] = SUPPORTED_LOCALES) -> InlineKeyboardMarkup:
    """One button per language the shop offers, in its own name."""
    rows = [
        [_button(language_name(locale), SettingsAction.LANGUAGE, locale)] for locale in offered
    ]
    rows.append(back_row())
    return InlineKeyboardMarkup(inline_keyboard=rows)


def language_changed() -> str:
    """Confirm the new language (rendered in it)."""
    return _("Done! From now on we will write to you in English.")


def topics(names: list[str]) -> str:
    """List the topics the customer turned off, or say there are none."""
    if not names:
        return _(
            "You haven't turned anything off. When you tap “Not interested” under a reminder, "
            "its category appears here."
        )
    return _("You turned these off with “Not interested”. Tap one to get its reminders again.")


def topics_keyboard(items: list[tuple[int, str]]) -> InlineKeyboardMarkup:
    """One undo button per excluded topic: (exclusion id, topic)."""
    rows = [
        [
            _button(
                _("↩️ {topic}").format(topic=topic_label(topic)),
                SettingsAction.UNDO_TOPIC,
                str(i),
            )
        ]
        for i, topic in items
    ]
    rows.append(back_row())
    return InlineKeyboardMarkup(inline_keyboard=rows)


def topic_restored(topic: str) -> str:
    """Confirm a topic is back on."""
    if topic == CART_TOPIC:
        return _("Cart reminders are back on.")
    flow = flow_topic_label(topic)
    if flow:
        return _("“{topic}” are back on.").format(topic=_safe(flow))
    return _("Reminders about “{topic}” are back on.").format(topic=_safe(topic_label(topic)))


def paused(until: datetime, locale: str, timezone: str) -> str:
    """Confirm the 30-day pause."""
    day = format_date(until.astimezone(_zone(timezone)).date(), locale)
    return _(
        "Done: no offers until {date}. Order updates and replies to your messages will still "
        "reach you."
    ).format(date=day)


def resumed() -> str:
    """Confirm offers are back on."""
    return _("Offers are back on.")


def unsubscribed(shop_name: str) -> str:
    """Confirm /stop or Unsubscribe."""
    return _(
        "You are unsubscribed and will not get messages from {shop}. Send /start any time to "
        "subscribe again."
    ).format(shop=_safe(shop_name))


def not_subscribed() -> str:
    """Answer /stop from a chat that is not linked or already unsubscribed."""
    return _("You are not subscribed to any messages.")


def resubscribe_question(shop_name: str) -> str:
    """Ask an unsubscribed customer who sent /start whether to subscribe again."""
    return _("You unsubscribed earlier. Subscribe to updates from {shop} again?").format(
        shop=_safe(shop_name)
    )


def resubscribe_keyboard() -> InlineKeyboardMarkup:
    """Yes / No."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button(_("Yes, subscribe"), SettingsAction.SUBSCRIBE),
                _button(_("No, thanks"), SettingsAction.STAY_OUT),
            ]
        ]
    )


def resubscribed(shop_name: str) -> str:
    """Confirm the customer is subscribed again."""
    return _("Welcome back! You are subscribed to updates from {shop} again.").format(
        shop=_safe(shop_name)
    )


def stays_unsubscribed() -> str:
    """Confirm the customer stays unsubscribed."""
    return _("Okay, you stay unsubscribed.")


def help_text(shop_name: str) -> str:
    """Say what the bot does and how to reach a person."""
    return _(
        "This is the {shop} bot. We remind you about items left in your cart, send personal "
        "offers and sometimes ask a short question to make them more relevant.\n\n"
        "To reach a person, just write your question here: our team will answer in this chat."
        "\n\n/settings: language, reminders turned off, pause or unsubscribe\n/stop: "
        "unsubscribe from all messages"
    ).format(shop=_safe(shop_name))


def button_refused() -> str:
    """Refuse a tap on a button that is not valid (foreign, tampered or gone)."""
    return _("Sorry, this button no longer works.")

"""Every inline-button callback the bot understands, as aiogram CallbackData factories.

Callback data never carries payloads: it names an action and a signed reference to the outbox
row the button came from, so a tampered or foreign tap is refused server-side.
"""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData

from bot.signing import BadToken, Signer

_PURPOSE = "callback"


class OfferAction(StrEnum):
    """What a tap on an offer's button asks for."""

    NOT_INTERESTED = "ni"
    UNDO = "undo"
    ACK = "ack"


class OfferCallback(CallbackData, prefix="o"):
    """A tap on an offer message: the action and the signed outbox row reference."""

    action: OfferAction
    ref: str


class SurveyAction(StrEnum):
    """What a tap on a survey button asks for."""

    MONTH = "m"
    DAY = "d"
    MONTHS = "b"
    CHOICE = "c"
    SKIP = "s"


class SurveyCallback(CallbackData, prefix="sv"):
    """A tap on a survey message: the action, a number (month, day, choice) and the signed ref."""

    action: SurveyAction
    ref: str
    value: int = 0
    day: int = 0


class NpsCallback(CallbackData, prefix="np"):
    """A tap on an NPS score button."""

    ref: str
    score: int


class SettingsAction(StrEnum):
    """What a tap in the settings asks for."""

    MENU = "menu"
    LANGUAGES = "langs"
    LANGUAGE = "lang"
    TOPICS = "topics"
    UNDO_TOPIC = "undo"
    PAUSE = "pause"
    RESUME = "resume"
    UNSUBSCRIBE = "unsub"
    SUBSCRIBE = "sub"
    STAY_OUT = "no"


class SettingsCallback(CallbackData, prefix="st"):
    """A tap in the settings: the action and its argument (a locale or an exclusion id)."""

    action: SettingsAction
    arg: str = ""


def sign_ref(secret_key: str, outbox_id: int) -> str:
    """Return a short signed reference to an outbox row."""
    return Signer(secret_key, _PURPOSE, mac_bytes=9).sign_ints(outbox_id)


def read_ref(secret_key: str, ref: str) -> int | None:
    """Return the outbox id a reference names, or None when it is forged or malformed."""
    try:
        return Signer(secret_key, _PURPOSE, mac_bytes=9).unsign_ints(ref, 1)[0]
    except BadToken:
        return None


def offer_callback(secret_key: str, action: OfferAction, outbox_id: int) -> str:
    """Pack an offer button's callback data (at most 64 bytes)."""
    data = OfferCallback(action=action, ref=sign_ref(secret_key, outbox_id)).pack()
    assert len(data.encode()) <= 64, data
    return data

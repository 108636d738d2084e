"""Texts and keyboards of surveys: the birthday question, shop questions, NPS, greetings.

Everything here runs inside a locale context (an update's or `locale_scope`), so `_()` picks
the customer's language; keyboards are built by functions for the same reason.
"""

from __future__ import annotations

import html
from datetime import date

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from babel.dates import format_skeleton

from bot.callbacks import NpsCallback, SurveyAction, SurveyCallback
from bot.dates import Birthday, days_in_month, month_names
from bot.i18n import _, format_date
from bot.messages.names import addressed

EXAMPLE_DAY = date(1990, 3, 12)


def _safe(value: str) -> str:
    return html.escape(value, quote=False)


def _button(text: str, data: CallbackData) -> InlineKeyboardButton:
    packed = data.pack()
    assert len(packed.encode()) <= 64, packed
    return InlineKeyboardButton(text=text, callback_data=packed)


def _rows(buttons: list[InlineKeyboardButton], width: int) -> list[list[InlineKeyboardButton]]:
    return [buttons[i : i + width] for i in range(0, len(buttons), width)]


def day_and_month(birthday: Birthday, locale: str) -> str:
    """Write a birthday the way the locale does: "12 марта", "March 12", "12 marca 1990"."""
    if birthday.year is not None:
        return format_date(date(birthday.year, birthday.month, birthday.day), locale, "long")
    return format_skeleton("MMMMd", birthday.on_year(2000), locale=locale)


# ------------------------------------------------------------------------------ birthday


def birthday_question(locale: str) -> str:
    """Ask for the customer's birthday."""
    return _(
        "When is your birthday? We would love to send you a gift on the day. Type the date, "
        "for example {example}, or pick the month below. The year is optional."
    ).format(example=day_and_month(Birthday(EXAMPLE_DAY.month, EXAMPLE_DAY.day), locale))


def birthday_retry(locale: str) -> str:
    """Ask again, politely, after a date that could not be read."""
    return _(
        "Sorry, we couldn't read that date. Please type the day and the month, for example "
        "{example}, or pick the month below."
    ).format(example=day_and_month(Birthday(EXAMPLE_DAY.month, EXAMPLE_DAY.day), locale))


def months_keyboard(ref: str, locale: str) -> InlineKeyboardMarkup:
    """Twelve month buttons and Skip."""
    names = [name[:1].upper() + name[1:] for name in month_names(locale)]
    buttons = [
        _button(name, SurveyCallback(action=SurveyAction.MONTH, ref=ref, value=number))
        for number, name in enumerate(names, start=1)
    ]
    rows = _rows(buttons, 3)
    rows.append([_button(_("Skip"), SurveyCallback(action=SurveyAction.SKIP, ref=ref))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def choose_day(month: int, locale: str) -> str:
    """Ask for the day once the month is picked."""
    name = month_names(locale)[month - 1]
    return _("{month}: now choose the day.").format(month=name[:1].upper() + name[1:])


def days_keyboard(ref: str, month: int) -> InlineKeyboardMarkup:
    """Day buttons for a month (29 for February), Back and Skip."""
    buttons = [
        _button(str(day), SurveyCallback(action=SurveyAction.DAY, ref=ref, value=month, day=day))
        for day in range(1, days_in_month(month) + 1)
    ]
    rows = _rows(buttons, 7)
    rows.append(
        [
            _button(_("« Back"), SurveyCallback(action=SurveyAction.MONTHS, ref=ref)),
            _button(_("Skip"), SurveyCallback(action=SurveyAction.SKIP, ref=ref)),
        ]
    )
    return InlineKeyboardMarkup(inline_keyboard=rows)


def birthday_saved(birthday: Birthday, locale: str) -> str:
    """Thank the customer and repeat the date as understood."""
    return _("Thank you! We have noted your birthday: {date}. Expect a gift from us 🎁").format(
        date=day_and_month(birthday, locale)
    )


# ----------------------------------------------------------------------- shop questions


def shop_question(question: str, free_text: bool) -> str:
    """Show a shop's own question (in the shop's words) with how to answer."""
    if free_text:
        return _("{question}\n\nJust type your answer in a message.").format(
            question=_safe(question)
        )
    return _safe(question)


def choices_keyboard(ref: str, choices: list[str]) -> InlineKeyboardMarkup:
    """One button per choice (the shop's words) and Skip."""
    rows = [
        [_button(choice, SurveyCallback(action=SurveyAction.CHOICE, ref=ref, value=index))]
        for index, choice in enumerate(choices)
    ]
    rows.append([_button(_("Skip"), SurveyCallback(action=SurveyAction.SKIP, ref=ref))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def skip_keyboard(ref: str) -> InlineKeyboardMarkup:
    """Only Skip (free-text questions)."""
    skip = _button(_("Skip"), SurveyCallback(action=SurveyAction.SKIP, ref=ref))
    return InlineKeyboardMarkup(inline_keyboard=[[skip]])


def choose_an_option() -> str:
    """Ask to use the buttons when typed text matches no choice."""
    return _("Please choose one of the options below.")


def answer_saved() -> str:
    """Thank the customer for answering a question."""
    return _("Thank you for your answer!")


def answer_saved_with(answer: str) -> str:
    """Thank the customer and show the chosen answer."""
    return _("Thank you for your answer: {answer}").format(answer=_safe(answer))


# ------------------------------------------------------------------------------- endings


def skipped() -> str:
    """Acknowledge Skip."""
    return _("No problem, maybe another time.")


def gave_up() -> str:
    """End a survey politely after too many unreadable answers."""
    return _("Let's leave it for now. Thank you for your time!")


def survey_closed() -> str:
    """Say a survey's buttons no longer work (answered, skipped or expired)."""
    return _("This survey has already closed.")


# ------------------------------------------------------------------------------------ NPS


def nps_question(shop_name: str) -> str:
    """Ask how likely the customer is to recommend the shop."""
    return _(
        "How likely are you to recommend {shop} to a friend? Tap a number from 0 (not at all "
        "likely) to 10 (extremely likely)."
    ).format(shop=_safe(shop_name))


def nps_keyboard(ref: str) -> InlineKeyboardMarkup:
    """Score buttons 0-10 in two rows."""
    buttons = [_button(str(score), NpsCallback(ref=ref, score=score)) for score in range(11)]
    return InlineKeyboardMarkup(inline_keyboard=[buttons[:6], buttons[6:]])


def nps_answered(shop_name: str, score: int) -> str:
    """Replace the NPS question once answered, keeping the score visible."""
    return _("How likely are you to recommend {shop} to a friend? Your answer: {score}").format(
        shop=_safe(shop_name), score=score
    )


def promoter_review(shop_name: str) -> str:
    """Invite a promoter to leave a review."""
    return _(
        "Thank you so much! We are glad you like {shop}. Would you share your experience in a "
        "review? It helps other shoppers find us."
    ).format(shop=_safe(shop_name))


def promoter_loyalty(shop_name: str) -> str:
    """Invite a promoter to the loyalty program."""
    return _(
        "Thank you so much! We are glad you like {shop}. Join our loyalty program to get "
        "rewards for every order."
    ).format(shop=_safe(shop_name))


def promoter_thanks(shop_name: str) -> str:
    """Thank a promoter when the shop has nothing to invite them to."""
    return _("Thank you so much! We are glad you like {shop}.").format(shop=_safe(shop_name))


def review_button() -> str:
    """Label of the review link."""
    return _("Leave a review")


def loyalty_button() -> str:
    """Label of the loyalty program link."""
    return _("Join the loyalty program")


def passive_thanks() -> str:
    """Thank a passive (7-8)."""
    return _(
        "Thank you for your rating! We will keep working to make your next order even better."
    )


def detractor_question() -> str:
    """Ask a detractor (0-6) what went wrong."""
    return _(
        "We are sorry to hear that. What went wrong? Please tell us in a message: a real "
        "person from our team will read it."
    )


def detractor_thanks() -> str:
    """Acknowledge a detractor's explanation."""
    return _("Thank you for telling us. Our team will get back to you soon.")


# -------------------------------------------------------------------------- birthday greeting


def birthday_greeting(
    *,
    shop_name: str,
    first_name: str | None,
    code: str | None,
    early_date: str | None,
) -> str:
    """Greet on (or a few days before) the birthday, with the personal code when there is one."""
    name = addressed(first_name)
    if early_date:
        opening = _("Your birthday is coming up on {date}!").format(date=early_date)
    elif name:
        opening = _("Happy birthday, {name}! 🎂").format(name=_safe(name))
    else:
        opening = _("Happy birthday! 🎂")
    if code:
        body = _("Here is a gift from {shop}: your personal promo code {code}").format(
            shop=_safe(shop_name), code=f"<code>{_safe(code)}</code>"
        )
    else:
        body = _("The whole {shop} team wishes you a wonderful day.").format(shop=_safe(shop_name))
    return f"{opening}\n\n{body}"

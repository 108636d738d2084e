"""Catalogs, locale resolution and locale-correct money, dates and plurals."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache

from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import lazy_gettext as __
from babel import Locale, UnknownLocaleError
from babel.dates import format_date as _babel_date
from babel.dates import format_datetime as _babel_datetime
from babel.languages import get_official_languages
from babel.numbers import format_currency, format_decimal

from bot.resources import resource_dir
from bot.shop_settings import load_shop_settings
from bot.validation import SUPPORTED_LOCALES

DOMAIN = "messages"
SOURCE_LOCALE = "en"

__all__ = [
    "DOMAIN",
    "N_",
    "SOURCE_LOCALE",
    "SUPPORTED_LOCALES",
    "I18n",
    "_",
    "__",
    "customer_locale",
    "format_date",
    "format_datetime",
    "format_money",
    "format_number",
    "get_i18n",
    "locale_scope",
    "ngettext",
    "normalize_locale",
    "offered_locales",
    "pick_locale",
    "resolve_locale",
    "shop_locales",
]


def N_(text: str) -> str:
    """Mark a text for the catalogs without translating it here (data kept in English, e.g. a
    customer card's reasons, which the console translates when it shows them)."""
    return text


@lru_cache(maxsize=1)
def get_i18n() -> I18n:
    """Return the process-wide catalogs (loaded once from the compiled .mo files)."""
    return I18n(path=resource_dir("locales"), default_locale=SOURCE_LOCALE, domain=DOMAIN)


@contextmanager
def locale_scope(locale: str) -> Iterator[I18n]:
    """Render texts in a locale outside any Telegram update (scheduled sends, the CLI)."""
    i18n = get_i18n()
    with i18n.context(), i18n.use_locale(locale):
        yield i18n


def ngettext(singular: str, plural: str, n: int) -> str:
    """Translate a plural form for the current locale."""
    return _(singular, plural, n)


def normalize_locale(code: str | None) -> str | None:
    """Map a Telegram language_code or profile value (uk-UA, pl_PL, RU) to a supported locale."""
    if not code:
        return None
    try:
        language = Locale.parse(code.strip().replace("-", "_")).language
    except (UnknownLocaleError, ValueError, TypeError):
        return None
    return language if language in SUPPORTED_LOCALES else None


def offered_locales(languages: Iterable[str] | str | None) -> tuple[str, ...]:
    """Return a shop's `languages` as supported locales in the shop's order (all when unset)."""
    if isinstance(languages, str):
        languages = languages.split(",")
    found: list[str] = []
    for code in languages or ():
        locale = normalize_locale(str(code))
        if locale and locale not in found:
            found.append(locale)
    return tuple(found) or SUPPORTED_LOCALES


def pick_locale(*candidates: str | None, offered: Sequence[str] = SUPPORTED_LOCALES) -> str:
    """Return the first candidate the shop offers, else the first language it offers."""
    for candidate in candidates:
        locale = normalize_locale(candidate)
        if locale and locale in offered:
            return locale
    return offered[0] if offered else SOURCE_LOCALE


def resolve_locale(
    profile_locale: str | None = None,
    telegram_language_code: str | None = None,
    shop_default: str | None = None,
    *,
    offered: Sequence[str] = SUPPORTED_LOCALES,
) -> str:
    """Pick the locale: customer profile, then Telegram's language_code, then shop, then en.

    Only languages in `offered` (the shop's `languages`) are picked; when none of the three is
    offered, the first offered language is.
    """
    return pick_locale(profile_locale, telegram_language_code, shop_default, offered=offered)


def shop_locales(shop: object) -> tuple[str, ...]:
    """Return the languages a shop offers its customers (its `languages` setting)."""
    return offered_locales(load_shop_settings(getattr(shop, "settings", None)).languages)


def customer_locale(
    shop: object,
    profile_locale: str | None,
    telegram_language_code: str | None = None,
    *,
    offered: Sequence[str] | None = None,
) -> str:
    """Return the one language to write to a customer in, among the shop's languages.

    A linked customer's locale is resolved once, at linking, and kept on the profile, so every
    reply and every scheduled message uses it; Telegram's language_code only speaks for a chat
    that has no profile yet (or, once, for a profile linked before locales were stored).
    """
    return pick_locale(
        profile_locale,
        telegram_language_code,
        getattr(shop, "default_locale", None),
        offered=offered if offered is not None else shop_locales(shop),
    )


# CLDR's minimumGroupingDigits, which Babel does not apply: Polish writes 1234,50 zł but
# 12 345,00 zł (no separator in four-digit amounts).
_MIN_GROUPING_DIGITS = {"pl": 2}


# CLDR's currencySpacing, which Babel does not apply either: a currency code written next to a
# digit gets a no-break space (UAH 2,231.00, not UAH2,231.00).
_CURRENCY_SPACING = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")


def _grouped(value: Decimal, locale: str) -> bool:
    digits = _MIN_GROUPING_DIGITS.get(locale.split("_")[0], 1)
    return abs(value) >= Decimal(10) ** (2 + digits)


def regional(locale: str, country: str | None) -> str:
    """Return the locale as written in the shop's country (ru + KZ: ru_KZ), else the locale.

    Only where the language is spoken there by law or in fact (CLDR): Russian in Kazakhstan
    writes tenge as ₸. An English reader of a Ukrainian or Polish shop reads English digits
    (UAH 2,231.00), not CLDR's newer en_UA and en_PL forms (2 231,00 UAH), which mix
    continental separators into English text and changed between Babel releases.
    """
    if country and locale in get_official_languages(country.upper(), de_facto=True):
        try:
            return str(Locale.parse(f"{locale}_{country.upper()}"))
        except (UnknownLocaleError, ValueError):
            pass
    return locale


def format_money(
    amount: Decimal | int | float, currency: str, locale: str, country: str | None = None
) -> str:
    """Format an amount the way the locale (in the shop's country) writes it: 1 234,50 ₴."""
    value = Decimal(str(amount))
    where = regional(locale, country)
    text = format_currency(value, currency, locale=where, group_separator=_grouped(value, locale))
    return _CURRENCY_SPACING.sub("\xa0", text)


def format_number(value: Decimal | int | float, locale: str) -> str:
    """Format a number with the locale's separators."""
    number = Decimal(str(value))
    return format_decimal(number, locale=locale, group_separator=_grouped(number, locale))


def format_date(value: date, locale: str, fmt: str = "long") -> str:
    """Format a date for the locale: 12 марта 2026 г., 12 березня 2026 р., 12 marca 2026."""
    return _babel_date(value, format=fmt, locale=locale)


def format_datetime(value: datetime, locale: str, tz: str = "UTC", fmt: str = "medium") -> str:
    """Format a moment in a time zone for the locale."""
    return _babel_datetime(value, format=fmt, tzinfo=tz, locale=locale)

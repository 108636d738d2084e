"""Checks for values shop owners type: currencies, countries, locales, time zones."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.numbers import list_currencies

SUPPORTED_LOCALES = ("en", "ru", "uk", "pl")


def check_currency(value: str) -> str:
    """Return an upper-case ISO 4217 code or raise ValueError."""
    code = value.strip().upper()
    if code not in list_currencies():
        raise ValueError(f"currency: {value!r} is not an ISO 4217 code (e.g. UAH, PLN, EUR)")
    return code


def check_country(value: str) -> str:
    """Return an upper-case ISO 3166 alpha-2 code or raise ValueError."""
    from babel import Locale

    code = value.strip().upper()
    if code not in Locale("en").territories or not code.isalpha() or len(code) != 2:
        raise ValueError(f"country: {value!r} is not an ISO 3166 code (e.g. UA, PL)")
    return code


def check_locale(value: str) -> str:
    """Return one of the supported locales or raise ValueError."""
    code = value.strip().lower().replace("_", "-").split("-")[0]
    if code not in SUPPORTED_LOCALES:
        raise ValueError(f"locale: {value!r} is not one of {', '.join(SUPPORTED_LOCALES)}")
    return code


def check_timezone(value: str) -> str:
    """Return an IANA time zone name or raise ValueError."""
    name = value.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone: {value!r} is not an IANA zone (e.g. Europe/Kyiv)") from None
    return name

"""Checks for values shop owners type: currencies, countries, locales, time zones, bots."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.core import get_global
from babel.languages import get_official_languages
from babel.numbers import get_territory_currencies, list_currencies

SUPPORTED_LOCALES = ("en", "ru", "uk", "pl")


def check_currency(value: str) -> str:
    """Return an upper-case ISO 4217 code or raise ValueError."""
    code = value.strip().upper()
    if code not in list_currencies():
        raise ValueError(f"currency: {value!r} is not an ISO 4217 code (e.g. UAH, PLN, EUR)")
    return code


# CLDR names these regions, but no shop is in them.
NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"})


def check_country(value: str) -> str:
    """Return an upper-case ISO 3166 alpha-2 code or raise ValueError."""
    from babel import Locale

    code = value.strip().upper()
    if (
        code not in Locale("en").territories
        or not code.isalpha()
        or len(code) != 2
        or code in NOT_COUNTRIES
    ):
        raise ValueError(f"country: {value[:20]!r} is not an ISO 3166 code (e.g. UA, PL)")
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


# The four countries Nudge is made for, as their shops expect them (CLDR would give Kyiv's
# neighbour Simferopol, eleven Russian zones, seven Kazakh ones).
COUNTRY_DEFAULTS = {
    "UA": ("UAH", "uk", "Europe/Kyiv"),
    "PL": ("PLN", "pl", "Europe/Warsaw"),
    "RU": ("RUB", "ru", "Europe/Moscow"),
    "KZ": ("KZT", "ru", "Asia/Almaty"),
}


@dataclass(frozen=True, slots=True)
class CountryDefaults:
    """What a country implies for a shop; None where it does not decide (see `notes`)."""

    currency: str | None
    locale: str | None
    timezone: str | None
    notes: dict[str, str] = field(default_factory=dict)  # field -> why it was not decided


def country_defaults(country: str) -> CountryDefaults:
    """Derive currency, locale and time zone from an ISO 3166 country code (CLDR data).

    Each is given only when the country has one: a single tender currency today, an official
    language Nudge speaks, and one time zone (or several that keep the same clock all year).
    """
    code = check_country(country)
    if code in COUNTRY_DEFAULTS:
        return CountryDefaults(*COUNTRY_DEFAULTS[code])
    notes: dict[str, str] = {}
    currencies = get_territory_currencies(code, start_date=date.today(), tender=True)
    currency = currencies[0] if len(currencies) == 1 else None
    if currency is None:
        notes["currency"] = f"{code} has {_several(currencies, 'currency', 'currencies')}"
    spoken = list(get_official_languages(code, de_facto=True))
    locale = next((lang for lang in spoken if lang in SUPPORTED_LOCALES), None)
    if locale is None:
        notes["locale"] = (
            f"{code}'s official languages ({', '.join(spoken) or 'none'}) are not among "
            f"{', '.join(SUPPORTED_LOCALES)}"
        )
    zones = [zone for zone in get_global("territory_zones").get(code, []) if _is_zone(zone)]
    timezone = zones[0] if zones and _same_clock(zones) else None
    if timezone is None:
        notes["timezone"] = f"{code} has {_several(zones, 'time zone', 'time zones')}"
    return CountryDefaults(currency, locale, timezone, notes)


def _several(items: list[str], one: str, many: str) -> str:
    if not items:
        return f"no {one}"
    shown = ", ".join(items[:4]) + (", …" if len(items) > 4 else "")
    return f"several {many} ({shown})"


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _same_clock(zones: list[str]) -> bool:
    """Tell whether the zones show the same time on every day of the coming year."""
    start = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    moments = [start + timedelta(days=day) for day in range(0, 366, 7)]
    offsets = {tuple(m.astimezone(ZoneInfo(z)).utcoffset() for m in moments) for z in zones}
    return len(offsets) == 1


def check_name(value: str, what: str = "name", limit: int = 200) -> str:
    """Return a trimmed shop name or raise ValueError (empty, too long, control characters)."""
    cleaned = value.strip()
    if not cleaned:
        raise ValueError(f"{what}: must not be empty")
    if len(cleaned) > limit:
        raise ValueError(f"{what}: must be at most {limit} characters (got {len(cleaned)})")
    if any(not ch.isprintable() for ch in cleaned):
        raise ValueError(f"{what}: must not contain control characters")
    return cleaned


_BOT_TOKEN = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{10,100}")
_BOT_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")


def check_bot_token_shape(value: str) -> str:
    """Return a token shaped like @BotFather's (123456789:AA…) or raise ValueError."""
    token = value.strip()
    if not _BOT_TOKEN.fullmatch(token):
        raise ValueError(
            "bot_token: expected the form 123456789:AA… that @BotFather gives (/token)"
        )
    return token


def check_bot_username(value: str) -> str:
    """Return a bot username without `@` (or a t.me/ prefix), or raise ValueError."""
    name = value.strip().removeprefix("https://").removeprefix("t.me/").lstrip("@")
    if not _BOT_USERNAME.fullmatch(name) or not name.lower().endswith("bot"):
        raise ValueError(
            f"bot_username: {value.strip()[:40]!r} is not a bot's username (5-32 Latin letters, "
            "digits or _, ending in 'bot', e.g. kvitka_bot)"
        )
    return name

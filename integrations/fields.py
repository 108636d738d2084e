"""Lenient readers for fields of authentic but untidy platform JSON.

Platforms send ids as numbers or strings, prices as strings, numbers or (in Shopify's
anonymized exemplars) "example string". These readers never raise: a value of the wrong type
or shape reads as None, and the adapter decides whether None is acceptable or a ParseError.
"""

from __future__ import annotations

import functools
import html
import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import phonenumbers

from integrations.base import CustomerRef, ParseError, normalize_tags, url_problem, utc

MAX_TEXT = 500
MAX_ID = 128
MAX_PRICE = Decimal(10) ** 12

_MONEY_TEXT = re.compile(r"\s*-?\d{1,15}(\.\d{1,8})?\s*")
_INT_TEXT = re.compile(r"\s*\d{1,19}\s*")
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_LOCALE = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,252}\.[^@\s.]{1,63}")
_REGION = re.compile(r"[A-Za-z]{2}")


def obj(value: Any) -> Mapping[str, Any]:
    """Return `value` if it is a JSON object, else an empty mapping."""
    return value if isinstance(value, Mapping) else {}


def objects(value: Any) -> list[Mapping[str, Any]]:
    """Return the JSON objects of a JSON array; anything else reads as []."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def text(value: Any, limit: int = MAX_TEXT, *, unescape: bool = False) -> str | None:
    """Return a stripped, non-empty string cut to `limit` characters, else None."""
    if not isinstance(value, str):
        return None
    if unescape:
        value = html.unescape(value)
    value = value.strip()
    return value[:limit] or None


def ident(value: Any) -> str | None:
    """Return an id as a string: ints exactly, integral floats, non-empty short strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value >= 0 else None
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and value >= 0:
            return str(int(value))
        return None
    if isinstance(value, str):
        value = value.strip()
        if 0 < len(value) <= MAX_ID and value.isprintable():
            return value
    return None


def positive_ident(value: Any) -> str | None:
    """Return an id, treating 0 (WooCommerce's "none") as missing."""
    found = ident(value)
    return None if found in (None, "0") else found


def money(value: Any) -> Decimal | None:
    """Return a non-negative amount, or None for missing, negative or garbage values."""
    if isinstance(value, bool):
        return None
    amount: Decimal | None = None
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float) and math.isfinite(value):
        amount = Decimal(repr(value))
    elif isinstance(value, str) and _MONEY_TEXT.fullmatch(value):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            return None
    if amount is None or amount < 0 or amount >= MAX_PRICE:
        return None
    return amount


def quantity(value: Any) -> int | None:
    """Return a quantity: a non-negative int (or int-like string); None when unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= 1_000_000 else None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return quantity(int(value))
    if isinstance(value, str) and _INT_TEXT.fullmatch(value):
        return quantity(int(value))
    return None


def flag(value: Any) -> bool | None:
    """Return a JSON boolean, else None."""
    return value if isinstance(value, bool) else None


def timestamp(value: Any) -> datetime | None:
    """Return an aware UTC datetime from an ISO 8601 string; naive values are taken as UTC."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        return utc(datetime.fromisoformat(value.strip()))
    except (ValueError, OverflowError):
        return None


def first_timestamp(*values: Any, fallback: datetime | None = None, what: str) -> datetime:
    """Return the first readable timestamp, else `fallback`, else raise ParseError."""
    for value in values:
        found = timestamp(value)
        if found is not None:
            return found
    if fallback is not None:
        return utc(fallback)
    raise ParseError(
        f"{what}: no usable timestamp in the payload and no received_at in the ParseContext"
    )


def birthday(value: Any) -> date | None:
    """Return a calendar date from "YYYY-MM-DD", else None."""
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def email(value: Any) -> str | None:
    """Return a plausible email address, lower-cased, else None."""
    found = text(value, 254)
    if found is None or not _EMAIL.fullmatch(found):
        return None
    return found.lower()


def currency(value: Any) -> str | None:
    """Return an ISO 4217-looking currency code, upper-cased, else None."""
    found = text(value, 10)
    if found is None or not _CURRENCY.fullmatch(found):
        return None
    return found.upper()


def locale(value: Any) -> str | None:
    """Return a BCP 47-looking locale such as "en" or "pt-BR", else None."""
    found = text(value, 35)
    if found is None or not _LOCALE.fullmatch(found):
        return None
    return found.replace("_", "-")


def url(value: Any) -> str | None:
    """Return an absolute http(s) URL a redirect can serve (`url_problem`), else None."""
    found = text(value, 2048)
    if found is None or url_problem(found) is not None:
        return None
    return found


def e164(phone: str | None, default_region: str | None) -> str | None:
    """Return the phone number in E.164 form, or None when it is not a valid number."""
    if not phone or len(phone) > 40:
        return None
    region = None
    if default_region and _REGION.fullmatch(default_region):
        region = default_region.upper()
    try:
        parsed = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def best_phone(*candidates: Any, default_region: str | None) -> str | None:
    """Return the first candidate that is a valid phone number, else the first text at all."""
    phones = [found for value in candidates if (found := text(value, 40))]
    for phone in phones:
        if e164(phone, default_region):
            return phone
    return phones[0] if phones else None


def country_code(value: Any) -> str | None:
    """Return an ISO 3166-1 alpha-2 country code upper-cased ("ua" → "UA"), else None."""
    found = text(value, 8)
    if found is None or not _REGION.fullmatch(found):
        return None
    code = found.upper()
    return code if code in _countries() and code not in _NOT_COUNTRIES else None


_NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"})


@functools.cache
def _countries() -> frozenset[str]:
    from babel import Locale

    return frozenset(code for code in Locale("en").territories if _REGION.fullmatch(code))


def place(*addresses: Any) -> tuple[str | None, str | None]:
    """Return (country, city) from the first address that names a country or a city.

    The country is the platform's text as sent (the store keeps valid ISO codes only); both
    come from one address so that a city never lands in another address's country.
    """
    for address in addresses:
        found = obj(address)
        country = text(first(found.get("country_code"), found.get("country")), 64)
        city = text(found.get("city"), 200, unescape=True)
        if country or city:
            return country, city
    return None, None


def tag_list(value: Any) -> tuple[str, ...] | None:
    """Return normalized tags from "a, b" or ["a", "b"]; None when the value is absent/odd."""
    if isinstance(value, str):
        return normalize_tags(value.split(","))
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return normalize_tags([item for item in value if isinstance(item, str)])
    return None


def customer_ref(
    *,
    external_id: Any = None,
    email_address: Any = None,
    phone: Any = None,
    first_name: Any = None,
    last_name: Any = None,
    locale_tag: Any = None,
    accepts_marketing: bool | None = None,
    default_region: str | None = None,
    country: str | None = None,
    city: str | None = None,
    tags: tuple[str, ...] | None = None,
) -> CustomerRef:
    """Build a CustomerRef from raw values: email lower-cased, phone also in E.164."""
    phone_text = text(phone, 40)
    return CustomerRef(
        external_id=ident(external_id),
        email=email(email_address),
        phone=phone_text,
        phone_e164=e164(phone_text, default_region),
        first_name=text(first_name, 100, unescape=True),
        last_name=text(last_name, 100, unescape=True),
        locale=locale(locale_tag),
        accepts_marketing=accepts_marketing,
        country=country,
        city=city,
        tags=tags,
    )


def idents(value: Any, limit: int = 1000) -> tuple[str, ...]:
    """Return the readable ids of a JSON array (at most `limit`); anything else reads as ()."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return ()
    return tuple(found for item in value[:limit] if (found := ident(item)) is not None)


def first(*values: Any) -> Any:
    """Return the first value that is not None and not an empty string."""
    for value in values:
        if value is not None and value != "":
            return value
    return None

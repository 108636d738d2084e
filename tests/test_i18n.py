"""Catalogs are complete and current; plurals, money and dates follow each locale."""

from __future__ import annotations

import gettext
import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from bot.i18n import format_date, format_money, locale_scope, normalize_locale, resolve_locale
from bot.messages.common import item_count, more_items

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ROOT / "locales"
KEYWORDS = {"_": None, "__": None, "N_": None, "ngettext": (1, 2), "lazy_ngettext": (1, 2)}
TRANSLATED = ("ru", "uk", "pl")


def _catalog(locale: str):
    with (LOCALES / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=locale)


def _source_msgids() -> set[str]:
    found = set()
    templates = "console/templates/**.html"  # as babel.cfg maps them
    for folder in ("bot", "integrations"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / folder,
            method_map=[("**.py", "python"), (templates, "jinja2")],
            options_map={templates: {"extensions": "jinja2.ext.i18n"}},
            keywords=KEYWORDS,
        ):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en", ["1 item", "2 items", "5 items", "11 items", "21 items", "22 items", "25 items"]),
        (
            "ru",
            [
                "1 товар",
                "2 товара",
                "5 товаров",
                "11 товаров",
                "21 товар",
                "22 товара",
                "25 товаров",
            ],
        ),
        (
            "uk",
            [
                "1 товар",
                "2 товари",
                "5 товарів",
                "11 товарів",
                "21 товар",
                "22 товари",
                "25 товарів",
            ],
        ),
        (
            "pl",
            [
                "1 produkt",
                "2 produkty",
                "5 produktów",
                "11 produktów",
                "21 produktów",
                "22 produkty",
                "25 produktów",
            ],
        ),
    ],
)
def test_plural_forms(locale, expected):
    with locale_scope(locale):
        assert [item_count(n) for n in (1, 2, 5, 11, 21, 22, 25)] == expected


def test_more_items_plural_in_context():
    with locale_scope("uk"):
        assert more_items(3) == "і ще 3 товари"
    with locale_scope("ru"):
        assert more_items(21) == "и ещё 21 товар"
    with locale_scope("pl"):
        assert more_items(12) == "i jeszcze 12 produktów"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_msgid_is_translated(locale):
    missing = [
        message.id
        for message in _catalog(locale)
        if message.id
        and (
            "fuzzy" in message.flags
            or not message.string
            or (isinstance(message.string, tuple) and not all(message.string))
        )
    ]
    assert missing == [], f"{locale}: untranslated or fuzzy: {missing} (make locales)"


def test_catalogs_are_current_with_the_sources():
    in_sources = _source_msgids()
    for name in (
        "messages.pot",
        *(f"{loc}/LC_MESSAGES/messages.po" for loc in ("en", *TRANSLATED)),
    ):
        with (LOCALES / name).open("rb") as fh:
            catalog = read_po(fh)
        ids = {m.id[0] if isinstance(m.id, tuple) else m.id for m in catalog if m.id}
        assert ids == in_sources, (
            f"{name} is stale: missing {sorted(in_sources - ids)}, "
            f"obsolete {sorted(ids - in_sources)} (run make locales)"
        )


@pytest.mark.parametrize("locale", ("en", *TRANSLATED))
def test_compiled_catalogs_match_their_sources(locale):
    """The .mo files are committed (so installs need no compile step) and must match the .po."""
    fresh = io.BytesIO()
    write_mo(fresh, _catalog(locale))
    fresh.seek(0)
    with (LOCALES / locale / "LC_MESSAGES" / "messages.mo").open("rb") as fh:
        committed = gettext.GNUTranslations(fh)
    expected = gettext.GNUTranslations(fresh)
    strip = lambda catalog: {k: v for k, v in catalog.items() if k != ""}  # noqa: E731
    assert strip(committed._catalog) == strip(expected._catalog), f"{locale}: run make locales"


@pytest.mark.parametrize(
    ("profile", "telegram", "shop", "expected"),
    [
        ("pl", "uk", "ru", "pl"),
        (None, "uk-UA", "ru", "uk"),
        (None, "ru_RU", None, "ru"),
        (None, "de", "pl", "pl"),
        (None, "PL", None, "pl"),
        ("xx", None, None, "en"),
        (None, None, None, "en"),
        (None, "en-GB", "uk", "en"),
    ],
)
def test_locale_resolution(profile, telegram, shop, expected):
    assert resolve_locale(profile, telegram, shop) == expected


def test_normalize_rejects_garbage():
    assert normalize_locale("!!") is None
    assert normalize_locale("") is None


@pytest.mark.parametrize(
    ("locale", "amount", "currency", "expected"),
    [
        ("uk", "1234.5", "UAH", "1\xa0234,50\xa0₴"),
        ("ru", "1234.5", "RUB", "1\xa0234,50\xa0₽"),
        ("pl", "1234.5", "PLN", "1234,50\xa0zł"),
        ("en", "1234.5", "USD", "$1,234.50"),
        ("pl", "1234.5", "EUR", "1234,50\xa0€"),
        ("pl", "12345", "PLN", "12\xa0345,00\xa0zł"),
        ("uk", "999", "UAH", "999,00\xa0₴"),
    ],
)
def test_money_is_formatted_for_the_customers_locale(locale, amount, currency, expected):
    assert format_money(Decimal(amount), currency, locale) == expected


def test_dates_use_the_locales_month_names():
    day = date(2026, 3, 12)
    assert format_date(day, "ru", "d MMMM") == "12 марта"
    assert format_date(day, "uk", "d MMMM") == "12 березня"
    assert format_date(day, "pl", "d MMMM") == "12 marca"
    assert format_date(day, "en", "MMMM d") == "March 12"


@pytest.mark.parametrize(
    ("locale", "country", "currency", "expected"),
    [
        ("ru", "KZ", "KZT", "39\xa0700,00\xa0₸"),
        ("ru", None, "KZT", "39\xa0700,00\xa0KZT"),
        ("uk", "UA", "UAH", "39\xa0700,00\xa0₴"),
        ("pl", "PL", "PLN", "39\xa0700,00\xa0zł"),
        ("en", "XX", "USD", "$39,700.00"),
        ("en", "US", "USD", "$39,700.00"),
        ("en", "GB", "GBP", "£39,700.00"),
    ],
)
def test_money_follows_the_shops_country_when_the_locale_has_a_regional_form(
    locale, country, currency, expected
):
    assert format_money(Decimal(39700), currency, locale, country) == expected


@pytest.mark.parametrize(
    ("country", "currency", "expected"),
    [
        ("UA", "UAH", "UAH\xa02,231.00"),
        ("PL", "PLN", "PLN\xa02,231.00"),
        ("DE", "EUR", "€2,231.00"),
        ("KZ", "KZT", "KZT\xa02,231.00"),
    ],
)
def test_english_readers_get_english_digits_in_any_shops_country(country, currency, expected):
    """en + UA prints UAH 2,231.00 on purpose: English separators, the code where en has no sign.

    CLDR 47 (Babel 2.19) added en_UA, en_PL…, which write 2 231,00 UAH; an English sentence
    with continental separators reads as a typo, so the shop's country does not regionalize
    English (it does regionalize a language spoken there: ru + KZ gives ₸).
    """
    assert format_money(Decimal(2231), currency, "en", country) == expected


def test_a_language_spoken_in_the_shops_country_takes_its_regional_form():
    assert format_money(Decimal(2231), "UAH", "ru", "UA") == "2\xa0231,00\xa0₴"
    assert format_money(Decimal(2231), "KZT", "ru", "KZ") == "2\xa0231,00\xa0₸"
    assert format_money(Decimal(2231), "KZT", "uk", "KZ") == "2\xa0231,00\xa0KZT"

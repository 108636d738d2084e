"""Birthdays typed the way people write them in each locale, and the ones that are not dates."""

from __future__ import annotations

from datetime import date

import pytest

from bot.dates import Birthday, month_number, parse_birthday
from bot.flows.birthday import next_greeting

TODAY = date(2026, 3, 2)
MARCH_12 = Birthday(3, 12)
MARCH_12_1990 = Birthday(3, 12, 1990)

VALID = [
    ("ru", "12.03", MARCH_12),
    ("ru", "12.03.1990", MARCH_12_1990),
    ("ru", "12 марта", MARCH_12),
    ("ru", "12 марта 1990 г.", MARCH_12_1990),
    ("ru", "12-го марта", MARCH_12),
    ("ru", "12 мар", MARCH_12),
    ("ru", "1 мая", Birthday(5, 1)),
    ("ru", "3 февр.", Birthday(2, 3)),
    ("ru", "12 Марта", MARCH_12),
    ("uk", "12 березня", MARCH_12),
    ("uk", "12.03", MARCH_12),
    ("uk", "12 березня 1990 р.", MARCH_12_1990),
    ("uk", "5 листопада", Birthday(11, 5)),
    ("uk", "1 лютого", Birthday(2, 1)),
    ("pl", "12 marca", MARCH_12),
    ("pl", "12.03.1990", MARCH_12_1990),
    ("pl", "5 października", Birthday(10, 5)),
    ("pl", "5 pazdziernika", Birthday(10, 5)),
    ("pl", "12 marca 1990 r.", MARCH_12_1990),
    ("pl", "3 maja", Birthday(5, 3)),
    ("en", "March 12", MARCH_12),
    ("en", "12/03", MARCH_12),
    ("en", "March 12, 1990", MARCH_12_1990),
    ("en", "12th March", MARCH_12),
    ("en", "Mar 12", MARCH_12),
    ("en", "03/25", Birthday(3, 25)),
    ("en", "1990-03-12", MARCH_12_1990),
    ("en", " 12.03.90 ", MARCH_12_1990),
    ("ru", "29.02", Birthday(2, 29)),
    ("uk", "29 лютого", Birthday(2, 29)),
    ("pl", "29.02.1992", Birthday(2, 29, 1992)),
    ("en", "February 29, 2000", Birthday(2, 29, 2000)),
]

INVALID = [
    ("ru", "31.02"),
    ("ru", "30 февраля"),
    ("uk", "29.02.1990"),
    ("pl", "32.01"),
    ("en", "12.13"),
    ("en", "0.03"),
    ("ru", "слова"),
    ("uk", "не скажу"),
    ("pl", "nie wiem"),
    ("en", "words"),
    ("en", "12"),
    ("en", ""),
    ("ru", "12.03.2030"),
    ("ru", "12.03.1850"),
    ("ru", "12 ма"),
]


@pytest.mark.parametrize(("locale", "text", "expected"), VALID)
def test_common_forms_are_read(locale, text, expected):
    assert parse_birthday(text, locale, today=TODAY) == expected


@pytest.mark.parametrize(("locale", "text"), INVALID)
def test_impossible_dates_and_words_are_refused(locale, text):
    assert parse_birthday(text, locale, today=TODAY) is None


def test_month_names_come_from_babel_in_both_cases():
    assert month_number("марта") == month_number("март") == 3
    assert month_number("березня") == month_number("березень") == 3
    assert month_number("marca") == month_number("marzec") == 3
    assert month_number("ма") is None  # май or март: too short to tell


def test_leap_day_is_celebrated_on_the_28th_in_other_years():
    leap = Birthday(2, 29)
    assert leap.on_year(2027) == date(2027, 2, 28)
    assert leap.on_year(2028) == date(2028, 2, 29)
    assert next_greeting(leap, 0, date(2027, 2, 1)) == (date(2027, 2, 28), 2027)
    assert next_greeting(MARCH_12, 3, date(2026, 3, 9)) == (date(2026, 3, 9), 2026)
    assert next_greeting(MARCH_12, 0, date(2026, 3, 13)) == (date(2027, 3, 12), 2027)
    assert next_greeting(Birthday(1, 2), 5, date(2026, 12, 20)) == (date(2026, 12, 28), 2027)

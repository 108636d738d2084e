"""Read a birthday the way a customer types it: "12.03", "12 марта", "12 березня", "March 12".

Pure: no database, no clock (the caller passes today's date). Month names come from Babel's
CLDR data for every supported locale: the genitive ("format") forms a date is written with
("12 марта", "12 березня", "12 marca"), the nominative ("stand-alone") forms and their
abbreviations. Numbers are read day first, as the shops' markets write them ("12/03" is the
12th of March); a first number that cannot be a day is tried as the month ("03/25").
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from babel.dates import get_month_names

from bot.validation import SUPPORTED_LOCALES

OLDEST_YEAR = 1900

_ISO = re.compile(r"^(\d{4})[-./](\d{1,2})[-./](\d{1,2})$")
_NUMERIC = re.compile(r"^(\d{1,2})([./-])(\d{1,2})(?:\2(\d{4}|\d{2}))?\.?$")
_DAY_MONTH = re.compile(r"^(\d{1,2}) ([^\W\d_]+)(?: (\d{4}))?$")
_MONTH_DAY = re.compile(r"^([^\W\d_]+) (\d{1,2})(?: (\d{4}))?$")
_ORDINAL = re.compile(r"(\d)(?:st|nd|rd|th|-?го|-?ого|-?е|-?ее)\b")
_YEAR_WORD = re.compile(r"(\d{4}) ?(?:года|год|г|року|рік|р|roku|rok|r|year)?\.?$")
_MIN_PREFIX = 3


@dataclass(frozen=True, slots=True)
class Birthday:
    """A day of the year someone was born on, with the year when they told it."""

    month: int
    day: int
    year: int | None = None

    def on_year(self, year: int) -> date:
        """Return the date to celebrate in a year: 29 February falls on the 28th off leap years."""
        if self.month == 2 and self.day == 29 and not calendar.isleap(year):
            return date(year, 2, 28)
        return date(year, self.month, self.day)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold().replace("ł", "l"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=1)
def _month_names() -> tuple[dict[str, int], tuple[tuple[str, int], ...]]:
    exact: dict[str, int] = {}
    for locale in SUPPORTED_LOCALES:
        for width in ("wide", "abbreviated"):
            for context in ("format", "stand-alone"):
                for number, name in get_month_names(width, context, locale).items():
                    exact[_fold(name).rstrip(".")] = number
    wide = tuple((name, number) for name, number in exact.items() if len(name) > _MIN_PREFIX)
    return exact, wide


def month_number(word: str) -> int | None:
    """Return the month a name or its unambiguous beginning ("мар", "paz") stands for."""
    folded = _fold(word).strip().rstrip(".")
    exact, wide = _month_names()
    if folded in exact:
        return exact[folded]
    if len(folded) < _MIN_PREFIX:
        return None
    found = {number for name, number in wide if name.startswith(folded)}
    return found.pop() if len(found) == 1 else None


def _year(text: str | None, today: date | None) -> int | None:
    if text is None:
        return None
    year = int(text)
    if len(text) == 2:
        pivot = (today.year % 100) if today else 29
        year += 2000 if year <= pivot else 1900
    return year


def _valid(day: int, month: int, year: int | None, today: date | None) -> Birthday | None:
    if not 1 <= month <= 12 or day < 1:
        return None
    if year is not None and (year < OLDEST_YEAR or (today is not None and year > today.year)):
        return None
    if day > calendar.monthrange(year if year is not None else 2000, month)[1]:
        return None
    if year is not None and today is not None and date(year, month, day) > today:
        return None
    return Birthday(month=month, day=day, year=year)


def _clean(text: str) -> str:
    folded = _fold(text).strip()
    folded = re.sub(r"[,\s]+", " ", folded).strip(" .")
    folded = _ORDINAL.sub(r"\1", folded)
    folded = re.sub(r"\bof ", "", folded)
    return _YEAR_WORD.sub(r"\1", folded).strip()


def parse_birthday(text: str, locale: str = "en", *, today: date | None = None) -> Birthday | None:
    """Read a typed birthday (the year is optional); return None when it is not a real date.

    `locale` is the customer's; month names of every supported locale are understood, since
    people switch keyboards. With `today`, a year in the future is refused and two-digit
    years are read as the latest past century ("12.03.90" is 1990).
    """
    del locale  # every supported locale's month names are accepted; kept for callers' clarity
    cleaned = _clean(text)
    if not cleaned or len(cleaned) > 40:
        return None
    if match := _ISO.match(cleaned):
        year, month, day = (int(part) for part in match.groups())
        return _valid(day, month, year, today)
    if match := _NUMERIC.match(cleaned):
        first, separator, second, year_text = match.groups()
        year = _year(year_text, today)
        found = _valid(int(first), int(second), year, today)
        if found is None and separator == "/":
            found = _valid(int(second), int(first), year, today)
        return found
    if match := _DAY_MONTH.match(cleaned):
        day_text, word, year_text = match.groups()
        month = month_number(word)
        return _valid(int(day_text), month, _year(year_text, today), today) if month else None
    if match := _MONTH_DAY.match(cleaned):
        word, day_text, year_text = match.groups()
        month = month_number(word)
        return _valid(int(day_text), month, _year(year_text, today), today) if month else None
    return None


def month_names(locale: str) -> list[str]:
    """Return the twelve month names as the locale writes them on their own (for buttons)."""
    names = get_month_names("wide", "stand-alone", locale)
    return [names[number] for number in range(1, 13)]


def days_in_month(month: int) -> int:
    """Return how many days a month can have (29 for February: the year is not asked)."""
    return calendar.monthrange(2000, month)[1]

"""The catalogs keep locales/glossary.md: fixed terms, no forbidden variants, one apostrophe."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from babel import Locale
from babel.messages.pofile import read_po

LOCALES = Path(__file__).resolve().parent.parent / "locales"
GLOSSARY = LOCALES / "glossary.md"
TRANSLATED = ("ru", "uk", "pl")
_PLACEHOLDER_OR_COMMAND = re.compile(r"\{\w+\}|/\w+|<[^>]+>")


def _table(heading: str) -> list[list[str]]:
    """Return the rows of the markdown table under a heading (without its header)."""
    text = GLOSSARY.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("|")
    ]
    return [row for row in rows[2:]]


def _code(cell: str) -> str:
    match = re.fullmatch(r"`([^`]+)`", cell)
    assert match, f"glossary cell {cell!r} is not `code`"
    return match.group(1)


def _entries(locale: str) -> list[tuple[list[str], list[str]]]:
    """Return (English forms, translated forms) of every message of a catalog."""
    with (LOCALES / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    found = []
    for message in catalog:
        if not message.id:
            continue
        ids = list(message.id) if isinstance(message.id, tuple) else [message.id]
        strings = list(message.string) if isinstance(message.string, tuple) else [message.string]
        found.append((ids, strings))
    return found


FIXED = _table("Fixed terms")
NEVER = _table("Never write")


def test_the_glossary_has_its_tables():
    assert len(FIXED) >= 10 and all(len(row) == 4 for row in FIXED)
    assert {row[0] for row in NEVER} == set(TRANSLATED)


@pytest.mark.parametrize("locale", TRANSLATED)
@pytest.mark.parametrize("row", FIXED, ids=[row[0] for row in FIXED])
def test_fixed_terms_are_used_wherever_the_source_uses_them(locale, row):
    english, term = row[0], _code(row[1 + TRANSLATED.index(locale)])
    pattern = re.compile(rf"\b{re.escape(english)}\b", re.IGNORECASE)
    wrong = [
        (ids[0], text)
        for ids, strings in _entries(locale)
        if any(pattern.search(_PLACEHOLDER_OR_COMMAND.sub(" ", i)) for i in ids)
        for text in strings
        if term.lower() not in text.lower()
    ]
    assert wrong == [], f"{locale}: {english!r} must read {term!r}"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_no_variant_the_glossary_forbids(locale):
    forbidden = [_code(row[1]) for row in NEVER if row[0] == locale]
    found = [
        (word, text)
        for _ids, strings in _entries(locale)
        for text in strings
        for word in forbidden
        if word.lower() in text.lower()
    ]
    assert found == []


def test_ukrainian_uses_one_apostrophe():
    found = [
        text for _ids, strings in _entries("uk") for text in strings if re.search("['’]", text)
    ]
    assert found == [], "write ʼ (U+02BC) in Ukrainian"


def test_the_glossary_itself_writes_the_ukrainian_apostrophe():
    ukrainian = [_code(row[2]) for row in FIXED] + [
        _code(row[1]) for row in NEVER if row[0] == "uk"
    ]
    assert not any(re.search("['’]", word) for word in ukrainian)


@pytest.mark.parametrize("locale", TRANSLATED)
def test_plural_forms_follow_cldr(locale):
    """The catalog's Plural-Forms picks, for every n, the form CLDR names (one, few, many)."""
    with (LOCALES / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    assert catalog.num_plurals == 3
    pick = gettext.c2py(catalog.plural_expr)
    index = {"one": 0, "few": 1, "many": 2, "other": 2}
    cldr = Locale.parse(locale)
    assert [pick(n) for n in range(1001)] == [index[cldr.plural_form(n)] for n in range(1001)]
    plural_entries = [strings for ids, strings in _entries(locale) if len(ids) == 2]
    assert plural_entries and all(len(s) == 3 and all(s) for s in plural_entries)

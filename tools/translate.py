"""Fill catalog entries from a small Python mapping: `python tools/translate.py FILE.py`.

The mapping file defines TRANSLATIONS = {locale: {msgid: str | tuple[str, ...]}}; entries the
catalogs already have are overwritten, fuzzy flags are cleared. English copies the source.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

LOCALES = Path(__file__).resolve().parent.parent / "locales"


def fill(locale: str, mapping: dict[str, object]) -> list[str]:
    """Write translations for one locale; return msgids still untranslated."""
    path = LOCALES / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    missing = []
    for message in catalog:
        if not message.id:
            continue
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        if locale == "en":
            message.string = message.id
        elif key in mapping:
            value = mapping[key]
            message.string = tuple(value) if isinstance(value, list | tuple) else value
        message.flags.discard("fuzzy")
        if not message.string or (isinstance(message.string, tuple) and not all(message.string)):
            missing.append(key)
    with path.open("wb") as fh:
        write_po(fh, catalog, width=99, include_previous=False)
    return missing


def main() -> None:
    """Fill every catalog from the mapping files given on the command line."""
    merged: dict[str, dict[str, object]] = {}
    for arg in sys.argv[1:]:
        for locale, entries in runpy.run_path(arg)["TRANSLATIONS"].items():
            merged.setdefault(locale, {}).update(entries)
    for locale in ("en", "ru", "uk", "pl"):
        missing = fill(locale, merged.get(locale, {}))
        for msgid in missing:
            print(f"{locale}: untranslated: {msgid!r}")


if __name__ == "__main__":
    main()

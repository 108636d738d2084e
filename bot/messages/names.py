"""How a message addresses a customer by first name in each language.

Ukrainian and Polish address people in the vocative case ("Вітаємо, Олено!", "Cześć, Anno!");
the nominative there reads as a mistake a native writer would not make. `addressed` returns
the form to put after a greeting, or None when the rules below are not sure of it: the texts
then greet without a name, which is always correct. Russian and English use the name as is.

The rules cover the endings of common first names; a name in another script than the
language's (a Latin "Olena" in a Ukrainian text) or with several words is left out.
"""

from __future__ import annotations

import re

from bot.i18n import get_i18n

_WORD = re.compile(r"^[^\W\d_]+(?:['ʼ’][^\W\d_]+)?$")
_CYRILLIC = re.compile(r"^[а-щьюяєіїґʼ'’]+$")
_LATIN = re.compile(r"^[a-ząćęłńóśźż]+$")

# --------------------------------------------------------------------------- Ukrainian

_UK_EXCEPTIONS = {
    "ігор": "ігорю",
    "федір": "федоре",
    "настя": "насте",
    "ілля": "ілле",
    "олег": "олеже",
    "марко": "марку",
    "юрко": "юрку",
    "ярема": "яремо",
    "кузьма": "кузьмо",
}
# ending -> replacement, longest first; the first that matches wins
_UK_RULES: tuple[tuple[str, str], ...] = (
    ("ія", "іє"),  # Марія, Софія, Юлія, Наталія
    ("ʼя", "ʼє"),  # Дарʼя
    ("ля", "лю"),  # Оля, Галя, Наталя
    ("ня", "ню"),  # Таня, Соня
    ("ся", "сю"),  # Леся, Олеся, Маруся
    ("тя", "тю"),  # Катя
    ("ій", "ію"),  # Андрій, Сергій, Юрій
    ("ай", "аю"),  # Миколай
    ("ко", "ку"),  # Юрко, Марко
    ("ло", "ле"),  # Павло, Михайло, Данило
    ("ро", "ре"),  # Петро, Дмитро
    ("ь", "ю"),  # Василь
    ("а", "о"),  # Олена, Анна, Ольга, Микола (but not after ж ч ш щ: see below)
    ("б", "бе"),
    ("в", "ве"),  # Ярослав, Станіслав
    ("д", "де"),  # Давид
    ("з", "зе"),
    ("л", "ле"),  # Михаїл
    ("м", "ме"),  # Максим, Артем
    ("н", "не"),  # Іван, Богдан, Роман, Антон
    ("п", "пе"),  # Остап
    ("р", "ре"),  # Назар, Віктор, Олександр
    ("с", "се"),  # Тарас, Денис
    ("т", "те"),
    ("ф", "фе"),
    ("к", "ку"),  # Марк
)
_UK_UNSURE_ENDINGS = ("жа", "ча", "ша", "ща", "ий")  # Саша, Маша: usage varies; Russian -ий


def _uk_vocative(name: str) -> str | None:
    if name in _UK_EXCEPTIONS:
        return _UK_EXCEPTIONS[name]
    if name.endswith(_UK_UNSURE_ENDINGS):
        return None
    for ending, replacement in _UK_RULES:
        if name.endswith(ending):
            return name[: -len(ending)] + replacement
    return None


# ------------------------------------------------------------------------------ Polish

_PL_EXCEPTIONS = {
    "paweł": "pawle",
    "piotr": "piotrze",
    "aleksander": "aleksandrze",
    "kacper": "kacprze",
    "maciek": "maćku",
    "ola": "olu",
    "ela": "elu",
    "jola": "jolu",
    "ula": "ulu",
    "iza": "izo",
    "kuba": "kubo",
}
_PL_RULES: tuple[tuple[str, str], ...] = (
    ("sia", "siu"),  # Kasia, Basia, Zosia, Gosia
    ("zia", "ziu"),  # Zuzia
    ("cia", "ciu"),  # Marcia
    ("nia", "niu"),  # Ania, Hania, Sonia
    ("ia", "io"),  # Maria, Julia, Natalia, Zofia
    ("ja", "jo"),  # Alicja, Patrycja
    ("a", "o"),  # Anna, Magda, Katarzyna, Olena
    ("ek", "ku"),  # Marek -> Marku, Jacek, Bartek, Tomek
    ("k", "ku"),  # Henryk, Patryk, Dominik
    ("g", "gu"),  # Oleg
    ("ch", "chu"),  # Wojciech
    ("sz", "szu"),  # Tomasz, Łukasz, Mateusz
    ("cz", "czu"),
    ("rz", "rzu"),  # Grzegorz
    ("j", "ju"),  # Andrzej, Maciej, Mikołaj
    ("l", "lu"),  # Kamil, Karol, Daniel
    ("ł", "le"),  # Michał, Rafał
    ("r", "rze"),  # Artur, Igor, Wiktor
    ("st", "ście"),  # August, Ernest
    ("t", "cie"),  # Robert, Hubert
    ("d", "dzie"),  # Dawid, Witold, Ryszard
    ("n", "nie"),  # Jan, Marcin, Szymon
    ("m", "mie"),  # Adam
    ("p", "pie"),  # Filip
    ("b", "bie"),  # Jakub
    ("f", "fie"),  # Krzysztof, Józef
    ("w", "wie"),  # Stanisław, Zbigniew
    ("y", "y"),  # Jerzy, Ignacy: adjectival names keep their form
    ("i", "i"),  # Antoni
)


def _pl_vocative(name: str) -> str | None:
    if name in _PL_EXCEPTIONS:
        return _PL_EXCEPTIONS[name]
    for ending, replacement in _PL_RULES:
        if name.endswith(ending):
            return name[: -len(ending)] + replacement
    return None


_VOCATIVE = {"uk": (_CYRILLIC, _uk_vocative), "pl": (_LATIN, _pl_vocative)}


def _restore_case(original: str, lowered: str) -> str:
    if original.isupper() and len(original) > 1:
        return lowered.upper()
    if original[:1].isupper():
        return lowered[:1].upper() + lowered[1:]
    return lowered


def addressed(first_name: str | None, locale: str | None = None) -> str | None:
    """Return the first name as a greeting addresses it in the locale, or None to leave it out.

    Uses the current locale (an update's or `locale_scope`) unless one is given.
    """
    if not first_name or not first_name.strip():
        return None
    name = first_name.strip()
    language = (locale or get_i18n().current_locale or "en").split("_")[0]
    rules = _VOCATIVE.get(language)
    if rules is None:
        return name
    if not _WORD.match(name) or len(name) < 2:
        return None
    script, vocative = rules
    lowered = name.lower().replace("’", "ʼ").replace("'", "ʼ")
    if not script.match(lowered):
        return None
    found = vocative(lowered)
    return _restore_case(name, found) if found else None

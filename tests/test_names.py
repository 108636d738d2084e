"""Greetings address people as the language does: the vocative in Ukrainian and Polish."""

from __future__ import annotations

import pytest

from bot.i18n import locale_scope
from bot.messages import cart, linking, surveys
from bot.messages.names import addressed

UKRAINIAN = {
    "Олена": "Олено",
    "Анна": "Анно",
    "Ірина": "Ірино",
    "Оксана": "Оксано",
    "Тетяна": "Тетяно",
    "Ольга": "Ольго",
    "Марія": "Маріє",
    "Софія": "Софіє",
    "Наталія": "Наталіє",
    "Дарʼя": "Дарʼє",
    "Дар'я": "Дарʼє",  # a typed ASCII apostrophe comes back as ʼ
    "Оля": "Олю",
    "Галя": "Галю",
    "Катя": "Катю",
    "Леся": "Лесю",
    "Настя": "Насте",
    "Микола": "Миколо",
    "Тарас": "Тарасе",
    "Іван": "Іване",
    "Богдан": "Богдане",
    "Максим": "Максиме",
    "Назар": "Назаре",
    "Олександр": "Олександре",
    "Володимир": "Володимире",
    "Ярослав": "Ярославе",
    "Остап": "Остапе",
    "Олег": "Олеже",
    "Ігор": "Ігорю",
    "Федір": "Федоре",
    "Андрій": "Андрію",
    "Сергій": "Сергію",
    "Юрій": "Юрію",
    "Василь": "Василю",
    "Петро": "Петре",
    "Дмитро": "Дмитре",
    "Павло": "Павле",
    "Михайло": "Михайле",
    "Марко": "Марку",
    "Ілля": "Ілле",
}
POLISH = {
    "Anna": "Anno",
    "Magda": "Magdo",
    "Ewa": "Ewo",
    "Katarzyna": "Katarzyno",
    "Małgorzata": "Małgorzato",
    "Agnieszka": "Agnieszko",
    "Maria": "Mario",
    "Julia": "Julio",
    "Zofia": "Zofio",
    "Alicja": "Alicjo",
    "Kasia": "Kasiu",
    "Basia": "Basiu",
    "Ania": "Aniu",
    "Ola": "Olu",
    "Olena": "Oleno",
    "Piotr": "Piotrze",
    "Paweł": "Pawle",
    "Michał": "Michale",
    "Tomasz": "Tomaszu",
    "Łukasz": "Łukaszu",
    "Jan": "Janie",
    "Marcin": "Marcinie",
    "Adam": "Adamie",
    "Jakub": "Jakubie",
    "Kuba": "Kubo",
    "Krzysztof": "Krzysztofie",
    "Stanisław": "Stanisławie",
    "Marek": "Marku",
    "Jacek": "Jacku",
    "Andrzej": "Andrzeju",
    "Wojciech": "Wojciechu",
    "Grzegorz": "Grzegorzu",
    "Kamil": "Kamilu",
    "Robert": "Robercie",
    "Dawid": "Dawidzie",
    "Artur": "Arturze",
    "Kacper": "Kacprze",
    "Aleksander": "Aleksandrze",
    "Filip": "Filipie",
    "Jerzy": "Jerzy",
    "Antoni": "Antoni",
}


@pytest.mark.parametrize(("name", "vocative"), UKRAINIAN.items())
def test_ukrainian_names_take_the_vocative(name, vocative):
    assert addressed(name, "uk") == vocative


@pytest.mark.parametrize(("name", "vocative"), POLISH.items())
def test_polish_names_take_the_vocative(name, vocative):
    assert addressed(name, "pl") == vocative


@pytest.mark.parametrize(
    ("name", "locale"),
    [
        ("Саша", "uk"),  # Сашо or Саше: usage varies, so no name
        ("Дмитрий", "uk"),  # a Russian spelling
        ("Olena", "uk"),  # Latin script in a Ukrainian text
        ("Анна-Марія", "uk"),
        ("Olena Koval", "pl"),
        ("Bruno", "pl"),
        ("Олена", "pl"),  # Cyrillic in a Polish text
        ("O", "pl"),
        ("", "uk"),
        (None, "pl"),
        ("  ", "uk"),
    ],
)
def test_names_the_rules_are_unsure_of_are_left_out(name, locale):
    assert addressed(name, locale) is None


@pytest.mark.parametrize("locale", ["ru", "en"])
def test_russian_and_english_address_by_the_name_as_it_is(locale):
    assert addressed("Ольга", locale) == "Ольга"
    assert addressed(" Emma ", locale) == "Emma"


def test_case_is_kept():
    assert addressed("олена", "uk") == "олено"
    assert addressed("ANNA", "pl") == "ANNO"


@pytest.mark.parametrize(
    ("locale", "name", "expected"),
    [
        ("uk", "Олена", "Вітаємо, Олено! Ви підписані на сповіщення магазину Квітка"),
        ("uk", "Саша", "Вітаємо! Ви підписані на сповіщення магазину Квітка"),
        ("pl", "Anna", "Cześć, Anno! Masz włączone powiadomienia sklepu Kvitka"),
        ("ru", "Ольга", "Здравствуйте, Ольга! Вы подписаны на уведомления магазина Kvitka"),
    ],
)
def test_greetings_use_the_vocative_or_no_name(locale, name, expected):
    shop = "Квітка" if locale == "uk" else "Kvitka"
    with locale_scope(locale):
        assert linking.welcome(name, shop).startswith(expected)


def test_every_message_with_a_name_uses_the_vocative():
    with locale_scope("uk"):
        assert cart.reminder_text(
            first_name="Тарас", lines=[], total=None, currency="UAH", locale="uk"
        ).startswith("<b>Тарасе, ви дещо залишили в кошику:</b>")
        assert cart.followup_text(first_name="Олена", code="X", locale="uk").startswith(
            "Олено, можливо"
        )
        assert surveys.birthday_greeting(
            shop_name="Квітка", first_name="Андрій", code=None, early_date=None
        ).startswith("З днем народження, Андрію! 🎂")
    with locale_scope("pl"):
        assert cart.followup_text(first_name="Piotr", code="X", locale="pl").startswith(
            "Piotrze, może"
        )
        assert surveys.birthday_greeting(
            shop_name="Kvitka", first_name="Bruno", code=None, early_date=None
        ).startswith("Wszystkiego najlepszego z okazji urodzin! 🎂")

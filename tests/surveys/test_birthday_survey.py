"""The birthday question in four locales: typed dates, month-then-day buttons, retries, Skip."""

from __future__ import annotations

import pytest
from survey_helpers import LOCALES, ask_birthday, events, person, profile

TYPED = {
    "ru": [("12.03", (3, 12, None)), ("12.03.1990", (3, 12, 1990)), ("12 марта", (3, 12, None))],
    "uk": [("12 березня", (3, 12, None)), ("12.03", (3, 12, None)), ("29.02", (2, 29, None))],
    "pl": [
        ("12 marca", (3, 12, None)),
        ("12.03.1990", (3, 12, 1990)),
        ("29 lutego", (2, 29, None)),
    ],
    "en": [("March 12", (3, 12, None)), ("12/03", (3, 12, None)), ("29.02.1992", (2, 29, 1992))],
}
SAVED = {
    "en": "Thank you! We have noted your birthday: {date}. Expect a gift from us 🎁",
    "ru": "Спасибо! Мы запомнили ваш день рождения: {date}. Ждите от нас подарок 🎁",
    "uk": "Дякуємо! Ми запамʼятали ваш день народження: {date}. Чекайте на подарунок від нас 🎁",
    "pl": "Dziękujemy! Zapisaliśmy datę Twoich urodzin: {date}. Czekaj na prezent od nas 🎁",
}
MARCH_12 = {"en": "March 12", "ru": "12 марта", "uk": "12 березня", "pl": "12 marca"}
RETRY = {
    "en": "Sorry, we couldn't read that date.",
    "ru": "Извините, не удалось разобрать дату.",
    "uk": "Вибачте, не вдалося розпізнати дату.",
    "pl": "Przepraszamy, nie udało się odczytać daty.",
}
GAVE_UP = {
    "en": "Let's leave it for now. Thank you for your time!",
    "ru": "Ничего страшного, оставим это на потом. Спасибо, что уделили время!",
    "uk": "Нічого страшного, залишимо це на потім. Дякуємо, що приділили час!",
    "pl": "Nic nie szkodzi, zostawmy to na później. Dziękujemy za poświęcony czas!",
}
SKIP = {"en": "Skip", "ru": "Пропустить", "uk": "Пропустити", "pl": "Pomiń"}
SKIPPED = {
    "en": "No problem, maybe another time.",
    "ru": "Хорошо, тогда в другой раз.",
    "uk": "Гаразд, тоді іншим разом.",
    "pl": "Nie ma sprawy, może innym razem.",
}
FEBRUARY = {"en": "February", "ru": "Февраль", "uk": "Лютий", "pl": "Luty"}
RECEIVED = {
    "en": "Thank you! We have passed your message to our team",
    "ru": "Спасибо! Мы передали ваше сообщение команде",
    "uk": "Дякуємо! Ми передали ваше повідомлення команді",
    "pl": "Dziękujemy! Przekazaliśmy Twoją wiadomość naszemu zespołowi",
}


@pytest.mark.parametrize("locale", LOCALES)
async def test_a_typed_birthday_lands_on_the_profile(playground, locale):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", default_locale=locale)
    people = [await person(pg, shop, 1001 + n, locale) for n in range(len(TYPED[locale]))]
    await ask_birthday(pg, shop, *people)
    question = people[0].chat.last_message()
    assert "12" in question.text and len(question.buttons) == 5  # 12 months in 4 rows, Skip
    assert question.buttons[-1][0][0] == SKIP[locale]

    for someone, (text, (month, day, year)) in zip(people, TYPED[locale], strict=True):
        await someone.chat.send(text)
        await pg.settle()
        stored = await profile(pg, someone.id)
        assert (stored.birthday.month, stored.birthday.day, stored.birth_year) == (
            month,
            day,
            year,
        ), text
        [event] = await events(pg, someone.id, "birthday_set")
        assert event.payload["month"] == month and event.payload["outbox_id"] is not None
    assert people[0].chat.last_message().text == SAVED[locale].format(date=MARCH_12[locale])


@pytest.mark.parametrize("locale", LOCALES)
async def test_unreadable_dates_get_three_polite_retries_then_the_survey_ends(playground, locale):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", default_locale=locale)
    olena = await person(pg, shop, 1001, locale)
    await ask_birthday(pg, shop, olena)
    for text in ("31.02", "hmm", "30.02.1990"):
        await olena.chat.send(text)
        await pg.settle()
        retry = olena.chat.last_message()
        assert retry.text.startswith(RETRY[locale])
        assert retry.buttons[-1][0][0] == SKIP[locale]  # the months again, and Skip
    await olena.chat.send("no idea")
    await pg.settle()
    assert olena.chat.last_message().text == GAVE_UP[locale]
    assert (await profile(pg, olena.id)).birthday is None
    [ended] = await events(pg, olena.id, "survey_abandoned")
    assert ended.payload["reason"] == "retries"

    await olena.chat.send("12.03")  # the survey is over: now this is a message to the shop
    await pg.settle()
    assert olena.chat.last_message().text.startswith(RECEIVED[locale])
    assert (await profile(pg, olena.id)).birthday is None


@pytest.mark.parametrize("locale", ["uk", "pl"])
async def test_month_then_day_buttons_accept_29_february(playground, locale):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", default_locale=locale)
    olena = await person(pg, shop, 1001, locale)
    await ask_birthday(pg, shop, olena)
    await olena.chat.tap(FEBRUARY[locale])
    await pg.settle()
    days = olena.chat.last_message()
    assert days.edited and [b[0] for row in days.buttons[:-1] for b in row][-1] == "29"
    await olena.chat.tap("29")
    await pg.settle()
    assert olena.chat.last_message().text.startswith(SAVED[locale].split(":")[0])
    stored = await profile(pg, olena.id)
    assert (stored.birthday.month, stored.birthday.day, stored.birth_year) == (2, 29, None)
    assert (await events(pg, olena.id, "birthday_set"))[0].source == "buttons"

    await olena.chat.send("30.03")  # answered: later text is for support, not a new birthday
    await pg.settle()
    assert (await profile(pg, olena.id)).birthday.month == 2


@pytest.mark.parametrize("locale", ["en", "ru"])
async def test_skip_ends_the_survey_at_once(playground, locale):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", default_locale=locale)
    olena = await person(pg, shop, 1001, locale)
    await ask_birthday(pg, shop, olena)
    await olena.chat.send("31.02")
    await pg.settle()
    await olena.chat.tap(SKIP[locale])
    await pg.settle()
    assert olena.chat.last_message().text == SKIPPED[locale]
    [skipped] = await events(pg, olena.id, "survey_skipped")
    assert skipped.payload["kind"] == "survey.birthday"
    await olena.chat.tap(SKIP[locale])  # the question's own Skip: the survey has closed
    await pg.settle()
    assert olena.chat.last_message().text == SKIPPED[locale]
    assert len(await events(pg, olena.id, "survey_skipped")) == 1


async def test_stop_inside_a_survey_unsubscribes(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", default_locale="ru")
    olena = await person(pg, shop, 1001, "ru")
    await ask_birthday(pg, shop, olena)
    await olena.chat.send("Стоп")
    await pg.settle()
    assert olena.chat.last_message().text.startswith("Вы отписались")
    stored = await profile(pg, olena.id)
    assert stored.consent == "opted_out" and stored.consent_source == "stop_word"
    assert stored.consent_at == pg.clock.now() and stored.birthday is None


async def test_a_foreign_or_tampered_button_is_refused(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    olena = await person(pg, shop, 1001)
    marta = await person(pg, shop, 1002)
    await ask_birthday(pg, shop, olena, marta)
    olenas = olena.chat.last_message()
    data = olenas.buttons[-1][0][1]  # Olena's Skip
    ref = data.split(":")[2]
    forged = data.replace(ref, ref[:-2] + ("AA" if not ref.endswith("AA") else "BB"))
    taps = [
        await marta.chat.tap_data(data, message_id=marta.chat.last_message().message_id),
        await olena.chat.tap_data(forged, message_id=olenas.message_id),
        await olena.chat.tap_data("sv:zz:garbage", message_id=olenas.message_id),
    ]
    await pg.settle()
    for tap in taps:
        assert tap.answered and tap.answer_text == "Sorry, this button no longer works."
    assert await events(pg, olena.id) == [] and await events(pg, marta.id) == []
    assert olena.chat.last_message().edited is False

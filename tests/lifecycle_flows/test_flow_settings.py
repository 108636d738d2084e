"""The lifecycle flows' shop settings: strict when set, lenient when read back; the texts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.i18n import locale_scope
from bot.messages.lifecycle import WelcomeStep, greeting, welcome_step_of, welcome_text
from bot.shop_settings import SettingError, apply_setting, load_shop_settings


def test_welcome_steps_read_as_people_write_them():
    assert apply_setting({}, "welcome_steps", "30m,1d") == {"welcome_steps": "30m, 1d"}
    assert load_shop_settings({"welcome_steps": "30m, 1d"}).welcome_steps == [
        timedelta(minutes=30),
        timedelta(days=1),
    ]
    assert load_shop_settings({}).welcome_steps == [
        timedelta(hours=1),
        timedelta(days=2),
        timedelta(days=5),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1h, 2h, 3h, 4h", "1 to 3 delays"),
        (",", "1 to 3 delays"),
        ("2d, 1d", "longer than the one before"),
        ("1h, 1h", "longer than the one before"),
        ("31d", "from 1m to 30d"),
        ("0s", "from 1m to 30d"),
        ("soon", "not a duration"),
        ("1h\x00", "not a duration"),
        ("\ud800", "not a duration"),
        ("9" * 30 + "d", "not a duration"),
    ],
)
def test_bad_welcome_steps_are_refused_in_one_line(value, message):
    with pytest.raises(SettingError, match=message) as refused:
        apply_setting({}, "welcome_steps", value)
    assert "\n" not in str(refused.value)


def test_stored_bad_values_fall_back_to_defaults_and_pools_are_checked():
    settings = load_shop_settings(
        {"welcome_steps": "9999999999d", "thanks_delay": "90d", "restock_pool": "no spaces"}
    )
    assert settings.welcome_steps[0] == timedelta(hours=1)
    assert settings.thanks_delay == timedelta(days=30)
    assert settings.restock_pool is None
    with pytest.raises(SettingError, match="pool name"):
        apply_setting({}, "winback_pool", "bad pool")
    assert apply_setting({"winback_pool": "x"}, "winback_pool", "") == {}
    for key in ("welcome_enabled", "thanks_enabled", "restock_enabled", "winback_enabled"):
        assert getattr(load_shop_settings({}), key) is False


def test_the_last_step_is_the_gift_however_many_steps():
    assert [welcome_step_of(n, 3) for n in (1, 2, 3)] == [
        WelcomeStep.FIRST,
        WelcomeStep.MIDDLE,
        WelcomeStep.LAST,
    ]
    assert welcome_step_of(1, 1) is WelcomeStep.LAST
    assert [welcome_step_of(n, 2) for n in (1, 2)] == [WelcomeStep.FIRST, WelcomeStep.LAST]


@pytest.mark.parametrize(
    ("locale", "name", "expected"),
    [
        ("uk", "Олена", "Вітаємо, Олено!"),
        ("uk", "Olena", "Вітаємо!"),
        ("pl", "Anna", "Cześć, Anno!"),
        ("ru", "Ольга", "Здравствуйте, Ольга!"),
        ("en", None, "Hello!"),
        ("en", "<b>Bob</b>", "Hello, &lt;b&gt;Bob&lt;/b&gt;!"),
    ],
)
def test_greetings_use_the_vocative_and_escape_html(locale, name, expected):
    with locale_scope(locale):
        assert greeting(name, locale) == expected


def test_a_shop_name_and_code_are_escaped():
    with locale_scope("en"):
        text = welcome_text(
            step=WelcomeStep.LAST, shop_name="A&B <Shop>", first_name=None, locale="en", code="<X>"
        )
    assert "A&amp;B &lt;Shop&gt;" in text and "<code>&lt;X&gt;</code>" in text

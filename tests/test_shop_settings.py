"""Shop settings: human durations with bounds, strict when set, lenient when read back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.shop_settings import (
    SettingError,
    apply_setting,
    format_duration,
    load_shop_settings,
    parse_duration,
)
from bot.validation import check_bot_username, country_defaults


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("60m", 3600),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("2d12h", 216000),
        ("1w", 604800),
        ("1.5h", 5400),
        ("45", 45),
        (" 3D ", 259200),
    ],
)
def test_durations_read_the_way_people_write_them(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text", ["", "soon", "-5m", "1h1h", "h", "1x", "1e9", "1h-30m", "\x00", "9" * 400, "1" * 14]
)
def test_what_is_not_a_duration_is_refused(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_a_duration_too_long_for_any_date_is_refused_not_overflowed():
    with pytest.raises(ValueError, match="longer than"):
        parse_duration("999999999d")


def test_durations_print_in_their_largest_whole_unit():
    assert [format_duration(timedelta(seconds=s)) for s in (90, 5400, 86400, 604800)] == [
        "90s",
        "90m",
        "1d",
        "1w",
    ]


def test_bad_stored_values_are_read_back_as_something_usable():
    settings = load_shop_settings(
        {
            "abandoned_cart_delay": "999999999d",
            "survey_ttl": "0s",
            "catalog_url": "not a url",
            "languages": "xx",
            "frequency_cap": "9999",
            "nps_enabled": "maybe",
        }
    )
    assert settings.abandoned_cart_delay == timedelta(days=7), "brought back into its range"
    assert settings.survey_ttl == timedelta(minutes=10)
    assert settings.catalog_url is None
    assert settings.languages == ["en", "ru", "uk", "pl"]
    assert settings.frequency_cap == 1 and settings.nps_enabled is False


def test_setting_one_key_tolerates_an_old_bad_value_of_another():
    stored = {"catalog_url": "not a url"}
    assert apply_setting(stored, "frequency_cap", "2") == {"frequency_cap": 2}
    with pytest.raises(SettingError, match="catalog_url: not a web address"):
        apply_setting(stored, "catalog_url", "still not a url")


def test_languages_and_shop_url_for_the_chat():
    assert load_shop_settings({}).languages == ["en", "ru", "uk", "pl"]
    assert apply_setting({}, "languages", "UK, pl, uk") == {"languages": ["uk", "pl"]}
    assert apply_setting({}, "shop_url", " https://kvitka.ua ") == {
        "shop_url": "https://kvitka.ua"
    }


def test_messages_never_use_pydantic_words():
    for key, value in [
        ("frequency_cap", "many"),
        ("nps_enabled", "perhaps"),
        ("storefront_origins", "ftp://x"),
        ("support_chat_id", "1.5"),
        ("quiet_hours_end", "noon"),
    ]:
        with pytest.raises(SettingError) as failure:
            apply_setting({}, key, value)
        message = str(failure.value)
        assert message.startswith(f"{key}: ")
        assert "Value error" not in message and "Input should" not in message


def test_bot_usernames_lose_their_at_and_link_prefix():
    assert check_bot_username("@kvitka_bot") == "kvitka_bot"
    assert check_bot_username("https://t.me/KvitkaBot") == "KvitkaBot"
    for bad in ("@mybot shop", "kvitka", "bot", "_bad_bot", "k" * 40 + "bot"):
        with pytest.raises(ValueError, match="not a bot's username"):
            check_bot_username(bad)


def test_country_defaults_come_from_cldr_when_the_country_decides():
    assert country_defaults("CZ").currency == "CZK"
    assert country_defaults("CZ").timezone == "Europe/Prague"
    assert country_defaults("CZ").locale is None
    us = country_defaults("US")
    assert (us.currency, us.locale, us.timezone) == ("USD", "en", None)
    zimbabwe = country_defaults("ZW")
    assert zimbabwe.currency is None and "several currencies" in zimbabwe.notes["currency"]

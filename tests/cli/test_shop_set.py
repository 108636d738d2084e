"""`nudge shop set`: every value checked with its bounds and refused in one plain line."""

from __future__ import annotations

import json

import pytest
from cli_helpers import nudge, one_line_error

from bot.shop_settings import SETTING_KEYS
from bot.store.shops import COLUMN_KEYS

TOKEN = "7500000001:AAshopsetbotsecrettoken0001"


@pytest.fixture
def shop(env) -> int:
    code, out = nudge("shop", "add", "--platform", "generic", "--name", "G", "--json")
    assert code == 0, out
    return json.loads(out)["id"]


def show(shop_id: int) -> dict:
    code, out = nudge("shop", "show", str(shop_id), "--json")
    assert code == 0, out
    return json.loads(out)


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("abandoned_cart_delay=999999999d", "abandoned_cart_delay: must be from 1m to 1w"),
        ("abandoned_cart_delay=0s", "abandoned_cart_delay: must be from 1m to 1w (got 0s"),
        ("abandoned_cart_delay=-5m", "abandoned_cart_delay: not a duration: '-5m'"),
        ("abandoned_cart_delay=1h1h", "abandoned_cart_delay: not a duration"),
        ("abandoned_cart_delay=" + "9" * 5000, "abandoned_cart_delay: not a duration"),
        ("survey_ttl=0s", "survey_ttl: must be from 10m to 30d"),
        ("nps_delay=1s", "nps_delay: must be from 1h to 90d"),
        ("frequency_window=100w", "frequency_window: must be from 1m to 30d"),
        ("catalog_url=not a url", "catalog_url: not a web address"),
        ("review_url=javascript:alert(1)", "review_url: not a web address"),
        ("loyalty_url=https://user:pw@shop.example.com", "loyalty_url: not a web address"),
        ("shop_url=ftp://shop.example.com", "shop_url: not a web address"),
        ("bot_token=garbage", "bot_token: expected the form 123456789:AA…"),
        ("bot_username=@my shop", "bot_username: '@my shop' is not a bot's username"),
        ("bot_username=kvitka", "bot_username: 'kvitka' is not a bot's username"),
        ("frequency_cap=99999999999999999999999", "frequency_cap: must be a whole number"),
        ("frequency_cap=-1", "frequency_cap: must be a whole number from 0 to 100"),
        ("code_pool_low_threshold=abc", "code_pool_low_threshold: must be a whole number"),
        ("birthday_days_before=31", "birthday_days_before: must be a whole number from 0 to 30"),
        ("nps_enabled=maybe", "nps_enabled: must be true or false"),
        ("quiet_hours_start=25:00", "quiet_hours_start: not a time of day"),
        ("reminder2_pool=my pool", "reminder2_pool: must be a pool name"),
        ("support_chat_id=chat", "support_chat_id: must be a Telegram chat id"),
        ("languages=en,de", "languages: 'de' is not one of en, ru, uk, pl"),
        ("languages=,", "languages: must list at least one of en, ru, uk, pl"),
        ("languages=pl", "locale: en is not among the shop's languages (pl)"),
        ("locale=xx", "locale: 'xx' is not one of en, ru, uk, pl"),
        ("name=", "name: must not be empty"),
        ("name=a\x00b", "name: must not contain a NUL character"),
        ("currency=\x00", "currency: must not contain a NUL character"),
        ("colour=red", "unknown setting 'colour'; known: "),
    ],
)
def test_bad_values_are_refused_in_one_plain_line(shop, assignment, message):
    before = show(shop)
    code, out = nudge("shop", "set", str(shop), assignment)
    assert code == 2
    line = one_line_error(out)
    assert line.startswith("nudge: error: " + message), line
    assert show(shop) == before, "nothing changed"


def test_known_lists_every_key_that_can_be_set(shop):
    _, out = nudge("shop", "set", str(shop), "colour=red")
    known = one_line_error(out).split("known: ", 1)[1].split(", ")
    assert set(known) == set(SETTING_KEYS) | set(COLUMN_KEYS)
    for key in ("name", "currency", "country", "locale", "timezone", "bot_token"):
        assert key in known
    assert {"bot_username", "webhook_secret", "shop_url", "languages"} <= set(known)


def test_good_values_are_stored_in_their_plain_form(shop):
    code, out = nudge(
        "shop", "set", str(shop),
        "abandoned_cart_delay=1h30m", "followup_delay=2d 12h", "survey_ttl=45m",
        "catalog_url=https://shop.example.com/catalog", "shop_url=https://shop.example.com",
        "languages=uk, en", "locale=uk", "bot_username=@kvitka_bot", "nps_enabled=yes",
        "frequency_cap=3", "support_chat_id=-1001234567890",
        "--json",
    )  # fmt: skip
    assert code == 0, out
    record = json.loads(out)
    settings = record["settings"]
    assert settings["abandoned_cart_delay"] == "90m"
    assert settings["followup_delay"] == "60h"
    assert settings["survey_ttl"] == "45m"
    assert settings["shop_url"] == "https://shop.example.com"
    assert settings["languages"] == ["uk", "en"]
    assert settings["nps_enabled"] is True and settings["frequency_cap"] == 3
    assert record["locale"] == "uk"
    assert record["bot_username"] == "kvitka_bot", "the @ is dropped: t.me/kvitka_bot"
    code, out = nudge("shop", "show", str(shop))
    assert "  languages = uk, en" in out


def test_an_empty_value_puts_a_setting_back_to_its_default(shop):
    nudge("shop", "set", str(shop), "abandoned_cart_delay=2h", "languages=uk,en", "locale=uk")
    code, out = nudge("shop", "set", str(shop), "abandoned_cart_delay=", "languages=", "--json")
    settings = json.loads(out)["settings"]
    assert code == 0 and settings["abandoned_cart_delay"] == "1h"
    assert settings["languages"] == ["en", "ru", "uk", "pl"]


def test_the_order_of_locale_and_languages_does_not_matter_but_the_outcome_does(shop):
    code, out = nudge("shop", "set", str(shop), "languages=pl", "locale=pl", "--json")
    assert code == 0, out
    code, out = nudge("shop", "set", str(shop), "locale=uk")
    assert code == 2 and "locale: uk is not among the shop's languages (pl)" in out


def test_one_bad_assignment_changes_nothing(shop):
    code, _ = nudge("shop", "set", str(shop), "frequency_cap=2", "survey_ttl=0s")
    assert code == 2
    assert show(shop)["settings"]["frequency_cap"] == 1


def test_a_bot_token_is_checked_with_getme_and_sets_the_username(env, shop):
    env.sandbox.sandbox.add_bot(TOKEN, username="kvitka_bot")
    code, out = nudge("shop", "set", str(shop), f"bot_token={TOKEN}", "bot_username=other_bot")
    assert code == 0, out
    assert "note: Telegram says this bot is @kvitka_bot: that is kept" in out
    assert show(shop)["bot_username"] == "kvitka_bot"
    assert TOKEN.split(":")[1] not in out, "the token is never printed"
    env.sandbox.sandbox.auto_register = False
    code, out = nudge("shop", "set", str(shop), "bot_token=7500000009:AAunknowntokenxxxxxxxx")
    assert code == 2 and "Telegram does not know this token" in one_line_error(out)
    code, out = nudge("shop", "set", str(shop), "bot_token=")
    assert code == 0 and show(shop)["bot_token"] is None


def test_a_network_failure_says_so_plainly(env, shop, monkeypatch):
    monkeypatch.setenv("NUDGE_TELEGRAM_API_BASE", "http://127.0.0.1:9")
    code, out = nudge("shop", "set", str(shop), f"bot_token={TOKEN}")
    line = one_line_error(out)
    assert code == 2 and "could not reach the Telegram Bot API at http://127.0.0.1:9" in line
    assert "check the network or NUDGE_TELEGRAM_API_BASE" in line
    monkeypatch.setenv("NUDGE_TELEGRAM_API_BASE", env.sandbox.base_url + "/not-telegram")
    code, out = nudge("shop", "set", str(shop), f"bot_token={TOKEN}")
    assert code == 2 and "did not answer like the Telegram Bot API" in one_line_error(out)


def test_a_missing_shop_is_said_before_telegram_is_asked(env, monkeypatch):
    monkeypatch.setenv("NUDGE_TELEGRAM_API_BASE", "http://127.0.0.1:9")
    code, out = nudge("shop", "set", "999", f"bot_token={TOKEN}")
    assert code == 1 and out.strip() == "nudge: no shop with id 999"


def test_a_disconnected_shop_gets_no_new_bot(env, shop):
    assert nudge("shop", "remove", str(shop), "--yes")[0] == 0
    code, out = nudge("shop", "set", str(shop), f"bot_token={TOKEN}")
    assert code == 2 and f"shop {shop} was disconnected" in one_line_error(out)
    assert nudge("shop", "set", str(shop), "frequency_cap=2")[0] == 0, "settings still change"


def test_shop_remove_asks_for_yes_and_a_missing_shop_exits_1(env, shop):
    code, out = nudge("shop", "remove", str(shop))
    assert code == 2 and "run again with --yes" in one_line_error(out)
    assert show(shop)["uninstalled_at"] is None
    code, out = nudge("shop", "remove", "999", "--yes")
    assert code == 1 and "no shop with id 999" in out
    code, out = nudge("shop", "remove", str(shop), "--yes", "--json")
    result = json.loads(out)
    assert code == 0 and result["already_disconnected"] is False
    assert result["kept"] == {
        "customers": 0,
        "orders": 0,
        "events": 0,
        "messages": 0,
        "promo_codes": 0,
        "deliveries": 0,
    }
    code, out = nudge("shop", "list")
    assert "(disconnected)" in out

"""`nudge shop add` as a shop owner meets it: Shopify's secret, defaults from the country, what
to do next, and the README's Shopify steps followed literally against a running service."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from cli_helpers import SECRET_KEY, anudge, nudge, one_line_error

import bot.cli.shop
from bot.clock import SystemClock
from bot.playground import Playground

APP_SECRET = "shpss_0123456789abcdef0123456789abcdef"
TOKEN = "7400000001:AAshopaddbotsecrettoken0001"


def add(*args: str, input: str | None = None) -> tuple[int, str]:
    return nudge("shop", "add", *args, input=input)


# ------------------------------------------------------------------------------ Shopify secret


def test_shopify_without_its_secret_says_deliveries_are_refused_until_it_is_set(env):
    code, out = add("--platform", "shopify", "--name", "Kvitka")
    assert code == 0, out
    assert "every delivery is refused (401)" in out
    assert "nudge shop set 1 webhook_secret=KEY" in out
    assert "webhook_secret: (not set: Shopify's app client secret goes here" in out
    code, out = add("--platform", "shopify", "--name", "Kvitka 2", "--json")
    record = json.loads(out)
    assert record["webhook_secret_source"] == "generated"
    assert any("webhook_secret=KEY" in step for step in record["next_steps"])


def test_shopify_with_its_secret_has_no_such_step(env):
    code, out = add(
        "--platform", "shopify", "--name", "K", "--webhook-secret", APP_SECRET, "--json"
    )
    record = json.loads(out)
    assert code == 0 and record["webhook_secret"] == APP_SECRET
    assert record["webhook_secret_source"] == "given"
    assert not any("webhook_secret=KEY" in step for step in record["next_steps"])


def test_at_a_terminal_shop_add_asks_for_the_shopify_secret(env, monkeypatch):
    monkeypatch.setattr(bot.cli.shop, "_interactive", lambda: True)
    code, out = add("--platform", "shopify", "--name", "K", input="short\n" + APP_SECRET + "\n")
    assert code == 0, out
    assert "Paste it (hidden; Enter to set it later)" in out
    assert "must be 8 to 128 characters" in out, "a bad secret is asked again"
    assert out.count(APP_SECRET) == 1, "typed hidden: only the shop record shows it"
    code, out = nudge("shop", "show", "1", "--json")
    assert json.loads(out)["webhook_secret"] == APP_SECRET
    code, out = add("--platform", "shopify", "--name", "Later", input="\n")
    assert code == 0 and "every delivery is refused (401)" in out


async def test_the_readme_shopify_steps_work_followed_literally(
    cli_database, monkeypatch, tmp_path
):
    async with Playground(
        cli_database.url, engine=cli_database.engine, clock=SystemClock(), workers=True
    ) as pg:
        monkeypatch.chdir(tmp_path)
        for name, value in {
            "NUDGE_DATABASE_URL": cli_database.url,
            "NUDGE_SECRET_KEY": SECRET_KEY,
            "NUDGE_PUBLIC_URL": pg.settings.public_base,
            "NUDGE_TELEGRAM_API_BASE": pg.sandbox.base_url,
        }.items():
            monkeypatch.setenv(name, value)
        pg.sandbox.add_bot(TOKEN, username="kvitka_bot")
        # Step 1: connect with the app's client secret.
        code, out = await anudge(
            "shop", "add", "--platform", "shopify", "--name", "Kvitka", "--country", "UA",
            "--bot-token", TOKEN, "--webhook-secret", APP_SECRET, "--json",
        )  # fmt: skip
        assert code == 0, out
        record = json.loads(out)
        assert (record["currency"], record["locale"], record["timezone"]) == (
            "UAH",
            "uk",
            "Europe/Kyiv",
        )
        assert "checkouts/update" in record["topics"] and "customers/redact" in record["topics"]
        # Steps 2-3: Shopify delivers, signed with the app's secret, to the printed URL.
        shopify = SimpleNamespace(id=record["id"], platform="shopify", webhook_secret=APP_SECRET)
        status = await pg.deliver_webhook(shopify, "customers/create", _customer())
        assert status == 200
        # Step 4: the check says all is well.
        code, out = await anudge("shop", "check", str(record["id"]))
        assert code == 0 and out.strip().endswith("ok"), out


async def test_a_forgotten_shopify_secret_is_named_by_shop_check_and_fixed_by_shop_set(
    cli_database, monkeypatch, tmp_path
):
    async with Playground(cli_database.url, engine=cli_database.engine) as pg:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("NUDGE_DATABASE_URL", cli_database.url)
        monkeypatch.setenv("NUDGE_SECRET_KEY", SECRET_KEY)
        monkeypatch.setenv("NUDGE_PUBLIC_URL", pg.settings.public_base)
        code, out = await anudge("shop", "add", "--platform", "shopify", "--name", "K", "--json")
        shop_id = json.loads(out)["id"]
        shopify = SimpleNamespace(id=shop_id, platform="shopify", webhook_secret=APP_SECRET)
        assert await pg.deliver_webhook(shopify, "customers/create", _customer()) == 401
        code, out = await anudge("shop", "check", str(shop_id))
        assert code == 3
        fix = f"give it to Nudge with nudge shop set {shop_id} webhook_secret=KEY"
        assert "Shopify signs with the app's client secret: " + fix in out
        code, out = await anudge("shop", "set", str(shop_id), f"webhook_secret={APP_SECRET}")
        assert code == 0, out
        for _ in range(60):  # the web layer's shop cache lasts 2 s
            if await pg.deliver_webhook(shopify, "customers/create", _customer()) == 200:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the new secret was never used")


def _customer() -> dict[str, object]:
    import uuid

    return {
        "id": int(uuid.uuid4().int % 10**12),
        "email": "olena@example.com",
        "first_name": "Olena",
        "updated_at": "2026-03-01T10:00:00+02:00",
    }


# ------------------------------------------------------------------------- country defaults


@pytest.mark.parametrize(
    ("country", "expected"),
    [
        ("UA", ("UAH", "uk", "Europe/Kyiv")),
        ("pl", ("PLN", "pl", "Europe/Warsaw")),
        ("RU", ("RUB", "ru", "Europe/Moscow")),
        ("KZ", ("KZT", "ru", "Asia/Almaty")),
        ("BY", ("BYN", "ru", "Europe/Minsk")),
        ("GB", ("GBP", "en", "Europe/London")),
        ("DE", ("EUR", "en", "Europe/Berlin")),
        ("US", ("USD", "en", "UTC")),
    ],
)
def test_currency_locale_and_time_zone_follow_the_country(env, country, expected):
    code, out = add("--platform", "generic", "--name", "G", "--country", country, "--json")
    assert code == 0, out
    record = json.loads(out)
    assert (record["currency"], record["locale"], record["timezone"]) == expected


def test_shop_add_says_what_it_chose_and_what_it_could_not(env):
    assert add("--platform", "generic", "--name", "G", "--country", "UA")[0] == 0
    _, out = add("--platform", "generic", "--name", "G", "--country", "UA")
    assert "from the country UA: currency UAH, locale uk, timezone Europe/Kyiv" in out
    _, out = add("--platform", "generic", "--name", "U", "--country", "US")
    assert "from the country US: currency USD, locale en" in out
    assert "note: US has several time zones" in out and "UTC used; pass --timezone" in out
    _, out = add("--platform", "generic", "--name", "D", "--country", "DE")
    assert "official languages (de) are not among en, ru, uk, pl: en used" in out


def test_explicit_flags_win_over_the_country(env):
    _, out = add(
        "--platform", "generic", "--name", "G", "--country", "UA", "--currency", "eur",
        "--locale", "ru", "--timezone", "Europe/Warsaw", "--json",
    )  # fmt: skip
    record = json.loads(out)
    assert (record["currency"], record["locale"], record["timezone"]) == (
        "EUR",
        "ru",
        "Europe/Warsaw",
    )
    assert record["chosen"] == {}


def test_without_a_country_the_old_defaults_stay(env):
    _, out = add("--platform", "generic", "--name", "G", "--json")
    record = json.loads(out)
    assert (record["currency"], record["locale"], record["timezone"]) == ("USD", "en", "UTC")


# ------------------------------------------------------------------------------- next steps


def test_next_steps_name_the_bot_token_the_topics_and_the_check(env):
    _, out = add("--platform", "woocommerce", "--name", "Sklep", "--json")
    steps = json.loads(out)["next_steps"]
    assert any("@BotFather" in s and "nudge shop set 1 bot_token=TOKEN" in s for s in steps)
    assert any("WooCommerce → Settings → Advanced → Webhooks" in s for s in steps)
    assert steps[-1] == "check that deliveries arrive: nudge shop check 1"
    assert not any("NUDGE_PUBLIC_URL" in s for s in steps), "https://nudge.example.com is fine"
    _, out = add("--platform", "woocommerce", "--name", "S", "--bot-token", TOKEN, "--json")
    assert not any("bot_token" in s for s in json.loads(out)["next_steps"])


@pytest.mark.parametrize(
    "public", ["http://127.0.0.1:8080", "http://localhost:8080/", "http://[::1]:8080"]
)
def test_a_loopback_public_url_is_a_next_step(env, monkeypatch, public):
    monkeypatch.setenv("NUDGE_PUBLIC_URL", public)
    code, out = add("--platform", "generic", "--name", "G")
    assert (
        code == 0 and "a loopback address: the shop platform and Telegram cannot reach it" in out
    )


def test_a_bot_token_is_checked_with_telegram_and_names_the_bot(env):
    env.sandbox.sandbox.add_bot(TOKEN, username="kvitka_bot")
    code, out = add(
        "--platform", "generic", "--name", "G", "--bot-token", TOKEN,
        "--bot-username", "@wrong_bot", "--json",
    )  # fmt: skip
    record = json.loads(out)
    assert code == 0 and record["bot_username"] == "kvitka_bot"
    assert any("Telegram says this bot is @kvitka_bot" in n for n in record["notes"])
    assert TOKEN.split(":")[1] not in out


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--name", "  "], "nudge: error: --name: must not be empty"),
        (["--name", "K\x00"], "nudge: error: --name: must not contain control characters"),
        (["--name", "K" * 201], "nudge: error: --name: must be at most 200 characters"),
        (["--name", "K", "--country", "XX"], "nudge: error: --country: 'XX' is not an ISO"),
        (["--name", "K", "--country", "ZZ"], "nudge: error: --country: 'ZZ' is not an ISO"),
        (["--name", "K", "--currency", "UAX"], "nudge: error: --currency: 'UAX' is not an ISO"),
        (["--name", "K", "--locale", "de"], "nudge: error: --locale: 'de' is not one of"),
        (["--name", "K", "--timezone", "Mars/Base"], "nudge: error: --timezone:"),
        (["--name", "K", "--bot-token", "garbage"], "nudge: error: --bot-token: expected"),
        (["--name", "K", "--bot-username", "@my shop"], "nudge: error: --bot-username:"),
        (["--name", "K", "--webhook-secret", "x\x00yyyyyyy"], "nudge: error: --webhook-secret:"),
    ],
)
def test_bad_values_are_refused_in_one_line_naming_the_flag(env, args, expected):
    code, out = add("--platform", "generic", *args)
    assert code == 2
    assert one_line_error(out).startswith(expected), out
    assert nudge("shop", "list", "--json")[1].strip() == "[]", "nothing was created"


def test_a_token_telegram_does_not_know_or_cannot_be_asked_about(env, monkeypatch):
    env.sandbox.sandbox.auto_register = False
    code, out = add("--platform", "generic", "--name", "K", "--bot-token", TOKEN)
    assert code == 2 and "Telegram does not know this token" in one_line_error(out)
    monkeypatch.setenv("NUDGE_TELEGRAM_API_BASE", "http://127.0.0.1:9")
    code, out = add("--platform", "generic", "--name", "K", "--bot-token", TOKEN)
    line = one_line_error(out)
    assert code == 2 and "could not reach the Telegram Bot API at http://127.0.0.1:9" in line
    assert TOKEN.split(":")[1] not in out


def test_a_second_run_of_the_same_command(env):
    args = ["--platform", "generic", "--name", "Kvitka", "--bot-token", TOKEN]
    assert add(*args)[0] == 0
    code, out = add(*args)
    assert code == 2
    assert "this bot already serves shop 1 (Kvitka)" in one_line_error(out)
    code, out = add("--platform", "generic", "--name", "Kvitka")
    assert code == 0 and "note: shop 1 has the same name (a second run of shop add?)" in out

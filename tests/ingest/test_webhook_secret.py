"""Rotating a shop's webhook secret while the service runs, and refusing unusable secrets."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from click.testing import CliRunner
from ingest_helpers import SECRET_KEY, fixture_json
from sqlalchemy import text

from bot.cli import cli


@pytest.fixture
async def env(cli_database, monkeypatch, tmp_path):
    """Point the CLI at the test's database (stamped at head)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NUDGE_DATABASE_URL", cli_database.url)
    monkeypatch.setenv("NUDGE_SECRET_KEY", SECRET_KEY)
    yield cli_database
    async with cli_database.engine.begin() as conn:  # leave no stamp behind on the shared PG
        await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


async def nudge(*args: str) -> tuple[int, str]:
    """Run `nudge …` off the event loop; return the exit code and everything printed."""

    def invoke() -> tuple[int, str]:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    return await asyncio.to_thread(invoke)


DELIVERY = {
    "shopify": ("customers/update", lambda: fixture_json("shopify/customers/update.json")),
    "generic": ("customer.upserted", lambda: fixture_json("generic/customer.upserted.json")),
}


@pytest.mark.parametrize("platform", ["shopify", "generic"])
async def test_a_rotated_secret_is_used_by_the_running_service_within_seconds(
    env, hooks, platform
):
    shop = await hooks.shop(platform)
    topic, body = DELIVERY[platform]
    old = shop.webhook_secret
    assert (await hooks.post(shop, topic, body()))[0] == 200  # the service now knows the shop

    new = "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"
    code, out = await nudge("shop", "set", str(shop.id), f"webhook_secret={new}", "--json")
    assert code == 0, out
    assert json.loads(out)["webhook_secret"] == new

    shop.webhook_secret = new
    started = time.monotonic()
    while (status := (await hooks.post(shop, topic, body()))[0]) != 200:
        assert status == 401
        assert time.monotonic() - started < 5, "the rotated secret was not picked up"
        await asyncio.sleep(0.2)
    shop.webhook_secret = old
    assert (await hooks.post(shop, topic, body()))[0] == 401, "the old secret still works"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "must not be empty"),
        ("short", "8 to 128 characters"),
        ("s" * 129, "8 to 128 characters"),
        ("tab\tinside-the-secret", "printable"),
        (" padded-secret-value", "blank"),
    ],
)
async def test_unusable_webhook_secrets_are_refused(env, hooks, value, reason):
    shop = await hooks.shop("woocommerce")
    code, out = await nudge("shop", "set", str(shop.id), f"webhook_secret={value}")
    assert code == 2, out
    assert out.startswith("nudge: error: webhook_secret:") and reason in out
    assert len(out.strip().splitlines()) == 1
    if len(value) > 8:
        assert value.strip() not in out, "a secret is never echoed"
    code, out = await nudge(
        "shop", "add", "--platform", "generic", "--name", "G", "--webhook-secret", value
    )
    assert code == 2 and out.startswith("nudge: error: --webhook-secret:") and reason in out
    code, out = await nudge("shop", "show", str(shop.id), "--json")
    assert json.loads(out)["webhook_secret"] == shop.webhook_secret, "nothing changed"

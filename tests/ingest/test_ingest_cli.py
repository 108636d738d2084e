"""The shop-connection commands as an owner and their scripts use them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from ingest_helpers import SECRET_KEY, fixture_bytes, fixture_json
from sqlalchemy import select, text, update

from bot.cli import cli
from bot.db import transaction
from bot.linking import read_link_token
from bot.migrate import head_revision
from bot.models import Customer, Inbox, Shop


@pytest.fixture
async def env(database, monkeypatch, tmp_path):
    """Point the CLI at the test's database, stamped as migrated to the shipped head."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NUDGE_DATABASE_URL", database.url)
    monkeypatch.setenv("NUDGE_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("NUDGE_PUBLIC_URL", "https://nudge.example.com/")
    async with database.engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE IF NOT EXISTS {STAMP} (version_num VARCHAR(32))"))
        await conn.execute(text(f"DELETE FROM {STAMP}"))
        await conn.execute(text(f"INSERT INTO {STAMP} VALUES (:v)"), {"v": head_revision()})
    yield
    async with database.engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE {STAMP}"))


STAMP = "alembic_version"


def nudge(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


async def run(*args: str) -> tuple[int, str]:
    import asyncio

    return await asyncio.to_thread(nudge, *args)


async def test_shop_add_lists_the_topics_to_subscribe(env):
    code, out = await run(
        "shop",
        "add",
        "--platform",
        "shopify",
        "--name",
        "K",
        "--webhook-secret",
        "shpss_k1",
        "--json",
    )
    assert code == 0, out
    assert json.loads(out)["webhook_secret"] == "shpss_k1"
    topics = json.loads(out)["topics"]
    assert "checkouts/update" in topics and "customers/redact" in topics
    code, out = await run("shop", "add", "--platform", "woocommerce", "--name", "W")
    assert "subscribe these webhook topics" in out and "  order.updated" in out


async def test_inbox_failed_and_retry(env, hooks, database):
    shop = await hooks.shop("woocommerce")
    await hooks.post(shop, "order.updated", {"id": 5, "number": "5"})  # parked at once
    code, out = await run("inbox", "failed", "--shop", str(shop.id), "--json")
    (failed,) = json.loads(out)
    assert failed["state"] == "parked" and "status" in failed["last_error"]
    code, out = await run("inbox", "retry", str(failed["id"]), "--json")
    assert code == 0 and json.loads(out)["state"] == "pending"
    assert (await run("inbox", "retry", "999"))[0] == 1


async def test_shop_check_warns_when_deliveries_stop(env, hooks, database):
    shop = await hooks.shop("generic")
    code, out = await run("shop", "check", str(shop.id), "--json")
    assert json.loads(out)["ok"] is False  # nothing arrived yet
    await hooks.post(shop, "cart.updated", fixture_json("generic/cart.updated.json"))
    code, out = await run("shop", "check", str(shop.id), "--json")
    record = json.loads(out)
    assert record["pending"] == 1 and record["parked"] == 0
    assert record["last_delivery_at"] is not None
    async with transaction(database.sessions) as session:
        old = hooks.clock.now() - timedelta(days=365 * 3)
        await session.execute(update(Shop).values(last_delivery_at=old))
        await session.execute(update(Inbox).values(state="parked"))
    code, out = await run("shop", "check", str(shop.id), "--stale", "24h")
    assert code == 3 and "warning: no delivery for" in out and "1 parked" in out
    assert (await run("shop", "check", "999"))[0] == 1


async def test_customer_export_and_link(env, hooks, database):
    shop = await hooks.shop("generic")
    await hooks.deliver(shop, "customer.upserted", fixture_bytes("generic/customer.upserted.json"))
    await hooks.deliver(shop, "cart.updated", fixture_bytes("generic/cart.updated.json"))
    async with database.sessions() as session:
        (olena,) = (await session.scalars(select(Customer))).all()
    code, out = await run("customer", "export", str(olena.id), "--shop", str(shop.id))
    export = json.loads(out)
    assert export["profile"]["email"] == "olena.koval@example.com"
    assert export["carts"][0]["token"] == "7f3a9c2e" and export["events"]
    assert (await run("customer", "export", str(olena.id), "--shop", "999"))[0] == 1

    for flag, value in (
        ("--customer", str(olena.id)),
        ("--email", "Olena.Koval@example.com"),
        ("--phone", "067 123 45 67"),
    ):
        code, out = await run("link", "--shop", str(shop.id), flag, value, "--json")
        assert code == 0, out
        record = json.loads(out)
        assert record["deep_link"].endswith("start=" + record["token"])
        assert read_link_token(
            secret_key=SECRET_KEY, token=record["token"], now=hooks.clock.now()
        ) == (shop.id, olena.id)
    assert (await run("link", "--shop", str(shop.id), "--email", "nobody@example.com"))[0] == 1
    assert (await run("link", "--shop", str(shop.id)))[0] == 2

"""A bot added, changed or removed with `nudge shop …` while the service runs takes effect in
seconds: webhook (or poller), command menu per language, disconnection, all logged."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from aiohttp import web
from cli_helpers import SECRET_KEY, anudge
from sqlalchemy import select

from bot.app import build_app
from bot.db import transaction
from bot.models import Outbox
from bot.playground import Playground
from bot.sandbox import Limits, Sandbox
from bot.store.customers import add_customer

FIRST = "7300000001:AAsyncfirstbotsecrettoken"
SECOND = "7300000002:AAsyncsecondbotsecrettoken"
DEFAULT = '{"type": "default"}|'


async def eventually(check: Callable[[], object], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Wait until `check()` is true (the service syncs bots every 0.2 s in these tests)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {check}")
        await asyncio.sleep(0.05)


def menu(world, language: str = "") -> list[str]:
    return [c["description"] for c in world.commands.get(DEFAULT + language, [])]


def commands(world, language: str = "") -> list[str]:
    return [c["command"] for c in world.commands.get(DEFAULT + language, [])]


@pytest.fixture
def point_cli_at(cli_database, monkeypatch, tmp_path):
    """Point `nudge` commands at the test's database and at a running service's sandbox."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NUDGE_DATABASE_URL", cli_database.url)
    monkeypatch.setenv("NUDGE_SECRET_KEY", SECRET_KEY)

    def point(sandbox_base: str, public_base: str) -> None:
        monkeypatch.setenv("NUDGE_TELEGRAM_API_BASE", sandbox_base)
        monkeypatch.setenv("NUDGE_PUBLIC_URL", public_base)

    return point


async def test_a_bot_added_changed_and_removed_while_serving_takes_effect(
    cli_database, point_cli_at, caplog
):
    caplog.set_level(logging.INFO, logger="bot.bots")
    async with Playground(
        cli_database.url, engine=cli_database.engine, bot_sync_interval=0.2
    ) as pg:
        point_cli_at(pg.sandbox.base_url, pg.settings.public_base)
        first = pg.sandbox.add_bot(FIRST, username="kvitka_bot", first_name="Kvitka")
        second = pg.sandbox.add_bot(SECOND, username="kvitka_shop_bot", first_name="Kvitka")

        code, out = await anudge(
            "shop", "add", "--platform", "generic", "--name", "Kvitka", "--country", "UA",
            "--bot-token", FIRST, "--json",
        )  # fmt: skip
        assert code == 0, out
        shop_id = json.loads(out)["id"]
        assert json.loads(out)["bot_username"] == "kvitka_bot", "getMe names the bot"
        hook = f"{pg.settings.public_base}/tg/{shop_id}"

        await eventually(lambda: first.webhook is not None and first.webhook.url == hook)
        await eventually(lambda: commands(first) == ["start", "settings", "help", "stop"])
        # the menus go out one language at a time; the log line comes after the last one
        menus_set = f"shop {shop_id}: command menu of @kvitka_bot set in en, ru, uk, pl"
        await eventually(lambda: menus_set in caplog.text)
        for language in ("en", "ru", "uk", "pl"):
            assert commands(first, language) == ["start", "settings", "help", "stop"]
        assert menu(first, "en")[0] == "Subscribe and link your shop account"
        menus = {language: tuple(menu(first, language)) for language in ("en", "ru", "uk", "pl")}
        assert len(set(menus.values())) == 4, "each language gets its own descriptions"
        assert menu(first) == menu(first, "uk"), "the default menu is in the shop's locale"
        assert f"shop {shop_id}: bot @kvitka_bot connected" in caplog.text

        olena = pg.sandbox.customer(FIRST, 1001, "Olena", language_code="uk")
        await olena.send("/help")
        await pg.settle()
        assert olena.last_message() is not None, "the new bot answers without a restart"

        code, out = await anudge("shop", "set", str(shop_id), "languages=uk,en")
        assert code == 0, out
        await eventually(lambda: commands(first, "pl") == [] and commands(first, "ru") == [])
        assert commands(first, "uk") == ["start", "settings", "help", "stop"]

        code, out = await anudge("shop", "set", str(shop_id), f"bot_token={SECOND}", "--json")
        assert code == 0, out
        assert json.loads(out)["bot_username"] == "kvitka_shop_bot"
        await eventually(lambda: second.webhook is not None and second.webhook.url == hook)
        await eventually(lambda: first.webhook is None)
        await eventually(lambda: commands(second, "en") != [])
        replaced = f"shop {shop_id}: its bot was replaced; webhook of @kvitka_bot deleted"
        await eventually(lambda: replaced in caplog.text)

        async with transaction(pg.services.sessions) as session:
            customer = await add_customer(
                session=session, shop_id=shop_id, now=pg.clock.now(), telegram_chat_id=1002
            )
            session.add(
                Outbox(
                    shop_id=shop_id,
                    customer_id=customer.id,
                    kind="text",
                    payload={"text": "later"},
                    dedupe_key="test:later",
                    due_at=pg.clock.now() + timedelta(hours=1),
                    created_at=pg.clock.now(),
                    updated_at=pg.clock.now(),
                )
            )
        code, out = await anudge("shop", "remove", str(shop_id), "--yes")
        assert code == 0, out
        assert f"shop {shop_id} disconnected: nothing more is sent for it" in out
        assert "webhook is deleted" in out and "cancelled 1 message(s)" in out
        assert "kept: 1 customers" in out
        assert second.webhook is None
        async with pg.services.sessions() as session:
            row = (await session.scalars(select(Outbox))).one()
        assert (row.state, row.skip_reason) == ("cancelled", "shop_removed")
        gone = f"shop {shop_id}: it has no bot any more; webhook of @kvitka_shop_bot deleted"
        await eventually(lambda: gone in caplog.text)

        code, out = await anudge("shop", "remove", str(shop_id), "--yes")
        assert code == 0 and f"shop {shop_id} was already disconnected" in out


async def test_polling_picks_up_a_bot_added_while_running(cli_database, point_cli_at, caplog):
    caplog.set_level(logging.INFO, logger="bot.bots")
    sandbox = Sandbox(limits=Limits.off())
    base = await sandbox.start("127.0.0.1", 0)
    world = sandbox.add_bot(FIRST, username="sklep_bot", first_name="Sklep")
    from bot.config import load_settings

    settings = load_settings(
        database_url=cli_database.url,
        telegram_api_base=base,
        public_url="http://127.0.0.1:9",
        secret_key=SECRET_KEY,
        telegram_mode="polling",
        bot_sync_interval=0.2,
    )
    runner = web.AppRunner(
        build_app(settings, engine=cli_database.engine, workers=False), handle_signals=False
    )
    await runner.setup()
    try:
        point_cli_at(base, "http://127.0.0.1:9")
        code, out = await anudge(
            "shop", "add", "--platform", "woocommerce", "--name", "Sklep", "--country", "PL",
            "--bot-token", FIRST, "--json",
        )  # fmt: skip
        assert code == 0, out
        shop = json.loads(out)
        assert (shop["currency"], shop["locale"], shop["timezone"]) == (
            "PLN",
            "pl",
            "Europe/Warsaw",
        )
        await eventually(
            lambda: f"shop {shop['id']}: bot @sklep_bot connected by long polling" in caplog.text
        )
        await eventually(lambda: commands(world) == ["start", "settings", "help", "stop"])
        marta = sandbox.customer(FIRST, 2001, "Marta", language_code="pl")
        await marta.send("/help")
        await eventually(lambda: marta.last_message() is not None)

        code, out = await anudge("shop", "set", str(shop["id"]), "bot_token=")
        assert code == 0, out
        stopped = f"shop {shop['id']}: it has no bot any more; stopped polling @sklep_bot"
        await eventually(lambda: stopped in caplog.text)
    finally:
        await runner.cleanup()
        await sandbox.stop()

"""`nudge token …`: a token is printed once, works at once, and stops at once when revoked."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.db import transaction
from bot.store.shops import create_shop
from bot.store.tokens import authenticate


@pytest.fixture
async def env(cli_database, monkeypatch, clock):
    monkeypatch.setenv("NUDGE_DATABASE_URL", cli_database.url)
    monkeypatch.setenv("NUDGE_SECRET_KEY", "test-secret-key-0123456789")
    async with transaction(cli_database.sessions) as session:
        shop = await create_shop(
            session=session, name="Kvitka", platform="generic", now=clock.now()
        )
    return cli_database, shop.id


def who_is(url: str, token: str, clock):
    """Authenticate a token on a fresh engine (the CLI runs its own event loop too)."""
    from bot.db import create_engine, session_factory

    async def check():
        engine = create_engine(url)
        try:
            async with transaction(session_factory(engine)) as session:
                return await authenticate(session=session, token=token, now=clock.now())
        finally:
            await engine.dispose()

    return asyncio.run(check())


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_tokens_are_made_listed_and_revoked(env, clock):
    database, shop = env
    code, out = invoke("token", "create", "--shop", str(shop), "--read-only", "--json")
    assert code == 0, out
    made = json.loads(out)
    assert made["token"].startswith("nudge_") and made["read_only"] and made["shop_id"] == shop
    who = who_is(database.url, made["token"], clock)
    assert who is not None and who.shop_id == shop and who.read_only

    code, out = invoke("token", "list", "--json")
    listed = json.loads(out)
    assert [t["id"] for t in listed] == [made["id"]] and "token" not in listed[0]
    assert made["token"] not in out and listed[0]["prefix"] == made["token"][:12]

    assert invoke("token", "revoke", str(made["id"]))[0] == 0
    assert who_is(database.url, made["token"], clock) is None
    code, out = invoke("token", "revoke", "999")
    assert code == 1 and out.strip() == "nudge: no token with id 999"


def test_a_token_needs_exactly_one_scope(env):
    _database, shop = env
    code, out = invoke("token", "create")
    assert code == 2 and "give either --owner or --shop ID" in out
    code, out = invoke("token", "create", "--owner", "--shop", str(shop))
    assert code == 2
    code, out = invoke("token", "create", "--shop", "999")
    assert code == 1 and "no shop with id 999" in out
    code, out = invoke("token", "create", "--owner")
    assert code == 0 and out.splitlines()[0].startswith("nudge_")

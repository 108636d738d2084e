"""Telegram updates are handled once each, and a poison update never stops a bot's stream.

End to end against the sandbox, by webhook (Telegram redelivers anything it got no 2xx for)
and by long polling, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

import bot.handlers.replies
from bot.app import build_app
from bot.bots import webhook_secret
from bot.config import load_settings
from bot.db import session_factory, transaction
from bot.models import CustomerEvent, Shop, SupportMessage, TelegramUpdate
from bot.playground import Playground
from bot.sandbox import Limits, Sandbox
from bot.store.customers import add_customer
from bot.store.shops import create_shop
from bot.updates import RETENTION, STALE_CLAIM, fingerprint_of

SAMPLES = Path(__file__).resolve().parent / "data" / "telegram"
THANKS = "Thank you! We have passed your message"
DEEP = "[" * 50_000 + "]" * 50_000


@pytest.fixture
async def playground(database, clock):
    async with Playground(
        database.url, engine=database.engine, clock=clock, limits=Limits.off()
    ) as pg:
        pg.sandbox.delivery.retry_delay = 0.05  # Telegram waits longer; the tests need not
        pg.sandbox.delivery.retry_max = 0.2
        yield pg


async def _linked(pg: Playground, shop: Shop, user_id: int = 1001):
    """A subscribed profile linked to a new chat; return (profile id, chat)."""
    async with transaction(pg.services.sessions) as session:
        profile = await add_customer(
            session=session,
            shop_id=shop.id,
            now=pg.clock.now(),
            first_name="Olena",
            telegram_chat_id=user_id,
            consent="opted_in",
            consent_source="deep_link",
            consent_at=pg.clock.now(),
            locale="en",
        )
    return profile.id, pg.customer(shop, user_id=user_id, first_name="Olena", language_code="en")


async def _replies(sessions, customer_id: int) -> list[str]:
    """The customer's messages written to their profile (reply events), in order."""
    async with sessions() as session:
        query = select(CustomerEvent).where(
            CustomerEvent.customer_id == customer_id, CustomerEvent.type == "reply"
        )
        return [e.payload["text"] for e in (await session.scalars(query.order_by("id"))).all()]


async def _support_messages(sessions, shop_id: int) -> list[str | None]:
    """The customers' messages stored in the shop's support conversations, in order."""
    async with sessions() as session:
        query = select(SupportMessage.text).where(
            SupportMessage.shop_id == shop_id, SupportMessage.direction == "in"
        )
        return list((await session.scalars(query.order_by(SupportMessage.id))).all())  # type: ignore[arg-type]


@pytest.fixture
def handled(monkeypatch) -> list[str | None]:
    """The text of each message the customer-message handler ran for, once per run.

    Storing is idempotent per source message and only a conversation's first message is
    acknowledged, so neither the store nor the bot's answers would show a second run.
    """
    calls: list[str | None] = []
    real = bot.handlers.replies.receive

    async def counted(services: Any, **fields: Any) -> Any:
        calls.append(fields["message"].text)
        return await real(services, **fields)

    monkeypatch.setattr(bot.handlers.replies, "receive", counted)
    return calls


async def _ledger(sessions) -> list[TelegramUpdate]:
    async with sessions() as session:
        query = select(TelegramUpdate).order_by(TelegramUpdate.id)  # type: ignore[arg-type]
        return list((await session.scalars(query)).all())


async def _post(pg: Playground, shop: Shop, body: bytes) -> int:
    """POST a body to the shop's webhook as Telegram would; return the status."""
    headers = {
        "X-Telegram-Bot-Api-Secret-Token": webhook_secret(pg.services.secret_key, shop.id),
        "Content-Type": "application/json",
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{pg.settings.public_base}/tg/{shop.id}", data=body, headers=headers
        ) as response:
            await response.read()
            return response.status


def _message(update_id: int, chat_id: int, text: str, message_id: int | None = None) -> bytes:
    return json.dumps(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id if message_id is None else message_id,
                "date": 1_700_000_000,
                "chat": {"id": chat_id, "type": "private", "first_name": "Olena"},
                "from": {"id": chat_id, "is_bot": False, "first_name": "Olena"},
                "text": text,
            },
        }
    ).encode()


# ------------------------------------------------------------------------- handled once


async def test_an_update_redelivered_after_a_lost_answer_is_handled_once(playground, handled):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    profile_id, olena = await _linked(pg, shop)
    pg.sandbox.faults.add(kind="server_error", method="webhookAnswer", status=502, count=3)

    await olena.send("Is size M in stock?")
    await pg.settle()

    assert pg.sandbox.stats(shop.bot_token).webhook_failures == 3  # delivered four times
    assert handled == ["Is size M in stock?"]
    [thanks] = olena.bot_messages()
    assert thanks.text.startswith(THANKS)
    assert await _replies(pg.services.sessions, profile_id) == ["Is size M in stock?"]
    assert await _support_messages(pg.services.sessions, shop.id) == ["Is size M in stock?"]
    [row] = await _ledger(pg.services.sessions)
    assert (row.state, row.attempts, row.shop_id) == ("done", 1, shop.id)


async def test_the_same_update_sent_twice_is_handled_once(playground, handled):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    profile_id, olena = await _linked(pg, shop)
    world = pg.sandbox.bot(shop.bot_token)

    sent = await olena.send("Hello")
    await pg.settle()
    again = json.dumps({"update_id": 1, "message": sent}, ensure_ascii=False)
    world.enqueue_raw(lambda _: again, update_id=1)  # Telegram never saw the 200
    await olena.send("Still there?")
    await pg.settle()

    assert handled == ["Hello", "Still there?"]  # the redelivered update 1 never ran again
    [thanks] = olena.bot_messages()  # only a conversation's first message is acknowledged
    assert thanks.text.startswith(THANKS)
    assert await _replies(pg.services.sessions, profile_id) == ["Hello", "Still there?"]
    assert await _support_messages(pg.services.sessions, shop.id) == ["Hello", "Still there?"]
    ledger = await _ledger(pg.services.sessions)
    assert [(r.update_id, r.state, r.attempts) for r in ledger] == [(1, "done", 1), (2, "done", 1)]


async def test_concurrent_deliveries_of_one_update_run_it_once(playground, handled):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    profile_id, olena = await _linked(pg, shop)
    body = _message(41, olena.chat_id, "Both at once")

    statuses = await asyncio.gather(*(_post(pg, shop, body) for _ in range(4)))
    await pg.settle()

    assert set(statuses) <= {200, 503} and 200 in statuses  # 503: "being handled, try later"
    assert await _replies(pg.services.sessions, profile_id) == ["Both at once"]
    assert len(olena.bot_messages()) == 1
    assert await _post(pg, shop, body) == 200  # the retry Telegram makes after a 503
    assert await _replies(pg.services.sessions, profile_id) == ["Both at once"]
    assert await _support_messages(pg.services.sessions, shop.id) == ["Both at once"]
    assert handled == ["Both at once"]


async def test_a_claim_left_by_a_crash_is_retried_once_it_is_stale(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    profile_id, olena = await _linked(pg, shop)
    body = _message(7, olena.chat_id, "Are you open on Sunday?")
    async with transaction(pg.services.sessions) as session:
        session.add(  # a worker claimed update 7 and died before finishing it
            TelegramUpdate(
                shop_id=shop.id,
                bot_id=int(shop.bot_token.split(":")[0]),
                update_id=7,
                fingerprint=fingerprint_of(json.loads(body)),
                received_at=pg.clock.now(),
                claimed_at=pg.clock.now(),
            )
        )

    assert await _post(pg, shop, body) == 503  # the claim may still be alive: try later
    assert await _replies(pg.services.sessions, profile_id) == []
    pg.advance(STALE_CLAIM + timedelta(seconds=1))
    assert await _post(pg, shop, body) == 200
    await pg.settle()
    assert await _replies(pg.services.sessions, profile_id) == ["Are you open on Sunday?"]
    assert await _post(pg, shop, body) == 200  # and never again
    assert await _replies(pg.services.sessions, profile_id) == ["Are you open on Sunday?"]
    [row] = await _ledger(pg.services.sessions)
    assert (row.state, row.attempts) == ("done", 2)


async def test_ledger_rows_are_pruned_after_the_retention(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    _, olena = await _linked(pg, shop)
    await olena.send("Monday")
    await pg.settle()
    pg.advance(RETENTION + timedelta(hours=1))
    await olena.send("Four days later")
    await pg.settle()
    assert [r.update_id for r in await _ledger(pg.services.sessions)] == [2]


# ------------------------------------------------------------------------------ poison


@pytest.mark.parametrize(
    "poison",
    [
        pytest.param(lambda i: f'{{"update_id":{i},"message":{{"x":{DEEP}}}}}', id="deep"),
        pytest.param(lambda i: b"\x00not json at all{", id="not-json"),
        pytest.param(lambda i: '{"hello": "world"}', id="no-update-id"),
        pytest.param(lambda i: f'{{"update_id":{i},"message":{{"text":1}}}}', id="bad-shape"),
    ],
)
async def test_an_unreadable_update_is_kept_and_the_stream_goes_on(playground, poison):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    profile_id, olena = await _linked(pg, shop)
    world = pg.sandbox.bot(shop.bot_token)

    bad = world.enqueue_raw(poison)
    await olena.send("After the bad one")
    await pg.settle()

    assert pg.sandbox.stats(shop.bot_token).webhook_failures == 0
    assert await _replies(pg.services.sessions, profile_id) == ["After the bad one"]
    rejected, handled = await _ledger(pg.services.sessions)
    assert rejected.state == "rejected" and rejected.error
    assert rejected.update_id in (bad["update_id"], None)
    assert "\x00" not in rejected.error
    assert (handled.state, handled.update_id) == ("done", bad["update_id"] + 1)


async def test_a_nul_character_does_not_block_the_bot(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    profile_id, olena = await _linked(pg, shop)

    await olena.send("Size\x00M?")
    await olena.send("Size M?")
    await pg.settle()

    assert pg.sandbox.stats(shop.bot_token).webhook_failures == 0
    nul, plain = await _ledger(pg.services.sessions)
    # PostgreSQL refuses NUL in text: it is stored as U+FFFD on either backend, so the message
    # reaches support instead of failing, and the one after it is handled too.
    assert (nul.state, nul.error, nul.attempts) == ("done", None, 1)
    assert (plain.state, plain.error) == ("done", None)
    stored = ["Size\ufffdM?", "Size M?"]
    assert await _replies(pg.services.sessions, profile_id) == stored
    assert await _support_messages(pg.services.sessions, shop.id) == stored


@pytest.mark.parametrize(
    "sample", ["tgdocs_message_text_start_minimal.json", "teloxide_unknown_update_kind.json"]
)
async def test_real_updates_aiogram_cannot_use_are_acknowledged(playground, sample):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    profile_id, olena = await _linked(pg, shop)
    update = json.loads((SAMPLES / sample).read_bytes())
    update["update_id"] += 10_000  # clear of the sandbox's own update ids
    body = json.dumps(update).encode()

    assert await _post(pg, shop, body) == 200
    assert await _post(pg, shop, body) == 200
    await olena.send("Next")
    await pg.settle()

    assert await _replies(pg.services.sessions, profile_id) == ["Next"]
    first, _ = await _ledger(pg.services.sessions)
    assert first.update_id == update["update_id"]
    assert first.state == ("rejected" if "minimal" in sample else "done")


async def test_a_failing_handler_is_recorded_and_acknowledged(playground, monkeypatch):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    profile_id, olena = await _linked(pg, shop)
    real = bot.handlers.replies.receive  # what the handler calls to store a message

    async def breaks_on_boom(services: Any, **fields: Any) -> Any:
        if fields["message"].text == "boom":
            raise RuntimeError("the support store broke")
        return await real(services, **fields)

    monkeypatch.setattr(bot.handlers.replies, "receive", breaks_on_boom)
    await olena.send("boom")
    await olena.send("fine")
    await pg.settle()

    assert pg.sandbox.stats(shop.bot_token).webhook_failures == 0
    assert await _replies(pg.services.sessions, profile_id) == ["fine"]
    assert await _support_messages(pg.services.sessions, shop.id) == ["fine"]
    failed, done = await _ledger(pg.services.sessions)
    assert (failed.state, failed.error) == ("failed", "RuntimeError: the support store broke")
    assert failed.attempts == 1  # a bug is not retried: it would fail on every redelivery
    assert done.state == "done"


async def test_a_database_hiccup_is_retried_and_handled_once(playground, monkeypatch):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    profile_id, olena = await _linked(pg, shop)
    real = bot.handlers.replies.receive  # what the handler calls to store a message
    calls = []

    async def locked_once(services: Any, **fields: Any) -> Any:
        calls.append(fields["message"].text)
        if len(calls) == 1:
            raise sa_exc.OperationalError("INSERT", {}, Exception("database is locked"))
        return await real(services, **fields)

    monkeypatch.setattr(bot.handlers.replies, "receive", locked_once)
    await olena.send("Where is my parcel?")
    await pg.settle()

    assert calls == ["Where is my parcel?", "Where is my parcel?"]
    assert pg.sandbox.stats(shop.bot_token).webhook_failures == 1  # answered 503, then 200
    assert await _replies(pg.services.sessions, profile_id) == ["Where is my parcel?"]
    assert await _support_messages(pg.services.sessions, shop.id) == ["Where is my parcel?"]
    [thanks] = olena.bot_messages()
    assert thanks.text.startswith(THANKS)
    [row] = await _ledger(pg.services.sessions)
    assert (row.state, row.attempts) == ("done", 2)


# ------------------------------------------------------------------------------ polling


@asynccontextmanager
async def polling_service(database, clock) -> AsyncIterator[tuple[Sandbox, Shop, Any]]:
    """The service in NUDGE_TELEGRAM_MODE=polling against a sandbox, with one shop."""
    sandbox = Sandbox(limits=Limits.off())
    base = await sandbox.start("127.0.0.1", 0)
    token = "7100000001:AApollingsecrettoken"
    sandbox.add_bot(token, username="kvitka_bot", first_name="Kvitka")
    sessions = session_factory(database.engine)
    async with transaction(sessions) as session:
        shop = await create_shop(
            session=session,
            name="Kvitka",
            platform="shopify",
            bot_token=token,
            bot_username="kvitka_bot",
            now=clock.now(),
        )
    settings = load_settings(
        database_url=database.url,
        telegram_api_base=base,
        public_url="http://127.0.0.1:9",
        secret_key="polling-secret-key-0123456789abcdef",
        telegram_mode="polling",
    )
    runner = web.AppRunner(
        build_app(settings, engine=database.engine, clock=clock, workers=False),
        handle_signals=False,
    )
    await runner.setup()
    try:
        yield sandbox, shop, sessions
    finally:
        await runner.cleanup()
        await sandbox.stop()


async def test_polling_handles_each_update_once_and_moves_past_poison(database, clock):
    async with polling_service(database, clock) as (sandbox, shop, sessions):
        async with transaction(sessions) as session:
            profile = await add_customer(
                session=session,
                shop_id=shop.id,
                now=clock.now(),
                first_name="Olena",
                telegram_chat_id=1001,
                consent="opted_in",
                locale="en",
            )
        olena = sandbox.customer(shop.bot_token, 1001, "Olena", language_code="en")
        world = sandbox.bot(shop.bot_token)

        sent = await olena.send("One")
        await sandbox.wait_idle(timeout=10)
        again = json.dumps({"update_id": 1, "message": sent}, ensure_ascii=False)
        world.enqueue_raw(lambda _: again, update_id=1)  # its confirmation was lost
        world.enqueue_raw(lambda i: f'{{"update_id":{i},"message":{DEEP}}}')
        await olena.send("Size\x00M?")
        await olena.send("Two")
        await sandbox.wait_idle(timeout=10)

        # update 3's NUL is stored as U+FFFD (PostgreSQL refuses NUL), so it is handled too
        expected = ["One", "Size\ufffdM?", "Two"]
        assert await _replies(sessions, profile.id) == expected
        assert await _support_messages(sessions, shop.id) == expected
        assert world.pending == 0
        states = {row.update_id: row.state for row in await _ledger(sessions)}
        assert states == {1: "done", 2: "rejected", 3: "done", 4: "done"}


async def test_another_update_under_a_reused_id_is_handled(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka")
    profile_id, olena = await _linked(pg, shop)
    first = _message(500, olena.chat_id, "Before a quiet week", message_id=500)
    # Telegram restarted its update id sequence; a new message in the chat still gets a new,
    # higher message id (message ids are unique and increasing per chat)
    later = _message(500, olena.chat_id, "After it", message_id=501)

    assert await _post(pg, shop, first) == 200
    assert await _post(pg, shop, later) == 200
    assert await _post(pg, shop, later) == 200
    await pg.settle()

    assert await _replies(pg.services.sessions, profile_id) == ["Before a quiet week", "After it"]
    stored = await _support_messages(pg.services.sessions, shop.id)
    assert stored == ["Before a quiet week", "After it"]
    [row] = await _ledger(pg.services.sessions)  # one row per bot and update_id, reused
    assert (row.update_id, row.state, row.attempts) == (500, "done", 1)
    assert row.fingerprint == fingerprint_of(json.loads(later))

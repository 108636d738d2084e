"""Survey state lives in the database (or Redis), survives a restart and expires."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta

import pytest
from aiogram.fsm.storage.base import StorageKey
from survey_helpers import ask_birthday, events, person, profile, reopen

from bot.playground import Playground
from bot.sandbox import Limits
from bot.store.fsm import DatabaseStorage, build_storage, purge_expired
from bot.surveys import SurveyStates

REDIS_URL = os.environ.get("NUDGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


async def test_database_storage_keeps_state_and_data_until_they_expire(database, clock):
    storage = DatabaseStorage(database.sessions, clock, ttl=timedelta(days=1))
    key = StorageKey(bot_id=7000000001, chat_id=1001, user_id=1001)
    other = StorageKey(bot_id=7000000002, chat_id=1001, user_id=1001)
    assert await storage.get_state(key) is None and await storage.get_data(key) == {}

    await storage.set_state(key, SurveyStates.answering)
    await storage.update_data(key, {"survey": {"ref": 5, "attempts": 1}})
    assert await storage.get_state(key) == "SurveyStates:answering"
    assert await storage.get_data(key) == {"survey": {"ref": 5, "attempts": 1}}
    assert await storage.get_state(other) is None  # another shop's bot: another conversation

    fresh = DatabaseStorage(database.sessions, clock, ttl=timedelta(days=1))  # a restart
    assert await fresh.get_state(key) == "SurveyStates:answering"

    clock.advance(timedelta(days=1, seconds=1))
    assert await fresh.get_state(key) is None and await fresh.get_data(key) == {}
    async with database.sessions() as session, session.begin():
        assert await purge_expired(session=session, clock=clock) == 1

    await storage.set_data(key, {"closed": 3})
    await storage.set_data(key, {})  # nothing left: the row goes
    async with database.sessions() as session, session.begin():
        assert await purge_expired(session=session, clock=clock) == 0


async def _restart_mid_survey(database, clock, user_id: int, **settings) -> None:
    """Three unreadable dates, a restart, then the answer: it lands on the profile."""
    async with Playground(
        database.url, engine=database.engine, clock=clock, limits=Limits.off(), **settings
    ) as pg:
        shop = await pg.add_shop(name="Kvitka", default_locale="uk")
        olena = await person(pg, shop, user_id, "uk")
        await ask_birthday(pg, shop, olena)
        for text in ("31.02", "котик", "32 березня"):
            await olena.chat.send(text)
            await pg.settle()
        assert olena.chat.last_message().text.startswith("Вибачте, не вдалося розпізнати дату.")
    pg = await reopen(Playground, database, clock, shop, **settings)
    try:
        chat = pg.customer(shop, user_id=user_id, first_name="Olena", language_code="uk")
        await chat.send("12 березня")
        await pg.settle()
        assert chat.last_message().text == (
            "Дякуємо! Ми запамʼятали ваш день народження: 12 березня. "
            "Чекайте на подарунок від нас 🎁"
        )
        stored = await profile(pg, olena.id)
        assert (stored.birthday.month, stored.birthday.day, stored.birth_year) == (3, 12, None)
        assert [e.payload["outbox_id"] for e in await events(pg, olena.id, "birthday_set")] == [1]
        assert await events(pg, olena.id, "reply") == []  # no answer was taken for support
    finally:
        await pg.__aexit__(None, None, None)


async def test_a_restart_in_the_middle_of_a_survey_keeps_it(database, clock):
    await _restart_mid_survey(database, clock, 1001)


async def test_the_retry_count_survives_a_restart(database, clock):
    async with Playground(
        database.url, engine=database.engine, clock=clock, limits=Limits.off()
    ) as pg:
        shop = await pg.add_shop(name="Kvitka")
        olena = await person(pg, shop, 1001, "en")
        await ask_birthday(pg, shop, olena)
        for text in ("31.02", "cat", "dog"):
            await olena.chat.send(text)
            await pg.settle()
    pg = await reopen(Playground, database, clock, shop)
    try:
        chat = pg.customer(shop, user_id=1001, first_name="Olena", language_code="en")
        await chat.send("soon")  # the fourth unreadable answer ends the survey
        await pg.settle()
        assert chat.last_message().text == "Let's leave it for now. Thank you for your time!"
        [ended] = await events(pg, olena.id, "survey_abandoned")
        assert ended.payload["reason"] == "retries"
    finally:
        await pg.__aexit__(None, None, None)


async def _redis_or_skip() -> None:
    import redis.asyncio as redis

    client = redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, redis.RedisError) as exc:
        reason = f"Redis at {REDIS_URL} unreachable: {exc}"
        if IN_CI:
            pytest.fail(reason + " (CI=true requires it)")
        pytest.skip(reason)
    finally:
        await client.aclose()


async def test_redis_storage_when_configured(database, clock):
    await _redis_or_skip()
    storage = build_storage(database.sessions, clock, redis_url=REDIS_URL)
    assert type(storage).__name__ == "RedisStorage"
    user_id = int(uuid.uuid4().int % 10**9) + 10**9  # no clash with other runs sharing Redis
    try:
        await _restart_mid_survey(database, clock, user_id, redis_url=REDIS_URL)
        key = StorageKey(bot_id=7000000001, chat_id=user_id, user_id=user_id)
        assert (await storage.get_data(key))["closed"] == 1
    finally:
        await storage.set_state(StorageKey(7000000001, user_id, user_id), None)
        await storage.set_data(StorageKey(7000000001, user_id, user_id), {})
        await storage.close()

"""Free text, photos and voice go to support; shop questions enrich profiles; the CLI side."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta

from click.testing import CliRunner
from sqlalchemy import text
from survey_helpers import events, offer, outbox, person, profile

from bot.cli import cli
from bot.db import transaction
from bot.flows.birthday import plan_birthday_greetings
from bot.migrate import head_revision
from bot.store.codes import ensure_pool, import_codes
from bot.store.surveys import create_survey
from bot.support import inbox, reply
from bot.surveys import schedule_question


async def test_messages_to_the_shop_are_stored_linked_and_answered(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", default_locale="ru")
    olena = await person(pg, shop, 1001, "ru")
    row = await offer(pg, shop, olena, "spring", topic="dresses")
    await pg.dispatch()
    sent = olena.chat.last_message()
    await olena.chat.reply(sent.message_id, "Есть ли размер M?")
    await olena.chat.send_photo("вот такое")
    await pg.settle()
    assert olena.chat.last_message().text.startswith("Спасибо! Мы передали ваше сообщение")
    first, photo = await events(pg, olena.id, "reply")
    assert first.payload["text"] == "Есть ли размер M?" and first.payload["outbox_id"] == row.id
    assert first.payload["offer_topic"] == "dresses"
    assert photo.payload["content"] == "photo" and photo.payload["file_id"]

    [waiting] = await inbox(pg.services.sessions, shop_id=shop.id)
    assert [m["offer_topic"] for m in waiting.as_dict()["messages"]] == ["dresses", None]
    await reply(pg.services.sessions, pg.clock, customer_id=olena.id, text="Да, M есть <3")
    await pg.dispatch()
    assert olena.chat.last_message().text == "Сообщение от магазина Kvitka:\n\nДа, M есть <3"
    assert await inbox(pg.services.sessions, shop_id=shop.id) == []


async def test_shop_questions_write_profile_attributes(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", default_locale="pl")
    olena = await person(pg, shop, 1001, "pl")
    marta = await person(pg, shop, 1002, "pl")
    async with transaction(pg.services.sessions) as session:
        interests = await create_survey(
            session=session,
            shop_id=shop.id,
            question="Czego szukasz?",
            attribute="interests",
            choices=["Sukienki", "Dodatki"],
            now=pg.clock.now(),
        )
        size = await create_survey(
            session=session,
            shop_id=shop.id,
            question="Jaki nosisz rozmiar?",
            attribute="size",
            now=pg.clock.now(),
        )
        await schedule_question(
            session=session,
            shop_id=shop.id,
            survey=interests,
            customer_id=olena.id,
            now=pg.clock.now(),
        )
        await schedule_question(
            session=session, shop_id=shop.id, survey=size, customer_id=marta.id, now=pg.clock.now()
        )
    await pg.dispatch()
    await olena.chat.tap("Dodatki")
    await marta.chat.send("38")
    await pg.settle()
    assert olena.chat.last_message().text == "Dziękujemy za odpowiedź: Dodatki"
    assert (await profile(pg, olena.id)).attributes == {"interests": "Dodatki"}
    assert (await profile(pg, marta.id)).attributes == {"size": "38"}
    assert await events(pg, marta.id, "reply") == []  # an answer, not a support message
    await marta.chat.send("A kiedy dostawa?")  # answered: this one is for support
    await pg.settle()
    assert len(await events(pg, marta.id, "reply")) == 1


async def test_birthday_greeting_with_a_code_once_a_year(playground):
    pg = playground
    shop = await pg.add_shop(name="Kvitka", default_locale="uk", timezone="Europe/Kyiv")
    olena = await person(pg, shop, 1001, "uk", first_name="Олена", birthday=date(1904, 3, 3))
    async with transaction(pg.services.sessions) as session:
        await ensure_pool(session=session, shop_id=shop.id, name="birthday", now=pg.clock.now())
        await import_codes(
            session=session, shop_id=shop.id, pool="birthday", codes=["BDAY-1"], now=pg.clock.now()
        )
    for _ in range(2):  # the hourly planner runs twice: still one greeting
        async with transaction(pg.services.sessions) as session:
            await plan_birthday_greetings(session=session, shop=shop, now=pg.clock.now())
    [row] = await outbox(pg, olena.id, "birthday.greeting")
    assert row.due_at.isoformat() == "2026-03-03T08:00:00+00:00"  # 10:00 in Kyiv
    pg.clock.advance(timedelta(hours=23))
    await pg.dispatch()
    greeting = olena.chat.last_message().text
    assert greeting.startswith("З днем народження, Олено! 🎂") and "BDAY-1" in greeting


def _nudge(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


async def test_cli_survey_support_nps_and_resolve(playground, database, monkeypatch, tmp_path):
    pg = playground
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NUDGE_DATABASE_URL", database.url)
    monkeypatch.setenv("NUDGE_SECRET_KEY", pg.services.secret_key)
    async with database.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS alembic_version (version_num TEXT)"))
        await conn.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": head_revision()})
    try:
        quiet = {"quiet_hours_start": "00:00", "quiet_hours_end": "00:00"}
        shop = await pg.add_shop(name="Kvitka", settings=quiet)
        olena = await person(pg, shop, 1001, "en")
        pg.clock.set(datetime.now(UTC))  # the CLI runs on the wall clock
        run = asyncio.to_thread
        code, out = await run(
            _nudge, "survey", "create", "--shop", str(shop.id), "--question", "Style?",
            "--attribute", "style", "--choice", "Boho", "--choice", "Classic", "--json",
        )  # fmt: skip
        assert code == 0, out
        survey_id = json.loads(out)["id"]
        code, out = await run(
            _nudge, "survey", "send", str(survey_id), "--shop", str(shop.id), "--all", "--json"
        )
        assert json.loads(out)["scheduled"] == 1
        pg.clock.set(datetime.now(UTC))
        await pg.dispatch()
        await olena.chat.tap("Boho")
        await olena.chat.send("Where is my parcel?")
        await pg.settle()
        code, out = await run(_nudge, "support", "inbox", "--shop", str(shop.id))
        assert "Where is my parcel?" in out
        code, out = await run(_nudge, "support", "reply", str(olena.id), "On its way!")
        assert code == 0, out
        pg.clock.set(datetime.now(UTC))
        await pg.dispatch()
        assert olena.chat.last_message().text == "Message from Kvitka:\n\nOn its way!"
        async with transaction(pg.services.sessions) as session:
            stored = await session.get(type(await profile(pg, olena.id)), olena.id)
            stored.needs_follow_up = True
        code, out = await run(_nudge, "customer", "resolve", str(olena.id))
        assert "follow-up cleared" in out
        code, out = await run(_nudge, "report", "nps", "--shop", str(shop.id), "--json")
        assert json.loads(out)["answers"] == 0 and json.loads(out)["nps"] is None
    finally:
        async with database.engine.begin() as conn:
            await conn.execute(text("DROP TABLE alembic_version"))

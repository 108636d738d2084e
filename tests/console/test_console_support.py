"""The console's support desk: a shop without a support group answers its customers here."""

from __future__ import annotations

import re

import pytest
from console_helpers import hidden, logged_in, make_console
from sqlalchemy import select

from bot.db import transaction
from bot.models import Shop, SupportConversation
from bot.playground import Playground
from bot.sandbox import Limits
from bot.shop_settings import apply_setting


@pytest.fixture
async def console(database, clock):
    """The console's service, without the sandbox's one-message-a-second pace per chat."""
    async with Playground(
        database.url, engine=database.engine, clock=clock, limits=Limits.off()
    ) as pg:
        yield await make_console(pg)


def olena(console):
    """Олена Коваль, Kvitka's linked customer (chat 700), in her Telegram chat."""
    return console.pg.customer(console.kvitka, user_id=700, first_name="Олена", language_code="uk")


async def conversation_of(console, shop, telegram_user_id) -> SupportConversation:
    async with console.pg.services.sessions() as session:
        query = select(SupportConversation).where(
            SupportConversation.shop_id == shop.id,
            SupportConversation.telegram_user_id == telegram_user_id,
        )
        return (await session.scalars(query.order_by(SupportConversation.id.desc()))).first()


def desk_url(console, conversation_id: int | None = None, shop=None) -> str:
    shop = shop or console.kvitka
    url = f"{console.base}/console/shops/{shop.id}/support"
    return url if conversation_id is None else f"{url}/{conversation_id}"


async def test_a_waiting_customer_is_answered_noted_and_closed_from_the_console(console):
    pg = console.pg
    chat = olena(console)
    await chat.send("Де моє замовлення #1001?")
    await pg.settle()
    acknowledged = len(chat.bot_messages())
    http = await logged_in(console, "kvitka")
    async with http:
        async with http.get(desk_url(console)) as r:
            page = await r.text()
            assert r.status == 200
            assert "Олена Коваль" in page and "Де моє замовлення #1001?" in page
            link = re.search(r'data-waiting="(/console/shops/\d+/support/(\d+))"', page)
            assert link, page
        url = console.base + link.group(1)
        async with http.get(url) as r:
            page = await r.text()
            assert r.status == 200
            assert 'data-direction="in"' in page and "Де моє замовлення #1001?" in page
            assert "olena@example.com" in page and "opted_in" in page  # the card beside it
            assert 'name="text"' in page
            csrf = hidden(page)

        async with http.post(url + "/answer", data={"csrf": csrf, "text": "Вже в дорозі!"}) as r:
            page = await r.text()
            assert r.status == 200 and str(r.url).endswith("?answer=sent")
            assert 'data-answer="sent"' in page
            assert re.search(r'data-direction="out" data-state="delivered"', page)
            assert page.index("Де моє замовлення") < page.index("Вже в дорозі!")
        await pg.settle()
        received = chat.last_message().text
        assert received.startswith("Повідомлення від магазину Kvitka") and received.endswith(
            "Вже в дорозі!"
        )
        assert len(chat.bot_messages()) == acknowledged + 1
        async with http.get(desk_url(console)) as r:
            page = await r.text()
            assert "data-waiting=" not in page  # answered: nobody waits
            assert f'data-open="{link.group(1)}"' in page  # but it is still open

        async with http.post(url + "/note", data={"csrf": csrf, "text": "Трек: 20450"}) as r:
            page = await r.text()
            assert "data-noted" in page and 'data-direction="note"' in page
            assert "Трек: 20450" in page
        await pg.settle()
        assert len(chat.bot_messages()) == acknowledged + 1  # a note is never sent

        async with http.post(url + "/close", data={"csrf": csrf}) as r:
            page = await r.text()
            assert 'data-closed="told"' in page and 'data-state="closed"' in page
            assert 'action="' + link.group(1) + '/close"' not in page
        await pg.settle()
        assert chat.last_message().text.startswith("Ми закрили цю розмову")
        async with http.get(desk_url(console)) as r:
            page = await r.text()
            assert link.group(1) not in page


async def test_an_answer_that_is_too_long_or_empty_is_refused_and_kept(console):
    pg = console.pg
    chat = olena(console)
    await chat.send("Є розмір M?")
    await pg.settle()
    conversation = await conversation_of(console, console.kvitka, 700)
    http = await logged_in(console, "kvitka")
    async with http:
        url = desk_url(console, conversation.id)
        async with http.get(url) as r:
            csrf = hidden(await r.text())
        async with http.post(url + "/answer", data={"csrf": csrf, "text": "   "}) as r:
            assert r.status == 422 and "Write an answer of 1 to 3500" in await r.text()
        long = "Так" * 1200
        async with http.post(url + "/answer", data={"csrf": csrf, "text": long}) as r:
            assert r.status == 422 and long in await r.text()  # given back to shorten
    await pg.settle()
    assert not chat.last_message().text.endswith("Так")


async def test_a_customer_who_blocked_the_bot_is_shown_as_such_and_stays_waiting(console):
    pg = console.pg
    chat = olena(console)
    await chat.send("А коли саме?")
    await pg.settle()
    await chat.block()
    await pg.settle()
    conversation = await conversation_of(console, console.kvitka, 700)
    http = await logged_in(console, "kvitka")
    async with http:
        url = desk_url(console, conversation.id)
        async with http.get(url) as r:
            csrf = hidden(await r.text())
        async with http.post(url + "/answer", data={"csrf": csrf, "text": "Завтра"}) as r:
            page = await r.text()
            assert 'data-answer="unreachable"' in page and 'role="alert"' in page
            assert "blocked the bot" in page
            assert 'data-direction="out" data-state="undelivered"' in page
            assert 'data-state="open"' in page
            assert "data-blocked" in page  # and the card says so from now on
        async with http.get(desk_url(console)) as r:
            page = await r.text()
            wanted = f"/console/shops/{console.kvitka.id}/support/{conversation.id}"
            assert f'data-waiting="{wanted}"' in page
            assert "An answer was not delivered" in page
    assert not any(m.text.endswith("Завтра") for m in chat.bot_messages())
    fresh = await conversation_of(console, console.kvitka, 700)
    assert fresh.state == "open" and fresh.undelivered == 1


async def test_someone_not_linked_yet_is_answered_by_their_telegram_id(console):
    pg = console.pg
    stranger = pg.customer(console.kvitka, user_id=2001, first_name="Zofia", language_code="pl")
    await stranger.send("Czy wysyłacie do Polski?")
    await pg.settle()
    conversation = await conversation_of(console, console.kvitka, 2001)
    assert conversation.customer_id is None
    http = await logged_in(console, "kvitka")
    async with http:
        async with http.get(desk_url(console)) as r:
            page = await r.text()
            assert "Zofia" in page and "not linked" in page
        url = desk_url(console, conversation.id)
        async with http.get(url) as r:
            page = await r.text()
            assert "2001" in page and "Not linked to a shop customer yet" in page
            csrf = hidden(page)
        async with http.post(url + "/answer", data={"csrf": csrf, "text": "Tak!"}) as r:
            assert 'data-answer="sent"' in await r.text()
    await pg.settle()
    assert stranger.last_message().text.endswith("Tak!")


async def test_writes_need_csrf_and_a_writer_and_another_shops_desk_is_not_found(console):
    pg = console.pg
    chat = olena(console)
    await chat.send("Привіт")
    await pg.settle()
    elsewhere = pg.customer(console.other, user_id=3001, first_name="Jan", language_code="pl")
    await elsewhere.send("Cześć")
    await pg.settle()
    mine = await conversation_of(console, console.kvitka, 700)
    theirs = await conversation_of(console, console.other, 3001)
    url = desk_url(console, mine.id)

    reader = await logged_in(console, "reader")
    async with reader:
        async with reader.get(url) as r:
            page = await r.text()
            assert r.status == 200 and "Привіт" in page and 'name="text"' not in page
            csrf = hidden(page)
        for action in ("answer", "note", "close"):
            async with reader.post(f"{url}/{action}", data={"csrf": csrf, "text": "x"}) as r:
                assert r.status == 403, action

    http = await logged_in(console, "kvitka")
    async with http:
        async with http.get(url) as r:
            csrf = hidden(await r.text())
        async with http.post(url + "/answer", data={"text": "без CSRF"}) as r:
            assert r.status == 403
        async with http.post(url + "/close", data={"csrf": "forged"}) as r:
            assert r.status == 403
        async with http.get(desk_url(console, shop=console.other)) as r:
            assert r.status == 404
        async with http.get(desk_url(console, theirs.id, shop=console.other)) as r:
            assert r.status == 404
        async with http.get(desk_url(console, theirs.id)) as r:
            assert r.status == 404  # their conversation under our shop's address
        async with http.post(
            desk_url(console, theirs.id) + "/answer", data={"csrf": csrf, "text": "x"}
        ) as r:
            assert r.status == 404
        async with http.get(desk_url(console, 10**20)) as r:
            assert r.status == 404
    await pg.settle()
    assert chat.last_message().text.startswith("Дякуємо!")  # nothing was sent
    assert (await conversation_of(console, console.kvitka, 700)).state == "open"


async def test_a_shop_with_a_support_group_reads_its_desk_here_and_answers_there(console):
    pg = console.pg
    async with transaction(pg.services.sessions) as session:
        shop = await session.get(Shop, console.kvitka.id)
        shop.settings = apply_setting(shop.settings, "support_chat_id", "-1001234567890")
        session.add(shop)
    chat = olena(console)
    await chat.send("Де моє замовлення?")
    await pg.settle()
    conversation = await conversation_of(console, console.kvitka, 700)
    http = await logged_in(console, "kvitka")
    async with http:
        async with http.get(desk_url(console)) as r:
            page = await r.text()
            assert "Де моє замовлення?" in page and "answer them in the group" in page
        url = desk_url(console, conversation.id)
        async with http.get(url) as r:
            page = await r.text()
            assert 'name="text"' not in page and "answer them in the group" in page
            assert "Not in the support group yet" in page  # no relay ran in this test
            csrf = hidden(page)
        async with http.post(url + "/answer", data={"csrf": csrf, "text": "x"}) as r:
            assert r.status == 409

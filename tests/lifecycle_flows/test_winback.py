"""Win-back: a message with a personal code on entering at_risk, a last one on lapsing, never
twice in one stage episode, and nothing to a chat that blocked the bot."""

from __future__ import annotations

from datetime import timedelta

import pytest
from lifecycle_helpers import (
    BUTTONS,
    HELLO,
    LOCALES,
    give_codes,
    link,
    make_shop,
    place_order,
    refresh,
    rows,
)

from bot.db import transaction
from bot.flows.winback import WINBACK_KIND
from bot.lifecycle import lifecycle_report
from bot.models import Lane
from bot.store.outbox import schedule

MISS_YOU = {
    "en": "We miss you! It has been a while since your last order at Kvitka, and there is a lot "
    "new in our catalog.",
    "ru": "Мы скучаем! С вашего последнего заказа в магазине Kvitka прошло немало времени, а в "
    "нашем каталоге появилось много нового.",
    "uk": "Ми сумуємо! З вашого останнього замовлення в магазині Kvitka минуло чимало часу, а наш "
    "каталог тим часом поповнився новинками.",
    "pl": "Tęsknimy! Od Twojego ostatniego zamówienia w sklepie Kvitka minęło sporo czasu, a w "
    "naszym katalogu pojawiło się wiele nowości.",
}
LAST = {
    "en": "We have not seen you at Kvitka for a long time. This is our last reminder — we would "
    "be glad to see you again.",
    "ru": "Мы давно не видели вас в магазине Kvitka. Это наше последнее напоминание — будем рады "
    "видеть вас снова.",
    "uk": "Ми давно не бачили вас у магазині Kvitka. Це наше останнє нагадування — будемо раді "
    "бачити вас знову.",
    "pl": "Dawno nie widzieliśmy Cię w sklepie Kvitka. To nasze ostatnie przypomnienie — chętnie "
    "znów Cię zobaczymy.",
}
CODE = {
    "en": "Your personal promo code for the next order: MISS-1",
    "ru": "Ваш персональный промокод на следующий заказ: MISS-1",
    "uk": "Ваш персональний промокод на наступне замовлення: MISS-1",
    "pl": "Twój osobisty kod rabatowy na następne zamówienie: MISS-1",
}


def _winbacks(person, locale):
    return [
        m
        for m in person.chat.bot_messages()
        if MISS_YOU[locale] in (m.text or "") or LAST[locale] in (m.text or "")
    ]


@pytest.mark.parametrize("locale", LOCALES)
async def test_at_risk_then_lapsed_each_once(playground, locale):
    pg = playground
    shop = await make_shop(pg, locale, winback_enabled=True, winback_pool="miss")
    await give_codes(pg, shop, "miss", "MISS-1", "MISS-2")
    olena = await link(pg, shop, locale)
    await place_order(pg, shop, olena, 9001)
    await refresh(pg)
    pg.advance(timedelta(days=134))  # one order: at_risk past 1.5 x 90 days
    await refresh(pg)
    await pg.dispatch()
    assert _winbacks(olena, locale) == []

    pg.advance(timedelta(days=2))
    await refresh(pg)
    await pg.dispatch()
    [miss] = _winbacks(olena, locale)
    assert miss.text == f"{HELLO[locale]} {MISS_YOU[locale]}\n\n{CODE[locale]}"
    assert miss.button_texts == BUTTONS[locale]
    await refresh(pg)  # twice in the same stage: still one
    pg.advance(timedelta(days=1))
    await refresh(pg)
    await pg.dispatch()
    assert len(_winbacks(olena, locale)) == 1

    pg.advance(timedelta(days=135))  # past 3 x 90 days: lapsed, the last one
    await refresh(pg)
    await refresh(pg)
    await pg.dispatch()
    assert len(_winbacks(olena, locale)) == 2
    last = _winbacks(olena, locale)[-1]
    assert last.text == f"{HELLO[locale]} {LAST[locale]}\n\n{CODE[locale]}"  # the code she holds
    pg.advance(timedelta(days=400))
    await refresh(pg)
    await pg.dispatch()
    assert len(_winbacks(olena, locale)) == 2
    assert [r.state for r in await rows(pg, olena.id, WINBACK_KIND)] == ["sent", "sent"]


async def test_a_new_episode_after_an_order_gets_its_own_message(playground):
    pg = playground
    shop = await make_shop(pg, "en", winback_enabled=True)
    olena = await link(pg, shop, "en")
    await place_order(pg, shop, olena, 9001)
    pg.advance(timedelta(days=10))
    await place_order(pg, shop, olena, 9002)  # her interval: 10 days
    pg.advance(timedelta(days=16))
    await refresh(pg)
    await refresh(pg)
    await pg.dispatch()
    assert len(_winbacks(olena, "en")) == 1
    assert _winbacks(olena, "en")[0].text == f"{HELLO['en']} {MISS_YOU['en']}"  # no pool: no code

    await place_order(pg, shop, olena, 9003)  # back: active again
    pg.advance(timedelta(days=12))
    await refresh(pg)
    await pg.dispatch()
    assert len(_winbacks(olena, "en")) == 1
    pg.advance(timedelta(days=10))  # 22 days > 1.5 x 13 days: at_risk again, a new episode
    await refresh(pg)
    await refresh(pg)
    await pg.dispatch()
    assert len(_winbacks(olena, "en")) == 2
    keys = [r.dedupe_key for r in await rows(pg, olena.id, WINBACK_KIND)]
    assert len(set(keys)) == 2 and all(":at_risk:" in k for k in keys)


async def test_an_order_before_the_send_skips_it(playground):
    pg = playground
    shop = await make_shop(
        pg, "en", winback_enabled=True, quiet_hours_start="00:00", quiet_hours_end="20:00"
    )
    olena = await link(pg, shop, "en")
    await place_order(pg, shop, olena, 9001)
    pg.advance(timedelta(days=140))
    await refresh(pg)  # at_risk; the message waits for the end of quiet hours
    await pg.dispatch()
    assert _winbacks(olena, "en") == []
    await place_order(pg, shop, olena, 9002)
    pg.advance(timedelta(hours=8))  # past 20:00 in Kyiv
    await pg.dispatch()
    assert _winbacks(olena, "en") == []
    [row] = await rows(pg, olena.id, WINBACK_KIND)
    assert (row.state, row.skip_reason) == ("skipped", "ordered")


async def test_nothing_is_planned_or_sent_to_a_blocked_chat(playground):
    pg = playground
    shop = await make_shop(pg, "ru", winback_enabled=True)
    olena = await link(pg, shop, "ru")
    taras = await link(pg, shop, "ru", user_id=1002)
    await place_order(pg, shop, olena, 9001)
    await place_order(pg, shop, taras, 9002)
    await taras.chat.block()
    await pg.settle()
    async with transaction(pg.services.sessions) as session:  # the next send learns it: 403
        await schedule(
            session=session,
            shop_id=shop.id,
            customer_id=taras.id,
            kind="text",
            dedupe_key="news:1",
            due_at=pg.clock.now(),
            lane=Lane.REMINDER,
            payload={"text": "News"},
            now=pg.clock.now(),
        )
    assert (await pg.dispatch())["blocked"] == 1
    pg.advance(timedelta(days=140))
    await refresh(pg)
    await pg.dispatch()
    assert len(_winbacks(olena, "ru")) == 1
    assert await rows(pg, taras.id, WINBACK_KIND) == []
    assert taras.chat.bot_messages()[-1].text != "News"  # nothing reached the blocked chat
    async with pg.services.sessions() as session:
        report = await lifecycle_report(session=session, shop_id=shop.id, now=pg.clock.now())
    assert report.stages["at_risk"] == 2
    assert report.unreachable["at_risk"] == 1 and report.blocked["at_risk"] == 1


async def test_a_shops_first_computation_sends_nothing_and_it_is_off_by_default(playground):
    from bot.models import Order

    pg = playground
    shop = await make_shop(pg, "en", winback_enabled=True)
    olena = await link(pg, shop, "en")
    async with transaction(pg.services.sessions) as session:  # history from before Nudge
        session.add(
            Order(
                shop_id=shop.id,
                customer_id=olena.id,
                external_id="old-1",
                placed_at=pg.clock.now() - timedelta(days=200),
                updated_at=pg.clock.now(),
            )
        )
    await refresh(pg)  # prospect -> at_risk: not a move she made
    await pg.dispatch()
    assert await rows(pg, olena.id, WINBACK_KIND) == []

    off = await make_shop(pg, "en")
    taras = await link(pg, off, "en", user_id=1002)
    await place_order(pg, off, taras, 9002)
    pg.advance(timedelta(days=140))
    await refresh(pg)
    assert await rows(pg, taras.id, WINBACK_KIND) == []


async def test_a_move_made_by_a_cli_refresh_is_planned_by_the_next_periodic_run(playground):
    from bot.lifecycle import refresh_metrics

    pg = playground
    shop = await make_shop(pg, "pl", winback_enabled=True)
    olena = await link(pg, shop, "pl")
    await place_order(pg, shop, olena, 9001)
    await refresh(pg)
    pg.advance(timedelta(days=140))
    async with transaction(pg.services.sessions) as session:  # `nudge customer refresh`
        moved = await refresh_metrics(session=session, shop_id=shop.id, now=pg.clock.now())
    assert moved.stage_changes == 1
    assert await rows(pg, olena.id, WINBACK_KIND) == []
    pg.advance(timedelta(hours=6))
    await refresh(pg)
    await refresh(pg)
    await pg.dispatch()
    assert [m.text for m in _winbacks(olena, "pl")] == [f"{HELLO['pl']} {MISS_YOU['pl']}"]

"""Campaigns end to end against the sandbox: create, send, click, order and report, per locale."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from campaign_helpers import (
    CATALOG,
    LOCALES,
    NOT_INTERESTED,
    follow,
    spring_campaign,
)

from bot import campaign_service
from bot.campaigns import CampaignError
from bot.models import OutboxState


def _identity(t: dict) -> None:
    parts = t["sent"] + t["skipped"] + t["blocked"] + t["failed"] + t["holdout"] + t["pending"]
    assert t["audience"] == parts, t


@pytest.mark.parametrize("locale", LOCALES)
async def test_a_campaign_goes_out_is_clicked_and_earns_its_order(front, locale):
    pg = front.pg
    people = await front.crowd(3, locale)
    await front.codes("spring", 10)
    campaign = await front.create(spring_campaign())
    shown = await campaign_service.preview(
        pg.services.sessions, campaign_id=campaign.id, now=pg.clock.now()
    )
    mine = next(m for m in shown["messages"] if m["locale"] == locale)
    assert mine["text_locale"] == locale and "<code>SPRING-SAMPLE</code>" in mine["text"]
    assert shown["audience"]["locales"] == {locale: 3} and shown["missing_translations"] == {}
    fanned = await front.send(campaign)
    assert (fanned.recipients, fanned.holdout, fanned.scheduled) == (3, 0, 3)

    assert (await pg.dispatch())["sent"] == 3
    first = people[0].chat.last_message()
    code = first.text.split()[-1]
    assert first.text.startswith(f"{people[0].profile.first_name}, ")
    assert code.startswith("SPRING-")
    assert [row[0][0] for row in first.buttons] == [
        "Sale",
        CATALOG[locale],
        NOT_INTERESTED[locale],
    ]
    assert len({p.chat.last_message().text.split()[-1] for p in people}) == 3  # one code each

    tap = await people[0].chat.tap("Sale")
    assert await follow(tap.url) == (302, "https://kvitka.example/sale")
    tap = await people[0].chat.tap(CATALOG[locale])
    assert await follow(tap.url) == (302, "https://kvitka.example/catalog")
    pg.advance(timedelta(hours=2))
    await front.order(people[0], order_id=77001, total="1200.00")

    report = await front.report(campaign)
    assert report["audience"] == 3 and report["sent"] == 3 and report["clicked"] == 1
    assert (report["orders"], report["revenue"]) == (1, "1200.00")
    assert report["locales"][locale]["sent"] == 3
    assert report["variants"]["A"]["orders"] == 1
    _identity(report)


async def test_not_interested_leaves_every_later_campaign_on_that_topic(front):
    pg = front.pg
    (olena, _taras) = await front.crowd(2, "uk")
    await front.codes("spring", 10)
    first = await front.create(spring_campaign())
    await front.send(first)
    await pg.dispatch()
    await olena.chat.tap(NOT_INTERESTED["uk"])
    await pg.settle()

    pg.advance(timedelta(days=2))  # past the frequency cap
    second = await front.create(spring_campaign(name="Summer shoes", topic="shoes"))
    await front.send(second)
    await pg.dispatch()
    pg.advance(timedelta(days=2))
    other_topic = await front.create(spring_campaign(name="Bags", topic="bags"))
    await front.send(other_topic)
    await pg.dispatch()

    shoes = await front.report(second)
    assert shoes["skipped_by_reason"] == {"excluded": 1} and shoes["sent"] == 1
    assert (await front.report(first))["not_interested"] == 1
    assert (await front.report(other_topic))["sent"] == 2  # "shoes" only, not every promo
    _identity(shoes)


async def test_a_pool_with_too_few_codes_refuses_to_start_unless_told_to_skip(front):
    pg = front.pg
    await front.crowd(3, "pl")
    await front.codes("spring", 2)
    campaign = await front.create(spring_campaign())
    with pytest.raises(CampaignError, match="pool 'spring' has 2 codes for 3 recipients"):
        await front.send(campaign)
    assert await front.rows(campaign) == []

    lenient = await front.create(spring_campaign(skip_without_code=True))
    await front.send(lenient)
    await pg.dispatch()
    report = await front.report(lenient)
    assert report["sent"] == 2 and report["skipped_by_reason"] == {"no_codes": 1}
    _identity(report)


async def test_a_locale_without_text_gets_the_shops_default(front):
    pg = front.pg
    (ivan,) = await front.crowd(1, "ru")
    messages = {"uk": {"text": "Весняний розпродаж"}, "en": {"text": "Spring sale"}}
    campaign = await front.create(spring_campaign(pool=None, messages=messages))
    await front.send(campaign)
    await pg.dispatch()
    assert ivan.chat.last_message().text == "Весняний розпродаж"  # the shop's default: uk
    assert ivan.chat.last_message().buttons[-1][0][0] == NOT_INTERESTED["uk"]


async def test_pause_holds_what_is_left_resume_sends_it_cancel_stops_it(front):
    pg = front.pg
    await front.crowd(12, "en")
    await front.codes("spring", 20)
    # 1 message a second: at any moment most of the campaign is still waiting
    campaign = await front.create(spring_campaign(rate_per_second=1))
    await front.send(campaign)
    pg.advance(timedelta(seconds=2.5))
    assert (await pg.dispatch())["sent"] == 3

    held = await front.act("pause", campaign)
    assert held == 9
    pg.advance(timedelta(minutes=5))
    assert (await pg.dispatch())["sent"] == 0
    report = await front.report(campaign)
    assert (report["sent"], report["pending"], report["status"]) == (3, 9, "paused")

    assert await front.act("resume", campaign) == 9
    pg.advance(timedelta(seconds=3.2))  # due times moved by the pause: 3 more are due
    assert (await pg.dispatch())["sent"] == 3

    assert await front.act("cancel", campaign) == 6
    pg.advance(timedelta(hours=1))
    assert (await pg.dispatch())["sent"] == 0
    report = await front.report(campaign)
    assert report["sent"] == 6 and report["skipped_by_reason"] == {"campaign_cancelled": 6}
    _identity(report)
    with pytest.raises(CampaignError):
        await front.act("resume", campaign)


async def test_a_rerun_moves_no_one_and_sends_nothing_twice(front):
    pg = front.pg
    await front.crowd(20, "uk")
    campaign = await front.create(
        spring_campaign(
            pool=None,
            messages=None,
            holdout_percent=20,
            variants=[
                {"name": "A", "weight": 1, "messages": {"uk": {"text": "А"}}},
                {"name": "B", "weight": 1, "messages": {"uk": {"text": "Б"}}},
            ],
        )
    )
    await front.send(campaign)
    before = {(r.customer_id, r.variant) for r in await front.rows(campaign)}
    async with pg.services.sessions() as session:  # a crash: start the fan-out over
        from bot.models import Campaign

        found = await session.get(Campaign, campaign.id)
        found.status, found.cursor = "sending", 0
        session.add(found)
        await session.commit()
    again = await front.send(campaign)
    assert again.scheduled == 0
    assert {(r.customer_id, r.variant) for r in await front.rows(campaign)} == before
    await pg.dispatch()
    report = await front.report(campaign)
    assert report["sent"] == len(before) and report["audience"] == 20
    assert report["holdout"] == 20 - len(before)
    _identity(report)


async def test_the_follow_up_reaches_only_those_who_did_not_click(front):
    from bot.flows.campaign import plan_all_follow_ups

    pg = front.pg
    clicker, silent, buyer = await front.crowd(3, "uk")
    await front.codes("spring", 5)
    await front.codes("last", 5)
    campaign = await front.create(
        spring_campaign(
            follow_up={
                "after": "24h",
                "pool": "last",
                "messages": {"uk": {"text": "Остання нагода: {code}"}},
            }
        )
    )
    await front.send(campaign)
    await pg.dispatch()
    await follow((await clicker.chat.tap("Sale")).url)
    pg.advance(timedelta(hours=3))
    await front.order(buyer, order_id=88001, total="500.00")

    pg.advance(timedelta(hours=12))
    assert await plan_all_follow_ups(pg.services) == 0  # not yet 24 hours
    pg.advance(timedelta(hours=10))
    assert await plan_all_follow_ups(pg.services) == 2  # the clicker is left out
    assert await plan_all_follow_ups(pg.services) == 0  # planned once
    await pg.dispatch()
    assert silent.chat.last_message().text.startswith("Остання нагода: LAST-")
    assert not clicker.chat.last_message().text.startswith("Остання")
    assert not buyer.chat.last_message().text.startswith("Остання")  # ordered meanwhile

    report = await front.report(campaign)
    step = report["steps"]["2"]
    assert step["sent"] == 1 and step["skipped_by_reason"] == {"ordered": 1}
    _identity(report)


async def test_local_time_sends_at_ten_in_each_customers_zone(front):
    pg = front.pg  # the clock: 10:00 UTC (12:00 in Kyiv, 05:00 in New York)
    (kyiv,) = await front.crowd(1, "uk", timezone="Europe/Kyiv")
    (new_york,) = await front.crowd(1, "en", timezone="America/New_York")
    campaign = await front.create(spring_campaign(pool=None, messages={"en": {"text": "Hi"}}))
    await front.send(campaign, local_time="10:00")
    due = {r.customer_id: r.due_at for r in await front.rows(campaign)}
    start = pg.clock.now()
    assert due[new_york.profile.id] - start == timedelta(hours=5)  # 10:00 EST = 15:00 UTC
    assert due[kyiv.profile.id] - start == timedelta(hours=22)  # tomorrow 10:00 Kyiv


async def test_detractors_and_blocked_chats_are_skipped_with_their_reason(front):
    pg = front.pg
    (fan, critic, gone) = await front.crowd(3, "uk")
    async with pg.services.sessions() as session:
        from bot.models import Customer

        row = await session.get(Customer, critic.profile.id)
        row.nps_score = 3
        session.add(row)
        await session.commit()
    await gone.chat.block()
    campaign = await front.create(spring_campaign(pool=None, messages={"uk": {"text": "Привіт"}}))
    await front.send(campaign)
    await pg.dispatch()
    report = await front.report(campaign)
    assert report["sent"] == 1 and report["blocked"] == 1
    assert report["skipped_by_reason"] == {"detractor": 1}
    _identity(report)
    states = {r.customer_id: r.state for r in await front.rows(campaign)}
    assert states[fan.profile.id] == OutboxState.SENT


async def test_at_a_moment_waits_until_then(front):
    from bot.campaigns import parse_moment

    pg = front.pg
    (olena,) = await front.crowd(1, "uk")
    campaign = await front.create(spring_campaign(pool=None, messages={"uk": {"text": "Завтра"}}))
    await front.send(campaign, at=parse_moment("2026-03-03T09:30:00+02:00"))
    assert [r.due_at.isoformat() for r in await front.rows(campaign)] == [
        "2026-03-03T07:30:00+00:00"
    ]
    assert (await pg.dispatch())["sent"] == 0
    pg.advance(timedelta(hours=21, minutes=30))
    assert (await pg.dispatch())["sent"] == 1
    assert olena.chat.last_message().text == "Завтра"


async def test_a_pause_during_the_fan_out_holds_every_row_and_resume_finishes_it(front):
    from bot.store import campaigns as store

    pg = front.pg
    await front.crowd(30, "uk")
    campaign = await front.create(spring_campaign(pool=None, messages={"uk": {"text": "Весна"}}))
    async with pg.services.sessions() as session:
        found = await store.get_campaign(session=session, shop_id=None, campaign_id=campaign.id)
        await store.start(session=session, shop=front.shop, campaign=found, now=pg.clock.now())
        await session.commit()
    paused = []

    def pause_after_the_first_chunk(_count: int) -> None:
        if not paused:
            paused.append(asyncio.ensure_future(front.act("pause", campaign)))

    async def fan() -> store.FanOut:
        done = store.FanOut()
        first = True
        while True:  # the CLI's loop, pausing once a chunk is in
            written = await store.fan_out(
                sessions=pg.services.sessions,
                shop_id=front.shop.id,
                campaign_id=campaign.id,
                now=pg.clock.now,
                chunk=7,
                progress=pause_after_the_first_chunk if first else None,
            )
            first = False
            done.scheduled += written.scheduled
            if written.stopped or not paused:
                done.stopped = written.stopped
                return done
            await paused[0]

    done = await fan()
    await asyncio.gather(*paused)
    assert done.stopped == "paused"
    rows = await front.rows(campaign)
    assert rows and {r.state for r in rows} == {OutboxState.HELD}  # not one slipped through
    assert (await pg.dispatch())["sent"] == 0

    await front.act("resume", campaign)
    finished = await store.fan_out(
        sessions=pg.services.sessions,
        shop_id=front.shop.id,
        campaign_id=campaign.id,
        now=pg.clock.now,
        chunk=7,
    )
    assert finished.stopped is None
    assert (await pg.dispatch())["sent"] == 30
    report = await front.report(campaign)
    assert report["sent"] == report["audience"] == 30


async def test_a_customer_talking_to_support_is_skipped_until_it_is_closed(front):
    pg = front.pg
    asking, quiet = await front.crowd(2, "uk")
    await asking.chat.send("Де моє замовлення?")  # opens a support conversation
    await pg.settle()
    campaign = await front.create(spring_campaign(pool=None, messages={"uk": {"text": "Весна"}}))
    await front.send(campaign)
    await pg.dispatch()
    report = await front.report(campaign)
    assert report["sent"] == 1 and report["skipped_by_reason"] == {"support_open": 1}
    assert quiet.chat.last_message().text == "Весна"

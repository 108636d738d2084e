"""The Courier against the Telegram sandbox: what customers get, and what the outbox records."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from delivery_support import TOKEN, QuickBotPool, Shopfront

from bot.db import transaction
from bot.delivery.channels.telegram import TelegramChannel
from bot.delivery.limiter import SlidingWindowLimiter
from bot.i18n import _
from bot.messages.render import Button, Rendered, SkipMessage, register_kind
from bot.models import Consent, Exclusion, Lane, OutboxState
from bot.sandbox import Sandbox
from bot.store import outbox as store

# ----------------------------------------------------------------------- kinds under test


def _cart_guard(ctx: Any) -> str | None:
    return "cart_closed" if ctx.payload.get("closed") else None


@register_kind("test_cart_reminder", guard=_cart_guard)
def _cart_reminder(ctx: Any) -> Rendered:
    return Rendered(
        text=_("Share phone number"),
        buttons=[[Button(text="Not interested", callback_data=f"ni:{ctx.outbox.id}")]],
    )


@register_kind("test_code_offer")
async def _code_offer(ctx: Any) -> Rendered:
    raise SkipMessage("no_codes")


@register_kind("test_broken")
def _broken(ctx: Any) -> Rendered:
    raise RuntimeError("template bug")


# ---------------------------------------------------------------------------- sending


async def test_a_message_arrives_with_its_buttons_and_photo(shopfront, make_courier):
    customer, person = await shopfront.customer(locale="uk")
    row = await shopfront.schedule(customer, kind="test_cart_reminder", lane=Lane.REMINDER)
    photo = await shopfront.schedule(
        customer,
        payload={
            "text": "New <arrivals> & more",
            "photo_url": "https://shop.example.com/a.jpg",
            "buttons": [[{"text": "Open catalog", "url": "https://shop.example.com/"}]],
        },
    )
    counts = await make_courier().drain()
    assert (counts.claimed, counts.sent) == (2, 2)
    first, second = person.bot_messages()
    assert first.photo and first.caption == "New <arrivals> & more"  # escaped, shown as is
    assert first.buttons == [[("Open catalog", "https://shop.example.com/")]]
    assert second.text == "Поділитися номером телефону"  # rendered in the customer's locale
    assert second.buttons == [[("Not interested", f"ni:{row.id}")]]
    for outbox in (row, photo):
        sent = await shopfront.row(outbox)
        assert sent.state == "sent" and sent.sent_at == shopfront.clock.now()
    assert (await shopfront.row(row)).telegram_message_id == second.message_id


async def test_guards_and_renders_can_skip_and_a_broken_render_fails(shopfront, make_courier):
    customer, person = await shopfront.customer()
    closed = await shopfront.schedule(
        customer, kind="test_cart_reminder", payload={"closed": True}, lane=Lane.REMINDER
    )
    no_codes = await shopfront.schedule(customer, kind="test_code_offer", payload={})
    broken = await shopfront.schedule(customer, kind="test_broken", payload={})
    unknown = await shopfront.schedule(customer, kind="no_such_kind", payload={})
    counts = await make_courier().run_once()
    assert counts.skip_reasons == {"cart_closed": 1, "no_codes": 1}
    assert counts.failed == 2
    assert person.transcript() == []
    assert (await shopfront.row(closed)).skip_reason == "cart_closed"
    assert (await shopfront.row(no_codes)).skip_reason == "no_codes"
    assert "template bug" in (await shopfront.row(broken)).last_error
    assert "no_such_kind" in (await shopfront.row(unknown)).last_error


# ------------------------------------------------------------------------- suppression


async def test_each_suppression_rule_keeps_the_message_from_the_customer(shopfront, make_courier):
    now = shopfront.clock.now()
    eligible, eligible_chat = await shopfront.customer("Eligible")
    unknown, unknown_chat = await shopfront.customer("NoConsent", consent=Consent.UNKNOWN)
    out, out_chat = await shopfront.customer("OptedOut", consent=Consent.OPTED_OUT)
    gone, gone_chat = await shopfront.customer("Blocked", unreachable_since=now)
    bored, bored_chat = await shopfront.customer("NotInterested")
    paused, paused_chat = await shopfront.customer(
        "Paused", promos_paused_until=now + timedelta(days=7)
    )
    upset, upset_chat = await shopfront.customer("Upset", needs_follow_up=True)
    busy, busy_chat = await shopfront.customer("Capped")
    nochat, _ = await shopfront.customer("NoChat", in_telegram=False)
    async with transaction(shopfront.sessions) as session:
        session.add(
            Exclusion(
                shop_id=shopfront.shop.id, customer_id=bored.id, topic="shoes", created_at=now
            )
        )
        nochat.telegram_chat_id = None
        session.add(nochat)
    earlier = await shopfront.schedule(busy, "Yesterday's sale", lane=Lane.PROMO)
    courier = make_courier()
    assert (await courier.run_once()).sent == 1
    shopfront.clock.advance(timedelta(hours=8))  # 20:00 in Kyiv, before quiet hours
    people = [eligible, unknown, out, gone, bored, paused, upset, busy, nochat]
    rows = {
        p.first_name: await shopfront.schedule(p, "Spring sale", lane=Lane.PROMO, topic="shoes")
        for p in people
    }
    extra = {
        "Paused": await shopfront.schedule(paused, "Your order shipped"),
        "Upset": await shopfront.schedule(upset, "Cart reminder", lane=Lane.REMINDER),
        "Capped": await shopfront.schedule(busy, "Cart reminder", lane=Lane.REMINDER),
        "NotInterested": await shopfront.schedule(bored, "Hats!", lane=Lane.PROMO, topic="hats"),
    }
    counts = await courier.run_once()
    reasons = {name: (await shopfront.row(row)).skip_reason for name, row in rows.items()}
    assert reasons == {
        "Eligible": None,
        "NoConsent": "no_consent",
        "OptedOut": "unsubscribed",
        "Blocked": "unreachable",
        "NotInterested": "excluded",
        "Paused": "paused",
        "Upset": "needs_follow_up",
        "Capped": "frequency_cap",
        "NoChat": "no_chat",
    }
    assert counts.sent == 5 and counts.skipped == 8
    assert [m.text for m in eligible_chat.bot_messages()] == ["Spring sale"]
    for chat in (unknown_chat, out_chat, gone_chat):
        assert chat.bot_messages() == []
    assert [m.text for m in bored_chat.bot_messages()] == ["Hats!"]
    assert [m.text for m in paused_chat.bot_messages()] == ["Your order shipped"]
    assert [m.text for m in upset_chat.bot_messages()] == ["Cart reminder"]
    assert [m.text for m in busy_chat.bot_messages()] == ["Yesterday's sale", "Cart reminder"]
    assert [(await shopfront.row(r)).state for r in extra.values()] == ["sent"] * 4
    assert (await shopfront.row(earlier)).state == "sent"


async def test_the_cap_applies_within_a_batch_and_rolls_with_the_window(shopfront, make_courier):
    customer, person = await shopfront.customer()
    await shopfront.set(frequency_cap=2, frequency_window="8h")
    for n in range(3):
        await shopfront.schedule(customer, f"Offer {n}", lane=Lane.PROMO)
    courier = make_courier()
    counts = await courier.drain()
    assert (counts.sent, counts.skip_reasons) == (2, {"frequency_cap": 1})
    shopfront.clock.advance(timedelta(hours=7, minutes=59))
    await shopfront.schedule(customer, "Too soon", lane=Lane.PROMO)
    assert (await courier.run_once()).skip_reasons == {"frequency_cap": 1}
    shopfront.clock.advance(timedelta(minutes=1))
    await shopfront.schedule(customer, "Next day", lane=Lane.PROMO)
    assert (await courier.run_once()).sent == 1
    assert [m.text for m in person.bot_messages()] == ["Offer 0", "Offer 1", "Next day"]


async def test_quiet_hours_postpone_across_midnight_in_each_customers_zone(
    shopfront, make_courier
):
    clock = shopfront.clock
    clock.set(datetime(2026, 3, 2, 19, 30, tzinfo=UTC))  # 21:30 in Kyiv, the shop's zone
    kyiv, kyiv_chat = await shopfront.customer("Kyiv")
    tokyo, tokyo_chat = await shopfront.customer("Tokyo", timezone="Asia/Tokyo")  # 04:30
    ny, ny_chat = await shopfront.customer("NewYork", timezone="America/New_York")  # 14:30
    promo = await shopfront.schedule(kyiv, "Sale", lane=Lane.PROMO)
    reminder = await shopfront.schedule(tokyo, "Your cart", lane=Lane.REMINDER)
    await shopfront.schedule(ny, "Sale", lane=Lane.PROMO)
    await shopfront.schedule(kyiv, "Order shipped", lane=Lane.TRANSACTIONAL)
    courier = make_courier()
    counts = await courier.drain()
    assert (counts.sent, counts.postponed) == (2, 2)
    assert [m.text for m in kyiv_chat.bot_messages()] == ["Order shipped"]
    assert [m.text for m in ny_chat.bot_messages()] == ["Sale"]
    waiting = await shopfront.row(promo)
    assert waiting.state == "scheduled" and waiting.attempts == 0
    assert waiting.next_attempt_at == datetime(2026, 3, 3, 7, 0, tzinfo=UTC)  # 09:00 Kyiv
    assert (await shopfront.row(reminder)).next_attempt_at == datetime(
        2026, 3, 3, 0, 0, tzinfo=UTC
    )

    clock.set(datetime(2026, 3, 2, 23, 59, tzinfo=UTC))
    assert (await courier.drain()).claimed == 0
    clock.set(datetime(2026, 3, 3, 0, 0, tzinfo=UTC))  # 09:00 in Tokyo, 02:00 in Kyiv
    assert (await courier.drain()).sent == 1
    assert [m.text for m in tokyo_chat.bot_messages()] == ["Your cart"]
    assert kyiv_chat.bot_messages()[-1].text == "Order shipped"
    clock.set(datetime(2026, 3, 3, 7, 0, tzinfo=UTC))
    assert (await courier.drain()).sent == 1
    assert kyiv_chat.bot_messages()[-1].text == "Sale"
    sent = await shopfront.row(promo)
    assert (sent.state, sent.attempts, sent.due_at) == ("sent", 1, promo.due_at)


# ----------------------------------------------------------------------------- errors


async def test_a_customer_who_blocked_the_bot_is_marked_unreachable(shopfront, make_courier):
    olena, olena_chat = await shopfront.customer("Olena")
    taras, taras_chat = await shopfront.customer("Taras")
    await olena_chat.block()
    first = await shopfront.schedule(olena, "Order shipped")
    second = await shopfront.schedule(olena, "Order delivered")
    tomorrow = await shopfront.schedule(
        olena, "Review?", due_at=shopfront.clock.now() + timedelta(days=1)
    )
    await shopfront.schedule(taras, "Order shipped")
    courier = make_courier()
    counts = await courier.run_once()
    assert (counts.sent, counts.blocked, counts.skip_reasons) == (1, 1, {"unreachable": 1})
    row = await shopfront.row(first)
    assert row.state == "blocked" and "Forbidden" in row.last_error and TOKEN not in row.last_error
    assert (await shopfront.row(second)).skip_reason == "unreachable"
    assert (await shopfront.row(tomorrow)).skip_reason == "unreachable"
    assert (await shopfront.reload(olena)).unreachable_since == shopfront.clock.now()
    assert [m.text for m in taras_chat.bot_messages()] == ["Order shipped"]

    await shopfront.schedule(olena, "Still there?")
    assert (await courier.run_once()).skip_reasons == {"unreachable": 1}

    await olena_chat.start()  # the /start handler calls mark_reachable
    async with transaction(shopfront.sessions) as session:
        await store.mark_reachable(
            session=session,
            shop_id=shopfront.shop.id,
            customer_id=olena.id,
            now=shopfront.clock.now(),
        )
    await shopfront.schedule(olena, "Welcome back")
    assert (await courier.run_once()).sent == 1
    assert olena_chat.bot_messages()[-1].text == "Welcome back"


async def test_chat_not_found_is_unreachable_other_bad_requests_fail(shopfront, make_courier):
    ghost, _ = await shopfront.customer("Ghost", in_telegram=False)
    olena, olena_chat = await shopfront.customer("Olena")
    lost = await shopfront.schedule(ghost, "Hi")
    too_long = await shopfront.schedule(olena, "x" * 5000)
    counts = await make_courier().run_once()
    assert (counts.blocked, counts.failed) == (1, 1)
    assert (await shopfront.reload(ghost)).unreachable_since is not None
    row = await shopfront.row(too_long)
    assert row.state == "failed" and "message is too long" in row.last_error
    assert (await shopfront.reload(olena)).unreachable_since is None
    assert (await shopfront.row(lost)).state == "blocked"
    assert olena_chat.bot_messages() == []


async def test_server_errors_are_retried_with_backoff(shopfront, sandbox, make_courier):
    customer, person = await shopfront.customer()
    row = await shopfront.schedule(customer, "Order shipped")
    sandbox.faults.add(kind="server_error", method="sendMessage", count=2, status=502)
    courier = make_courier(retry_backoff=timedelta(seconds=10))
    assert (await courier.run_once()).retried == 1
    waiting = await shopfront.row(row)
    assert (waiting.state, waiting.attempts) == ("scheduled", 1)
    assert waiting.next_attempt_at == shopfront.clock.now() + timedelta(seconds=10)
    assert "Bad Gateway" in waiting.last_error
    assert (await courier.run_once()).claimed == 0  # not before its time
    shopfront.clock.advance(10)
    assert (await courier.run_once()).retried == 1
    shopfront.clock.advance(19)
    assert (await courier.run_once()).claimed == 0  # backoff doubled: 20 s
    shopfront.clock.advance(1)
    assert (await courier.run_once()).sent == 1
    sent = await shopfront.row(row)
    assert (sent.state, sent.attempts, sent.last_error) == ("sent", 3, None)
    assert [m.text for m in person.bot_messages()] == ["Order shipped"]


async def test_a_message_fails_after_max_attempts(shopfront, sandbox, make_courier):
    customer, person = await shopfront.customer()
    row = await shopfront.schedule(customer, "Order shipped")
    sandbox.faults.add(kind="server_error", method="sendMessage", count=None, status=500)
    courier = make_courier(max_attempts=2, retry_backoff=timedelta(seconds=1))
    await courier.run_once()
    shopfront.clock.advance(1)
    assert (await courier.run_once()).failed == 1
    failed = await shopfront.row(row)
    assert (failed.state, failed.attempts) == ("failed", 2)
    assert person.bot_messages() == []


async def test_timeouts_are_retried(shopfront, sandbox, settings, clock, database):
    from bot.delivery.courier import Courier

    customer, person = await shopfront.customer()
    # A timed-out request may have arrived: only an at-least-once row is sent again (#12; an
    # ordinary row becomes unknown: tests/delivery/test_fleet_dispatch.py).
    row = await shopfront.schedule(customer, "Order shipped", at_least_once=True)
    sandbox.faults.add(kind="slow", method="sendMessage", count=1, delay=1.0)
    pool = QuickBotPool(sandbox.base_url, timeout=0.3)
    try:
        courier = Courier(
            sessions=database.sessions,
            channel=TelegramChannel(pool, SlidingWindowLimiter(25, per_chat=None)),
            clock=clock,
            settings=settings,
            retry_backoff=timedelta(seconds=1),
        )
        assert (await courier.run_once()).retried == 1
        assert "timeout" in (await shopfront.row(row)).last_error.lower()
        clock.advance(1)
        assert (await courier.run_once()).sent == 1
    finally:
        await pool.close()
    assert [m.text for m in person.bot_messages()] == ["Order shipped"]


# ---------------------------------------------------------------------- flood control


def request_log(sb: Sandbox) -> list[tuple[float, float, str, int]]:
    """Record (arrival, answered, method, status) of every Bot API request the sandbox gets."""
    log: list[tuple[float, float, str, int]] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        arrived = time.monotonic()
        response = await handler(request)
        method = request.match_info.get("method", "")
        log.append((arrived, time.monotonic(), method, response.status))
        return response

    sb.app.middlewares.append(record)
    return log


async def test_a_429_storm_pauses_the_bot_and_every_message_still_arrives_once(
    database, clock, settings
):
    from bot.delivery.courier import Courier

    sb = Sandbox()
    log = request_log(sb)  # the sandbox keeps counts; the timings need a request log
    await sb.start()
    pool = QuickBotPool(sb.base_url)
    try:
        sb.add_bot(TOKEN, username="kvitka_bot")
        shopfront = await _shopfront(database, sb, clock, Shopfront)
        people = await shopfront.crowd(12)
        await shopfront.broadcast(people, "Spring sale")
        sb.faults.add(kind="retry_after", method="sendMessage", count=15, retry_after=1)
        courier = Courier(
            sessions=database.sessions,
            channel=TelegramChannel(pool, SlidingWindowLimiter(25)),
            clock=clock,
            settings=settings,
        )
        counts = await courier.drain()
    finally:
        await pool.close()
        await sb.stop()
    assert counts.sent == 12
    for person in people:
        assert [m.text for m in shopfront.person(person).bot_messages()] == ["Spring sale"]
    sends = [entry for entry in log if entry[2] == "sendMessage"]
    refused = [entry for entry in sends if entry[3] == 429]
    assert len(refused) == 15 and len(sends) == 12 + 15  # each refusal retried once, no more
    for answered in (entry[1] for entry in refused):
        during = [s for s in sends if answered + 0.1 < s[0] < answered + 1.0]
        assert during == [], "a request reached Telegram while the bot was paused"
    rounds = sorted({round(arrived, 1) for arrived, *_ in sends})
    assert len(rounds) >= 3 and rounds[-1] - rounds[0] >= 2.0


async def _shopfront(database, sb, clock, cls):
    from bot.store.shops import create_shop

    async with transaction(database.sessions) as session:
        shop = await create_shop(
            session=session,
            name="Kvitka",
            platform="shopify",
            bot_token=TOKEN,
            now=clock.now(),
        )
    return cls(database, sb, clock, shop)


async def _broadcast_within_limits(shopfront, sandbox, make_courier, count: int) -> None:
    people = await shopfront.crowd(count)
    await shopfront.broadcast(people, "Spring sale")
    sandbox.reset_stats(TOKEN)
    started = time.monotonic()
    counts = await make_courier(rate=25, per_chat=1.0).drain()
    elapsed = time.monotonic() - started
    stats = sandbox.stats(TOKEN)
    assert counts.sent == count
    assert stats.rate_limited == 0 and stats.errors.get(429, 0) == 0
    assert stats.max_sends_in_1s <= 25
    assert stats.sends == count
    assert elapsed >= (count - 25) / 25  # it really waited for the limit


async def test_a_broadcast_stays_within_25_per_second(shopfront, sandbox, make_courier):
    await _broadcast_within_limits(shopfront, sandbox, make_courier, 150)


@pytest.mark.skipif(
    os.environ.get("NUDGE_SLOW_TESTS") != "1", reason="80 s per backend; NUDGE_SLOW_TESTS=1"
)
async def test_a_2000_recipient_broadcast_stays_within_25_per_second(
    shopfront, sandbox, make_courier
):
    await _broadcast_within_limits(shopfront, sandbox, make_courier, 2000)


# ---------------------------------------------------------------------- crash recovery


async def test_rows_left_sending_by_a_dead_dispatcher_are_unknown_not_resent(
    shopfront, make_courier
):
    customer, person = await shopfront.customer()
    promo = await shopfront.schedule(customer, "Sale", lane=Lane.PROMO)
    receipt = await shopfront.schedule(customer, "Receipt", at_least_once=True)
    async with transaction(shopfront.sessions) as session:  # a dispatcher claims, then dies
        await store.claim_due(session=session, now=shopfront.clock.now(), limit=10)
    courier = make_courier(lease=timedelta(minutes=5))
    await courier.recover()
    assert (await courier.drain()).claimed == 0  # within the lease: maybe still sending
    shopfront.clock.advance(timedelta(minutes=5, seconds=1))
    recovered = await courier.recover()
    assert (recovered.unknown, recovered.requeued) == (1, 1)
    assert (await courier.drain()).sent == 1
    assert (await shopfront.row(promo)).state == OutboxState.UNKNOWN
    assert (await shopfront.row(receipt)).state == OutboxState.SENT
    assert [m.text for m in person.bot_messages()] == ["Receipt"]
    async with shopfront.sessions() as session:
        stats = await store.outbox_stats(session=session, now=shopfront.clock.now())
    assert stats["states"]["unknown"] == 1


async def test_a_batch_that_cannot_be_prepared_is_handed_back(
    shopfront, make_courier, monkeypatch
):
    customer, person = await shopfront.customer()
    row = await shopfront.schedule(customer, "Order shipped")

    async def database_hiccup(**kwargs: Any) -> None:
        raise ConnectionError("database went away")

    monkeypatch.setattr(store, "customers_by_id", database_hiccup)
    courier = make_courier()
    with pytest.raises(ConnectionError):
        await courier.run_once()
    back = await shopfront.row(row)
    assert (back.state, back.attempts) == ("scheduled", 0)
    monkeypatch.undo()
    assert (await courier.run_once()).sent == 1
    assert [m.text for m in person.bot_messages()] == ["Order shipped"]

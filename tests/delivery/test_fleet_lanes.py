"""Delivery at scale (#12): each bot in its own lane, at its own rate, pipelined, hung-proof."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from lanes_support import eventually, most_in_any_window, storefront
from sqlalchemy import event

from bot.delivery.channels.telegram import TelegramChannel
from bot.delivery.limiter import SlidingWindowLimiter
from bot.models import Lane, OutboxState
from bot.store import outbox as store

BIG, SMALL = "710001:big-shop-bot", "710002:small-shop-bot"


async def running(courier: Any) -> tuple[asyncio.Event, asyncio.Task[None]]:
    """Start the Courier's lanes in the background."""
    stop = asyncio.Event()
    return stop, asyncio.create_task(courier.run_forever(stop))


async def test_two_campaigns_go_out_side_by_side_each_within_its_rate_at_the_receiver(
    database, sandbox, clock, make_courier
):
    first = await storefront(database, sandbox, clock, BIG, "First")
    second = await storefront(database, sandbox, clock, SMALL, "Second")
    for shop in (first, second):
        await shop.send_each(await shop.crowd(120), "Spring sale")
    courier = make_courier(rate=25)
    stop, task = await running(courier)
    try:
        await eventually(lambda: sandbox.stats(first.token).sends >= 120, what="first done")
        second_meanwhile = sandbox.stats(second.token).sends
        await eventually(lambda: sandbox.stats(second.token).sends >= 120, what="second done")
    finally:
        stop.set()
        await task
    # One lane did not wait for the other: they went out together, not one after the other.
    assert second_meanwhile >= 90
    for shop in (first, second):
        stats = sandbox.stats(shop.token)
        assert stats.sends == 120 and stats.errors.get(429, 0) == 0
        # every request that arrived, refused or not, in any rolling second at the receiver
        assert stats.max_arrivals_in_1s <= 25
        assert most_in_any_window([t for t, _ in shop.arrivals()]) <= 25
        assert await shop.states() == {"sent": 120}
        assert all(shop.received(p) == ["Spring sale"] for p in shop.people)


async def test_a_backlog_cannot_hold_up_another_shops_reminder(
    database, sandbox, clock, make_courier
):
    big = await storefront(database, sandbox, clock, BIG, "Big")
    small = await storefront(database, sandbox, clock, SMALL, "Small")
    await big.send_each(await big.crowd(300), "Spring sale")
    [olena] = await small.crowd(1)
    courier = make_courier(rate=25)
    stop, task = await running(courier)
    try:
        await eventually(lambda: sandbox.stats(BIG).sends >= 10, what="the campaign started")
        await small.send_each([olena], "You left something in your cart", lane=Lane.REMINDER)
        before = sandbox.stats(BIG).sends
        await eventually(lambda: small.received(olena) != [], what="the reminder arrived")
        during = sandbox.stats(BIG).sends - before
    finally:
        stop.set()
        await task
    assert small.received(olena) == ["You left something in your cart"]
    # The reminder waited for at most a poll and a claim: a few seconds of the big bot's
    # sends (25/s), never the 300-message backlog (the big shop's own rate is the yardstick).
    assert during <= 100
    # Stopped with the backlog still there: what was claimed went out or was handed back.
    states = await big.states()
    assert set(states) == {"sent", "scheduled"} and states["sent"] + states["scheduled"] == 300


async def test_the_next_claim_is_made_before_the_current_batch_is_sent(
    database, sandbox, clock, make_courier, monkeypatch
):
    shop = await storefront(database, sandbox, clock, BIG, "Piped")
    await shop.send_each(await shop.crowd(130), "Spring sale")
    claim_due = store.claim_due
    claims: list[tuple[int, int, int]] = []  # (sends at the receiver when asked, limit, got)

    async def observed(**kwargs: Any) -> list[Any]:
        sends = sandbox.stats(shop.token).sends
        rows = await claim_due(**kwargs)
        claims.append((sends, kwargs["limit"], len(rows)))
        return rows

    monkeypatch.setattr(store, "claim_due", observed)
    courier = make_courier(rate=25)
    counts = await courier.drain()
    assert counts.sent == 130
    size = math.ceil(25 * courier.claim_seconds)  # what the bot sends in claim_seconds
    got = [n for _, _, n in claims if n]
    assert got == [size, size, 130 - 2 * size]  # each claim bounded by the bot's rate
    # The second and third claims were made while the batch before was still going out.
    assert 0 < claims[1][0] < size
    assert size < claims[2][0] < 2 * size


async def test_a_claim_takes_what_the_bot_sends_in_a_couple_of_seconds(
    database, sandbox, clock, make_courier
):
    shop = await storefront(database, sandbox, clock, BIG, "Slow")
    await shop.send_each(await shop.crowd(45), "Spring sale")
    courier = make_courier(rate=10)
    counts = await courier.drain()
    assert counts.sent == 45
    sizes = [n for shop_id, n, _ in courier.claims if n]
    assert sizes and max(sizes) == math.ceil(10 * courier.claim_seconds) == 20
    assert sum(sizes) == 45


async def test_a_hung_request_costs_its_own_row_which_becomes_unknown(
    database, sandbox, clock, bots, make_courier
):
    shop = await storefront(database, sandbox, clock, BIG, "Hung")
    people = await shop.crowd(20)
    await shop.send_each(people, "Spring sale")
    stuck = people[3]
    sandbox.faults.add(
        kind="slow", method="sendMessage", chat_id=stuck.telegram_chat_id, count=1, delay=120
    )
    channel = TelegramChannel(bots, SlidingWindowLimiter(25, per_chat=None), request_timeout=5)
    courier = make_courier(channel=channel)
    draining = asyncio.create_task(courier.drain())
    try:
        # Every other row of the batch arrives while the hung request is still out.
        await eventually(lambda: sandbox.stats(shop.token).sends == 19, what="the others")
        assert sandbox.bot(shop.token).inflight == 1
    finally:
        counts = await draining
    assert (counts.sent, counts.unknown, counts.retried) == (19, 1, 0)
    async with database.sessions() as session:
        rows = await store.list_outbox(session=session, shop_id=shop.shop.id, customer_id=stuck.id)
    assert [row.state for row in rows] == [OutboxState.UNKNOWN]
    assert "timeout" in (rows[0].last_error or "").lower()
    assert shop.received(stuck) == []  # the sandbox dropped it with the connection
    assert (await courier.drain()).claimed == 0  # never sent again
    assert await shop.states() == {"sent": 19, "unknown": 1}


async def test_transactional_goes_first_within_a_bot(database, sandbox, clock, make_courier):
    shop = await storefront(database, sandbox, clock, BIG, "Urgent")
    people = await shop.crowd(61)
    await shop.send_each(people[:60], "Spring sale")
    await shop.send_each(people[60:], "Your order shipped", lane=Lane.TRANSACTIONAL, key="order")
    courier = make_courier(rate=25)
    assert (await courier.drain()).sent == 61
    arrivals = shop.arrivals()
    assert arrivals[0][1] == people[60].telegram_chat_id
    assert shop.received(people[60]) == ["Your order shipped"]


async def test_one_customers_messages_keep_their_order_across_batches(
    database, sandbox, clock, make_courier
):
    shop = await storefront(database, sandbox, clock, BIG, "Ordered")
    people = await shop.crowd(30)
    olena = people[0]
    for n in range(5):  # 5 messages to one customer, among 30 others, over several claims
        await shop.send_each([olena], f"Update {n}", lane=Lane.TRANSACTIONAL, key=f"u{n}")
    await shop.send_each(people, "Spring sale", lane=Lane.TRANSACTIONAL)
    courier = make_courier(rate=25, claim_seconds=0.2)  # claims of 5 rows
    assert (await courier.drain()).sent == 35
    assert shop.received(olena) == [*(f"Update {n}" for n in range(5)), "Spring sale"]


async def test_claims_and_send_time_lookups_are_scoped_by_shop_and_indexed(
    database, sandbox, clock, make_courier
):
    shop = await storefront(database, sandbox, clock, BIG, "Scoped")
    people = await shop.crowd(5)
    await shop.send_each(people, "Spring sale", topic="shoes")
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        statements.append((statement, parameters))

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert (await make_courier().drain()).sent == 5
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    reads = [
        (s, p)
        for s, p in statements
        if "FROM outbox" in s or "FROM exclusions" in s or "FROM shops" in s
    ]
    claims = [(s, p) for s, p in reads if s.lstrip().startswith("UPDATE outbox SET state")]
    promos = [s for s, _ in reads if "outbox.claimed_at" in s and s.lstrip().startswith("SELECT")]
    exclusions = [s for s, _ in reads if "FROM exclusions" in s]
    assert claims and promos and exclusions
    for statement in [s for s, _ in claims] + promos:
        assert "outbox.shop_id =" in statement, statement
    for statement in exclusions:
        assert "exclusions.shop_id =" in statement, statement
    # The claim is one exact range of the claim index, already in order (no sort).
    statement, parameters = claims[0]
    async with database.engine.connect() as conn:
        if database.engine.dialect.name == "postgresql":
            await conn.exec_driver_sql("SET enable_seqscan = off")
            plan = await conn.exec_driver_sql("EXPLAIN " + statement, parameters)
        else:
            plan = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        text = "\n".join(str(row) for row in plan.all())
        await conn.rollback()
    assert "ix_outbox_shop_claim" in text, text
    assert "Sort" not in text and "TEMP B-TREE" not in text, text

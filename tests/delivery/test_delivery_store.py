"""The outbox store: scheduling is idempotent, cancels are exact, claims are ordered and safe."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.db import transaction
from bot.models import Lane, OutboxState
from bot.store import outbox as store
from bot.store.shops import create_shop


async def test_scheduling_the_same_key_twice_is_a_no_op(shopfront):
    customer, _ = await shopfront.customer(in_telegram=False)
    first = await shopfront.schedule(customer, "one", key="cart:7:reminder:1")
    async with transaction(shopfront.sessions) as session:
        again = await store.schedule(
            session=session,
            shop_id=shopfront.shop.id,
            customer_id=customer.id,
            kind="text",
            dedupe_key="cart:7:reminder:1",
            due_at=shopfront.clock.now(),
            lane=Lane.REMINDER,
            payload={"text": "two"},
        )
    assert again is None
    row = await shopfront.row(first)
    assert row.payload == {"text": "one"}
    assert (row.lane, row.priority, row.state) == ("transactional", 0, "scheduled")


async def test_dedupe_keys_are_per_shop(shopfront):
    customer, _ = await shopfront.customer(in_telegram=False)
    await shopfront.schedule(customer, key="campaign:1")
    async with transaction(shopfront.sessions) as session:
        other = await create_shop(
            session=session, name="Other", platform="generic", now=shopfront.clock.now()
        )
        from bot.store.customers import add_customer

        theirs = await add_customer(session=session, shop_id=other.id, now=shopfront.clock.now())
        row = await store.schedule(
            session=session,
            shop_id=other.id,
            customer_id=theirs.id,
            kind="text",
            dedupe_key="campaign:1",
            due_at=shopfront.clock.now(),
            lane=Lane.PROMO,
        )
    assert row is not None


async def test_schedule_many_skips_existing_keys(shopfront):
    customer, _ = await shopfront.customer(in_telegram=False)
    await shopfront.schedule(customer, key="campaign:9:1")
    rows = [
        {
            "shop_id": shopfront.shop.id,
            "customer_id": customer.id,
            "kind": "text",
            "dedupe_key": f"campaign:9:{n}",
            "due_at": shopfront.clock.now(),
            "lane": Lane.PROMO,
            "payload": {"text": f"offer {n}"},
        }
        for n in range(1, 4)
    ]
    async with transaction(shopfront.sessions) as session:
        created = await store.schedule_many(session=session, rows=rows)
    assert created == 2


async def test_cancel_by_prefix_is_exact_and_spares_sent_rows(shopfront):
    customer, _ = await shopfront.customer(in_telegram=False)
    done = await shopfront.schedule(customer, key="cart:ab:reminder:0")
    upper = await shopfront.schedule(customer, key="cart:AB:reminder:1")
    gone1 = await shopfront.schedule(customer, key="cart:ab:reminder:1")
    gone2 = await shopfront.schedule(customer, key="cart:ab:reminder:2")
    underscore = await shopfront.schedule(customer, key="cart:a_:reminder:1")
    now = shopfront.clock.now()
    async with transaction(shopfront.sessions) as session:
        [claimed] = await store.claim_due(session=session, now=now, limit=1)
        assert claimed.id == done.id
        await store.record_outcomes(
            session=session,
            outcomes=[store.Outcome(done.id, OutboxState.SENT, message_id=1, sent_at=now)],
            now=now,
        )
    async with transaction(shopfront.sessions) as session:
        count = await store.cancel_by_prefix(
            session=session,
            shop_id=shopfront.shop.id,
            prefix="cart:ab:",
            now=now,
            reason="order_placed",
        )
        by_underscore = await store.cancel_by_prefix(
            session=session, shop_id=shopfront.shop.id, prefix="cart:a_:", now=now
        )
    assert (count, by_underscore) == (2, 1)
    for row in (gone1, gone2):
        fresh = await shopfront.row(row)
        assert (fresh.state, fresh.skip_reason) == ("cancelled", "order_placed")
    assert (await shopfront.row(done)).state == "sent"
    assert (await shopfront.row(upper)).state == "scheduled"
    assert (await shopfront.row(underscore)).state == "cancelled"


async def test_cancel_by_topic_touches_only_that_customer_and_topic(shopfront):
    olena, _ = await shopfront.customer(in_telegram=False)
    taras, _ = await shopfront.customer("Taras", in_telegram=False)
    a = await shopfront.schedule(olena, topic="category:shoes", lane=Lane.PROMO)
    b = await shopfront.schedule(olena, topic="category:hats", lane=Lane.PROMO)
    c = await shopfront.schedule(taras, topic="category:shoes", lane=Lane.PROMO)
    async with transaction(shopfront.sessions) as session:
        count = await store.cancel_by_topic(
            session=session,
            shop_id=shopfront.shop.id,
            customer_id=olena.id,
            topic="category:shoes",
            now=shopfront.clock.now(),
        )
    assert count == 1
    assert [(await shopfront.row(r)).state for r in (a, b, c)] == [
        "cancelled",
        "scheduled",
        "scheduled",
    ]


async def test_claims_go_by_lane_then_due_time_and_skip_what_is_not_due(shopfront):
    customer, _ = await shopfront.customer(in_telegram=False)
    now = shopfront.clock.now()
    promo_old = await shopfront.schedule(
        customer, lane=Lane.PROMO, due_at=now - timedelta(hours=2)
    )
    reminder = await shopfront.schedule(
        customer, lane=Lane.REMINDER, due_at=now - timedelta(minutes=1)
    )
    urgent = await shopfront.schedule(customer, lane=Lane.TRANSACTIONAL, due_at=now)
    promo_new = await shopfront.schedule(
        customer, lane=Lane.PROMO, due_at=now - timedelta(hours=1)
    )
    await shopfront.schedule(customer, lane=Lane.TRANSACTIONAL, due_at=now + timedelta(seconds=1))
    async with transaction(shopfront.sessions) as session:
        first = await store.claim_due(session=session, now=now, limit=3)
        second = await store.claim_due(session=session, now=now, limit=10)
    assert [r.id for r in first] == [urgent.id, reminder.id, promo_old.id]
    assert [r.id for r in second] == [promo_new.id]
    assert all(r.state == "sending" and r.attempts == 1 and r.claimed_at == now for r in first)


async def test_a_row_waiting_for_its_retry_is_not_claimed(shopfront):
    customer, _ = await shopfront.customer(in_telegram=False)
    row = await shopfront.schedule(customer)
    now = shopfront.clock.now()
    async with transaction(shopfront.sessions) as session:
        await store.claim_due(session=session, now=now, limit=10)
        await store.record_outcomes(
            session=session,
            outcomes=[
                store.Outcome(
                    row.id,
                    OutboxState.SCHEDULED,
                    error="TelegramServerError: Bad Gateway",
                    next_attempt_at=now + timedelta(seconds=30),
                )
            ],
            now=now,
        )
    async with transaction(shopfront.sessions) as session:
        assert await store.claim_due(session=session, now=now, limit=10) == []
        later = now + timedelta(seconds=30)
        again = await store.claim_due(session=session, now=later, limit=10)
    assert [r.id for r in again] == [row.id] and again[0].attempts == 2


async def test_concurrent_claimers_never_take_the_same_row(shopfront):
    customer, _ = await shopfront.customer(in_telegram=False)
    for _ in range(60):
        await shopfront.schedule(customer, lane=Lane.PROMO)
    now = shopfront.clock.now()

    async def claimer() -> list[int]:
        taken: list[int] = []
        while True:
            async with transaction(shopfront.sessions) as session:
                rows = await store.claim_due(session=session, now=now, limit=7)
            if not rows:
                return taken
            taken.extend(r.id for r in rows)

    results = await asyncio.gather(claimer(), claimer(), claimer())
    everything = [i for taken in results for i in taken]
    assert len(everything) == 60 and len(set(everything)) == 60


async def test_stale_sending_rows_become_unknown_unless_at_least_once(shopfront):
    customer, _ = await shopfront.customer(in_telegram=False)
    promo = await shopfront.schedule(customer, lane=Lane.PROMO)
    receipt = await shopfront.schedule(customer, at_least_once=True)
    now = shopfront.clock.now()
    async with transaction(shopfront.sessions) as session:
        await store.claim_due(session=session, now=now, limit=10)
    fresh = await shopfront.schedule(customer, lane=Lane.PROMO)
    lease = timedelta(minutes=5)
    async with transaction(shopfront.sessions) as session:
        await store.claim_due(session=session, now=now + timedelta(minutes=4), limit=10)
        early = await store.recover_stale(
            session=session, now=now + timedelta(minutes=4), lease=lease, max_attempts=5
        )
        late = await store.recover_stale(
            session=session, now=now + timedelta(minutes=6), lease=lease, max_attempts=5
        )
    assert (early.unknown, early.requeued) == (0, 0)
    assert (late.unknown, late.requeued) == (1, 1)
    assert (await shopfront.row(promo)).state == "unknown"
    assert (await shopfront.row(receipt)).state == "scheduled"
    assert (await shopfront.row(fresh)).state == "sending"


async def test_outcomes_are_written_per_row(shopfront):
    customer, _ = await shopfront.customer(in_telegram=False)
    rows = [await shopfront.schedule(customer, lane=Lane.PROMO) for _ in range(5)]
    now = shopfront.clock.now()
    later = now + timedelta(seconds=3)
    async with transaction(shopfront.sessions) as session:
        await store.claim_due(session=session, now=now, limit=10)
        await store.record_outcomes(
            session=session,
            outcomes=[
                store.Outcome(rows[0].id, OutboxState.SENT, message_id=101, sent_at=now),
                store.Outcome(rows[1].id, OutboxState.SENT, message_id=102, sent_at=later),
                store.Outcome(rows[2].id, OutboxState.SKIPPED, skip_reason="excluded"),
                store.Outcome(rows[3].id, OutboxState.FAILED, error="Bad Request: x"),
                store.Outcome(
                    rows[4].id,
                    OutboxState.SCHEDULED,
                    skip_reason="quiet_hours",
                    next_attempt_at=later,
                    release_attempt=True,
                ),
            ],
            now=later,
        )
    got = [await shopfront.row(r) for r in rows]
    assert [(r.state, r.telegram_message_id, r.sent_at) for r in got[:2]] == [
        ("sent", 101, now),
        ("sent", 102, later),
    ]
    assert (got[2].state, got[2].skip_reason) == ("skipped", "excluded")
    assert (got[3].state, got[3].last_error) == ("failed", "Bad Request: x")
    assert (got[4].state, got[4].attempts, got[4].next_attempt_at) == ("scheduled", 0, later)


async def test_unreachable_customers_have_pending_rows_skipped_until_reachable(shopfront):
    customer, _ = await shopfront.customer(in_telegram=False)
    later = await shopfront.schedule(customer, due_at=shopfront.clock.now() + timedelta(days=1))
    now = shopfront.clock.now()
    async with transaction(shopfront.sessions) as session:
        skipped = await store.mark_unreachable(
            session=session, shop_id=shopfront.shop.id, customer_id=customer.id, now=now
        )
    assert skipped == 1
    row = await shopfront.row(later)
    assert (row.state, row.skip_reason) == ("skipped", "unreachable")
    assert (await shopfront.reload(customer)).unreachable_since == now
    async with transaction(shopfront.sessions) as session:
        assert await store.mark_reachable(
            session=session, shop_id=shopfront.shop.id, customer_id=customer.id, now=now
        )
        assert not await store.mark_reachable(
            session=session, shop_id=shopfront.shop.id, customer_id=customer.id, now=now
        )
    assert (await shopfront.reload(customer)).unreachable_since is None


async def test_stats_count_states_reasons_and_lag(shopfront):
    customer, _ = await shopfront.customer(in_telegram=False)
    now = shopfront.clock.now()
    await shopfront.schedule(customer, due_at=now - timedelta(minutes=2))
    await shopfront.schedule(customer, due_at=now + timedelta(minutes=2))
    skipped = await shopfront.schedule(customer, due_at=now - timedelta(minutes=5))
    async with transaction(shopfront.sessions) as session:
        await store.claim_due(session=session, now=now, limit=1)
        await store.record_outcomes(
            session=session,
            outcomes=[store.Outcome(skipped.id, OutboxState.SKIPPED, skip_reason="no_consent")],
            now=now,
        )
    async with shopfront.sessions() as session:
        stats = await store.outbox_stats(session=session, now=now, shop_id=shopfront.shop.id)
    assert stats["states"]["scheduled"] == 2 and stats["states"]["skipped"] == 1
    assert stats["skipped"] == {"no_consent": 1}
    assert stats["queue_depth"] == 1
    assert stats["oldest_due_lag_seconds"] == 120.0

"""The campaign report: uplift against the holdout with its confidence interval, the winner, and
numbers that add up, computed on fixtures whose answers are worked out by hand."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from campaign_helpers import spring_campaign

from bot.campaigns import funnel_svg
from bot.store.campaigns import GroupOutcome, Tally, uplift, winner


def test_uplift_matches_the_hand_computed_answer():
    # 1,000 treated, 100 bought for 200 each; 1,000 held out, 50 bought for 200 each.
    treated = GroupOutcome(1000, 100, Decimal(20_000), Decimal(100 * 200 * 200))
    holdout = GroupOutcome(1000, 50, Decimal(10_000), Decimal(50 * 200 * 200))
    found = uplift(treated, holdout)
    assert found["order_rate"]["difference"] == pytest.approx(0.05)
    # se = sqrt(.1 * .9 / 1000 + .05 * .95 / 1000) = 0.0117260
    assert found["order_rate"]["ci95"] == pytest.approx([0.027017, 0.072983], abs=1e-5)
    assert found["order_rate"]["significant"]
    # revenue per customer 20 vs 10; variances 3,600,000 / 999 and 1,900,000 / 999
    assert found["revenue_per_customer"]["difference"] == pytest.approx(10.0)
    assert found["revenue_per_customer"]["ci95"] == pytest.approx([5.4012, 14.5988], abs=1e-3)
    assert found["incremental_orders"] == 50 and found["incremental_revenue"] == 10_000
    assert found["holdout"] == {
        "customers": 1000,
        "order_rate": 0.05,
        "revenue_per_customer": 10.0,
    }


def test_a_small_difference_is_not_called_significant():
    treated = GroupOutcome(100, 6, Decimal(600), Decimal(6 * 100 * 100))
    holdout = GroupOutcome(100, 5, Decimal(500), Decimal(5 * 100 * 100))
    found = uplift(treated, holdout)
    assert not found["order_rate"]["significant"]
    assert not found["revenue_per_customer"]["significant"]
    assert uplift(treated, GroupOutcome(0, 0, Decimal(0), Decimal(0))) is None


def test_the_winner_needs_a_significant_difference():
    def tally(sent, clicked):
        return Tally(audience=sent, sent=sent, clicked=clicked)

    outcomes = {
        "A": GroupOutcome(1000, 80, Decimal(0), Decimal(0)),
        "B": GroupOutcome(1000, 40, Decimal(0), Decimal(0)),
    }
    assert winner({"A": tally(1000, 10), "B": tally(1000, 10)}, outcomes) == {
        "variant": "A",
        "by": "order_rate",
    }
    even = {k: GroupOutcome(1000, 50, Decimal(0), Decimal(0)) for k in ("A", "B")}
    assert winner({"A": tally(1000, 200), "B": tally(1000, 100)}, even) == {
        "variant": "A",
        "by": "click_rate",
    }
    assert winner({"A": tally(1000, 101), "B": tally(1000, 100)}, even) is None
    assert winner({"A": tally(10, 1)}, {}) is None


async def test_holdout_customers_get_nothing_and_their_orders_measure_the_uplift(front):
    pg = front.pg
    people = await front.crowd(40, "uk")
    campaign = await front.create(
        spring_campaign(pool=None, holdout_percent=50, messages={"uk": {"text": "Весна!"}})
    )
    await front.send(campaign)
    await pg.dispatch()
    rows = {r.customer_id for r in await front.rows(campaign)}
    treated = [p for p in people if p.profile.id in rows]
    held = [p for p in people if p.profile.id not in rows]
    assert all(p.chat.last_message() is None for p in held)
    assert all(p.chat.last_message().text == "Весна!" for p in treated)

    pg.advance(timedelta(hours=1))
    for n, person in enumerate(treated[:4]):
        await front.order(person, order_id=50_000 + n, total="100.00")
    await front.order(held[0], order_id=60_000, total="100.00")
    report = await front.report(campaign)

    t, h = len(treated), len(held)
    assert report["audience"] == 40 and report["holdout"] == h and report["sent"] == t
    assert report["orders"] == 4 and report["revenue"] == "400.00"  # credited to the message
    up = report["uplift"]
    assert up["treated"]["customers"] == t and up["holdout"]["customers"] == h
    assert up["order_rate"]["difference"] == pytest.approx(4 / t - 1 / h, abs=1e-6)
    assert up["revenue_per_customer"]["difference"] == pytest.approx(400 / t - 100 / h, abs=1e-4)
    parts = ("sent", "skipped", "blocked", "failed", "holdout", "pending")
    assert report["audience"] == sum(report[k] for k in parts)
    for tally in (*report["variants"].values(), *report["locales"].values()):
        assert tally["audience"] == sum(tally[k] for k in parts)

    svg = funnel_svg(report)
    assert svg.startswith("<svg") and "variant A" in svg and "holdout" in svg

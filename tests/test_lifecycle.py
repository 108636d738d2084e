"""Customer metrics and stages against a hand-computed shop, on SQLite and PostgreSQL.

NOW is 15 June 2026, noon UTC. Orders (days before NOW, total; x = cancelled):
- Olena: 100d 100, 70d 200, 40d 300, 10d 400, 5d 1000x -> 4 orders, 1000, every 30 days
- Taras: 200d 100, 140d 100 -> every 60 days, 140 days since: past 1.5x -> at_risk
- Anna: 20d 500 -> one order; the shop's median interval (30, 60, 800 -> 60) -> new
- Ivan: 1200d 900 (older than 3 years), 400d 300 -> lapsed (a year without an order)
- Oksana: 100d 150 -> one order, past 1.5x the median -> at_risk
- Petro: no order -> prospect
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from bot.db import transaction
from bot.lifecycle import refresh_metrics
from bot.models import CustomerEvent, CustomerMetrics, Order, OrderStatus
from bot.store.customers import add_customer
from bot.store.shops import create_shop

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
ORDERS = {
    "olena": [(100, 100), (70, 200), (40, 300), (10, 400), (5, -1000)],
    "taras": [(200, 100), (140, 100)],
    "anna": [(20, 500)],
    "ivan": [(1200, 900), (400, 300)],
    "oksana": [(100, 150)],
    "petro": [],
}


@pytest.fixture
async def shop(database):
    """Build the shop above; return (database, shop id, customer ids by name)."""
    async with transaction(database.sessions) as session:
        shop = await create_shop(session=session, name="Kvitka", platform="generic", now=NOW)
        ids = {}
        for name, orders in ORDERS.items():
            customer = await add_customer(session=session, shop_id=shop.id, now=NOW)
            ids[name] = customer.id
            for n, (days, total) in enumerate(orders):
                session.add(
                    Order(
                        shop_id=shop.id,
                        customer_id=customer.id,
                        external_id=f"{name}-{n}",
                        total=Decimal(abs(total)),
                        status=OrderStatus.CANCELLED if total < 0 else OrderStatus.PLACED,
                        placed_at=NOW - days * DAY,
                    )
                )
    return database, shop.id, ids


async def _metrics(database, ids) -> dict[str, CustomerMetrics]:
    async with database.sessions() as session:
        rows = (await session.scalars(select(CustomerMetrics))).all()
    by_id = {row.customer_id: row for row in rows}
    return {name: by_id[cid] for name, cid in ids.items() if cid in by_id}


async def _refresh(database, shop_id, now=NOW, **kwargs):
    async with transaction(database.sessions) as session:
        return await refresh_metrics(session=session, shop_id=shop_id, now=now, **kwargs)


async def test_metrics_match_the_hand_computed_shop(shop):
    database, shop_id, ids = shop
    report = await _refresh(database, shop_id)
    assert report.customers == 6
    assert report.median_interval_days == pytest.approx(60)
    m = await _metrics(database, ids)

    olena = m["olena"]
    assert (olena.orders_count, olena.revenue, olena.aov) == (4, Decimal(1000), Decimal(250))
    assert olena.first_order_at == NOW - 100 * DAY and olena.last_order_at == NOW - 10 * DAY
    assert olena.avg_interval_days == pytest.approx(30)
    assert abs(olena.expected_next_order_at - (NOW + 20 * DAY)) < timedelta(seconds=1)

    assert m["taras"].avg_interval_days == pytest.approx(60)
    anna = m["anna"]
    assert anna.avg_interval_days is None  # one order: their own interval is unknown
    assert abs(anna.expected_next_order_at - (NOW + 40 * DAY)) < timedelta(seconds=1)

    ivan = m["ivan"]  # the 1200-day-old order is outside the 3 years, but not forgotten
    assert (ivan.orders_count, ivan.revenue) == (1, Decimal(300))
    assert ivan.first_order_at == NOW - 1200 * DAY
    assert ivan.avg_interval_days == pytest.approx(800)

    petro = m["petro"]
    assert (petro.orders_count, petro.revenue, petro.aov) == (0, Decimal(0), None)
    assert petro.last_order_at is None and petro.expected_next_order_at is None

    stages = {name: row.stage for name, row in m.items()}
    assert stages == {
        "olena": "active",
        "taras": "at_risk",
        "anna": "new",
        "ivan": "lapsed",
        "oksana": "at_risk",
        "petro": "prospect",
    }
    cells = {name: row.rfm_cell for name, row in m.items()}
    assert cells == {
        "olena": "555",
        "taras": "242",
        "anna": "414",
        "ivan": "113",
        "oksana": "311",
        "petro": None,
    }
    assert (m["taras"].rfm_r, m["taras"].rfm_f, m["taras"].rfm_m) == (2, 4, 2)


async def _stage_events(database) -> list[tuple[int, dict]]:
    async with database.sessions() as session:
        rows = await session.scalars(
            select(CustomerEvent)
            .where(CustomerEvent.type == "stage_changed")
            .order_by(CustomerEvent.id)
        )
        return [(row.customer_id, row.payload) for row in rows.all()]


async def test_stage_changes_are_events_and_an_order_moves_a_customer_back(shop):
    database, shop_id, ids = shop
    first = await _refresh(database, shop_id)
    assert first.stage_changes == 5  # everyone but Petro left `prospect`
    events = dict(await _stage_events(database))
    assert events[ids["oksana"]] == {"from": "prospect", "to": "at_risk"}
    assert ids["petro"] not in events

    again = await _refresh(database, shop_id, now=NOW + timedelta(hours=1))
    assert again.stage_changes == 0
    before = (await _metrics(database, ids))["oksana"].stage_since

    later = NOW + DAY
    async with transaction(database.sessions) as session:
        session.add(
            Order(
                shop_id=shop_id,
                customer_id=ids["oksana"],
                external_id="oksana-back",
                total=Decimal(80),
                placed_at=later,
            )
        )
    report = await _refresh(database, shop_id, now=later, customer_ids=[ids["oksana"]])
    assert (report.customers, report.stage_changes) == (1, 1)
    oksana = (await _metrics(database, ids))["oksana"]
    assert oksana.stage == "active" and oksana.orders_count == 2
    assert oksana.avg_interval_days == pytest.approx(101)
    assert oksana.stage_since == later and before == NOW
    assert (await _stage_events(database))[-1] == (
        ids["oksana"],
        {"from": "at_risk", "to": "active"},
    )


async def test_time_passing_alone_moves_stages(shop):
    database, shop_id, ids = shop
    await _refresh(database, shop_id)
    # 40 more days: Olena is 50 days past her last order (> 1.5 x 30) -> at_risk;
    # Anna 60 days (< 1.5 x 60) stays new; Taras at 180 days (not past 3 x 60) stays at_risk
    await _refresh(database, shop_id, now=NOW + 40 * DAY)
    stages = {name: row.stage for name, row in (await _metrics(database, ids)).items()}
    assert stages["olena"] == "at_risk"
    assert stages["anna"] == "new"
    assert stages["taras"] == "at_risk"
    # 20 more: Taras at 190 days is past 3 x 60 -> lapsed
    await _refresh(database, shop_id, now=NOW + 50 * DAY)
    assert (await _metrics(database, ids))["taras"].stage == "lapsed"


async def test_a_refresh_counts_only_its_own_shop(shop, database):
    _db, shop_id, _ids = shop
    async with transaction(database.sessions) as session:
        other = await create_shop(session=session, name="Other", platform="generic", now=NOW)
        stranger = await add_customer(session=session, shop_id=other.id, now=NOW)
        session.add(
            Order(
                shop_id=other.id,
                customer_id=stranger.id,
                external_id="x",
                total=Decimal(5),
                placed_at=NOW - DAY,
            )
        )
    report = await _refresh(database, shop_id)
    assert report.customers == 6 and report.median_interval_days == pytest.approx(60)
    async with database.sessions() as session:
        assert await session.get(CustomerMetrics, stranger.id) is None


async def test_the_lifecycle_report_counts_stages_reach_and_net_moves(shop):
    from bot.lifecycle import lifecycle_report, lifecycle_svg
    from bot.models import Consent, Customer

    database, shop_id, ids = shop
    async with transaction(database.sessions) as session:
        olena = await session.get(Customer, ids["olena"])
        olena.telegram_chat_id, olena.consent = 501, Consent.OPTED_IN
    await _refresh(database, shop_id)
    await _refresh(database, shop_id, now=NOW + 40 * DAY)  # Olena: active -> at_risk
    async with database.sessions() as session:
        report = await lifecycle_report(
            session=session, shop_id=shop_id, now=NOW + 40 * DAY, days=30
        )
    assert report.stages == {"prospect": 1, "new": 1, "active": 0, "at_risk": 3, "lapsed": 1}
    assert report.unreachable["at_risk"] == 2  # Olena is the one a message can reach
    # the refresh 40 days ago is outside the 30 days; only Olena's move is inside
    assert report.moves == {"active": {"at_risk": 1}}
    async with database.sessions() as session:
        everything = await lifecycle_report(
            session=session, shop_id=shop_id, now=NOW + 40 * DAY, days=60
        )
    assert everything.moves["prospect"] == {"new": 1, "at_risk": 3, "lapsed": 1}
    svg = lifecycle_svg(report)
    assert svg.startswith("<svg") and "at_risk" in svg and "2 unreachable" in svg

"""Customer metrics and lifecycle stages, computed from orders by SQL in the database.

For each customer of a shop (placed orders only; a cancelled order counts for nothing):
orders and revenue over the last three years, average order value, first and last order,
average days between orders, the expected next order (last order + their own average interval,
or the shop's median interval while they have fewer than two orders), RFM scores 1-5 (where the
customer stands among the shop's buyers of the last three years, by percent rank, so equal
values share a score) and the stage:

| stage | when |
| --- | --- |
| `prospect` | no order |
| `lapsed` | a year without an order, or past 3x their interval |
| `at_risk` | past 1.5x their interval |
| `new` | one order |
| `active` | otherwise |

`refresh_metrics` rewrites the rows of a whole shop (or of some customers, after their order)
in a few statements, never loading customers into Python; a stage that changes is recorded as a
`stage_changed` event on the profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    String,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Money, UTCDateTime
from bot.models import Customer, CustomerEvent, CustomerMetrics, Order, OrderStatus, Shop, Stage

DEFAULT_INTERVAL_DAYS = 90.0  # a shop with no repeat buyer yet
WINDOW = timedelta(days=3 * 365 + 1)
LAPSED_AFTER_DAYS = 365
AT_RISK_FACTOR = 1.5
LAPSED_FACTOR = 3.0

CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
METRICS = CustomerMetrics.__table__  # type: ignore[attr-defined]
ORDERS = Order.__table__  # type: ignore[attr-defined]
EVENTS = CustomerEvent.__table__  # type: ignore[attr-defined]
_JULIAN_UNIX_EPOCH = 2440587.5


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What a refresh did."""

    customers: int
    stage_changes: int
    median_interval_days: float


def _age_days(dialect: str, now: datetime, column: Any) -> Any:
    """Days from `column` to `now` as a float expression."""
    if dialect == "postgresql":
        return (now.timestamp() - func.extract("epoch", column)) / 86400.0
    julian_now = now.timestamp() / 86400.0 + _JULIAN_UNIX_EPOCH
    return julian_now - func.julianday(column)


def _span_days(dialect: str, later: Any, earlier: Any) -> Any:
    if dialect == "postgresql":
        return (func.extract("epoch", later) - func.extract("epoch", earlier)) / 86400.0
    return func.julianday(later) - func.julianday(earlier)


def _plus_days(dialect: str, column: Any, days: Any) -> Any:
    if dialect == "postgresql":
        return column + cast(days, Float) * literal_column("interval '1 day'")
    return func.strftime("%Y-%m-%d %H:%M:%f", func.julianday(column) + days)


def _stage_json(dialect: str, old: Any, new: Any) -> Any:
    build = func.jsonb_build_object if dialect == "postgresql" else func.json_object
    return build("from", old, "to", new)


def _score(rank: Any) -> Any:
    """Map a percent rank (0..1) to a score 1..5."""
    return case((rank < 0.2, 1), (rank < 0.4, 2), (rank < 0.6, 3), (rank < 0.8, 4), else_=5)


def _orders(shop_id: int, now: datetime, customer_ids: list[int] | None = None) -> Any:
    """Per customer: orders and revenue in the window, all orders, first and last order."""
    o = ORDERS.c
    recent = o.placed_at >= now - WINDOW
    some = [o.customer_id.in_(customer_ids)] if customer_ids is not None else []
    return (
        select(
            o.customer_id.label("customer_id"),
            func.count().label("orders_all"),
            func.sum(case((recent, 1), else_=0)).label("orders_count"),
            type_coerce(func.sum(case((recent, o.total), else_=None)), Money).label("revenue"),
            func.min(o.placed_at).label("first_order_at"),
            func.max(o.placed_at).label("last_order_at"),
        )
        .where(
            o.shop_id == shop_id,
            o.status == OrderStatus.PLACED.value,
            o.customer_id.is_not(None),
            *some,
        )
        .group_by(o.customer_id)
    )


async def _median_interval(session: AsyncSession, agg: Any, dialect: str) -> float:
    """Return the shop's median days between orders among repeat buyers."""
    span = _span_days(dialect, agg.c.last_order_at, agg.c.first_order_at)
    interval = (span / (agg.c.orders_all - 1)).label("interval")
    repeat = select(interval).where(agg.c.orders_all >= 2)
    count = int(await session.scalar(select(func.count()).select_from(repeat.subquery())) or 0)
    if count == 0:
        return DEFAULT_INTERVAL_DAYS
    ordered = repeat.order_by(interval)
    if count % 2:
        return float(await session.scalar(ordered.offset(count // 2).limit(1)) or 0)
    pair = (await session.scalars(ordered.offset(count // 2 - 1).limit(2))).all()
    return float(sum(pair) / 2)


async def refresh_metrics(
    *,
    session: AsyncSession,
    shop_id: int,
    now: datetime,
    customer_ids: list[int] | None = None,
    source: str = "metrics",
) -> RefreshReport:
    """Recompute metrics and stages for the shop (or some of its customers) as of `now`.

    A whole-shop refresh ranks RFM and stores the shop's median interval. Refreshing some
    customers (after their order) reads only their orders and uses the stored median; their
    RFM scores, which rank them among every buyer, wait for the next whole-shop refresh.
    """
    dialect = session.bind.dialect.name
    now = now.astimezone(UTC)
    some = customer_ids is not None
    agg = _orders(shop_id, now, customer_ids).cte("agg")
    shop = await session.get(Shop, shop_id)
    if some and shop is not None and shop.median_interval_days is not None:
        median = shop.median_interval_days
    else:  # a whole-shop refresh already aggregates everyone: reuse it
        everyone = _orders(shop_id, now).cte("everyone") if some else agg
        median = await _median_interval(session, everyone, dialect)
        if shop is not None and not some:
            shop.median_interval_days = median
            session.add(shop)

    buyers = select(
        agg.c.customer_id,
        func.percent_rank().over(order_by=agg.c.last_order_at).label("r"),
        func.percent_rank().over(order_by=agg.c.orders_count).label("f"),
        func.percent_rank().over(order_by=agg.c.revenue).label("m"),
    ).where(agg.c.orders_count > 0)
    rfm = buyers.cte("rfm")

    c = CUSTOMERS.c
    own = case(
        (
            agg.c.orders_all >= 2,
            _span_days(dialect, agg.c.last_order_at, agg.c.first_order_at)
            / (agg.c.orders_all - 1),
        ),
        else_=None,
    )
    interval = func.coalesce(own, literal(median))
    since_last = _age_days(dialect, now, agg.c.last_order_at)
    stage = case(
        (agg.c.last_order_at.is_(None), Stage.PROSPECT.value),
        (since_last > LAPSED_AFTER_DAYS, Stage.LAPSED.value),
        (since_last > LAPSED_FACTOR * interval, Stage.LAPSED.value),
        (since_last > AT_RISK_FACTOR * interval, Stage.AT_RISK.value),
        (agg.c.orders_all == 1, Stage.NEW.value),
        else_=Stage.ACTIVE.value,
    )
    revenue = type_coerce(func.coalesce(agg.c.revenue, 0), Money)
    count = func.coalesce(agg.c.orders_count, 0)
    prev = METRICS.alias("prev")
    if some:  # keep the last whole-shop ranking
        r, f, m = prev.c.rfm_r, prev.c.rfm_f, prev.c.rfm_m
        has_rfm = prev.c.rfm_r.is_not(None)
        rfm_cell = prev.c.rfm_cell
    else:
        r, f, m = _score(rfm.c.r), _score(rfm.c.f), _score(rfm.c.m)
        has_rfm = rfm.c.customer_id.is_not(None)
        rfm_cell = case((has_rfm, cast(r, String) + cast(f, String) + cast(m, String)), else_=None)
    joined = CUSTOMERS.outerjoin(agg, agg.c.customer_id == c.id).outerjoin(
        prev, prev.c.customer_id == c.id
    )
    if not some:
        joined = joined.outerjoin(rfm, rfm.c.customer_id == c.id)
    where = [c.shop_id == shop_id, c.redacted_hash.is_(None)]
    if customer_ids is not None:
        where.append(c.id.in_(customer_ids))
    computed = (
        select(
            c.id.label("customer_id"),
            c.shop_id.label("shop_id"),
            count.label("orders_count"),
            revenue.label("revenue"),
            type_coerce(case((count > 0, agg.c.revenue / count), else_=None), Money).label("aov"),
            agg.c.first_order_at.label("first_order_at"),
            agg.c.last_order_at.label("last_order_at"),
            own.label("avg_interval_days"),
            type_coerce(
                case(
                    (
                        agg.c.last_order_at.is_not(None),
                        _plus_days(dialect, agg.c.last_order_at, interval),
                    ),
                    else_=None,
                ),
                UTCDateTime,
            ).label("expected_next_order_at"),
            case((has_rfm, r), else_=None).label("rfm_r"),
            case((has_rfm, f), else_=None).label("rfm_f"),
            case((has_rfm, m), else_=None).label("rfm_m"),
            rfm_cell.label("rfm_cell"),
            stage.label("stage"),
        )
        .select_from(joined)
        .where(*where)
    ).cte("computed")

    old = METRICS.alias("old")
    previous = func.coalesce(old.c.stage, Stage.PROSPECT.value)
    changes = (
        select(
            computed.c.shop_id,
            computed.c.customer_id,
            literal("stage_changed"),
            _stage_json(dialect, previous, computed.c.stage),
            literal(source),
            literal(now, UTCDateTime),
        )
        .select_from(computed.outerjoin(old, old.c.customer_id == computed.c.customer_id))
        .where(previous != computed.c.stage)
    )
    moved = await _rowcount(
        session,
        insert(EVENTS).from_select(
            ["shop_id", "customer_id", "type", "payload", "source", "occurred_at"], changes
        ),
    )
    stage_since = case(
        (
            and_(old.c.stage.is_not(None), old.c.stage == computed.c.stage),
            old.c.stage_since,
        ),
        else_=literal(now, UTCDateTime),
    )
    rows = (
        select(
            computed.c.customer_id,
            computed.c.shop_id,
            computed.c.orders_count,
            computed.c.revenue,
            computed.c.aov,
            computed.c.first_order_at,
            computed.c.last_order_at,
            computed.c.avg_interval_days,
            computed.c.expected_next_order_at,
            computed.c.rfm_r,
            computed.c.rfm_f,
            computed.c.rfm_m,
            computed.c.rfm_cell,
            computed.c.stage,
            type_coerce(stage_since, UTCDateTime),
            literal(now, UTCDateTime),
        )
        .select_from(computed.outerjoin(old, old.c.customer_id == computed.c.customer_id))
        .where(literal(True))  # SQLite: INSERT … SELECT … ON CONFLICT needs a WHERE
    )
    columns = [
        "customer_id",
        "shop_id",
        "orders_count",
        "revenue",
        "aov",
        "first_order_at",
        "last_order_at",
        "avg_interval_days",
        "expected_next_order_at",
        "rfm_r",
        "rfm_f",
        "rfm_m",
        "rfm_cell",
        "stage",
        "stage_since",
        "refreshed_at",
    ]
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert
    statement = upsert(METRICS).from_select(columns, rows)
    statement = statement.on_conflict_do_update(
        index_elements=["customer_id"],
        set_={name: statement.excluded[name] for name in columns if name != "customer_id"},
    )
    written = await _rowcount(session, statement)
    return RefreshReport(written, moved, median)


async def _rowcount(session: AsyncSession, statement: Any) -> int:
    """Execute a write and return how many rows it wrote (SQLite reports -1 after WITH …)."""
    result = await session.execute(statement)
    if result.rowcount is not None and result.rowcount >= 0:
        return int(result.rowcount)
    return int(await session.scalar(select(func.changes())) or 0)


@dataclass(frozen=True, slots=True)
class LifecycleReport:
    """How many customers are in each stage, how many of them a message can reach, and how
    customers moved between stages over the last `days` days."""

    shop_id: int
    days: int
    stages: dict[str, int]
    unreachable: dict[str, int]
    moves: dict[str, dict[str, int]]  # from stage -> to stage -> customers

    def as_dict(self) -> dict[str, Any]:
        """Return the report as plain data (the `--json` shape)."""
        return {
            "shop_id": self.shop_id,
            "days": self.days,
            "stages": self.stages,
            "unreachable": self.unreachable,
            "moves": self.moves,
        }


async def lifecycle_report(
    *, session: AsyncSession, shop_id: int, now: datetime, days: int = 30
) -> LifecycleReport:
    """Count customers per stage (and the unreachable among them) and the recent moves."""
    from bot.segments import reachable

    c, m, e = CUSTOMERS.c, METRICS.c, EVENTS.c
    stage = func.coalesce(m.stage, Stage.PROSPECT.value)
    joined = CUSTOMERS.outerjoin(METRICS, m.customer_id == c.id)
    live = and_(c.shop_id == shop_id, c.redacted_hash.is_(None))
    stages = {s.value: 0 for s in Stage}
    unreachable = {s.value: 0 for s in Stage}
    rows = await session.execute(
        select(stage, func.count(), func.sum(case((reachable(), 0), else_=1)))
        .select_from(joined)
        .where(live)
        .group_by(stage)
    )
    for name, count, cannot in rows.all():
        stages[name] = int(count)
        unreachable[name] = int(cannot or 0)
    since = now - timedelta(days=days)
    events = await session.execute(
        select(e.customer_id, e.payload)
        .where(e.shop_id == shop_id, e.type == "stage_changed", e.occurred_at >= since)
        .order_by(e.customer_id, e.id)
    )
    first: dict[int, str] = {}
    last: dict[int, str] = {}
    for customer_id, payload in events.all():  # a customer's net move over the period
        first.setdefault(customer_id, str(payload.get("from")))
        last[customer_id] = str(payload.get("to"))
    moves: dict[str, dict[str, int]] = {}
    for customer_id, start in first.items():
        end = last[customer_id]
        if start != end:
            row = moves.setdefault(start, {})
            row[end] = row.get(end, 0) + 1
    return LifecycleReport(shop_id, days, stages, unreachable, moves)


def lifecycle_svg(report: LifecycleReport) -> str:
    """Draw the stages as a bar chart (SVG): reachable and unreachable customers per stage."""
    from xml.sax.saxutils import escape

    width, bar, gap, left, top = 640, 28, 14, 110, 40
    most = max([*report.stages.values(), 1])
    scale = (width - left - 120) / most
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{top + len(report.stages) * (bar + gap) + 20}" font-family="sans-serif" '
        'font-size="13">',
        f'<text x="10" y="22" font-size="15">Customers by stage, shop {report.shop_id}</text>',
    ]
    for i, (name, count) in enumerate(report.stages.items()):
        y = top + i * (bar + gap)
        cannot = report.unreachable.get(name, 0)
        can = count - cannot
        parts.append(f'<text x="10" y="{y + bar * 0.7:.0f}">{escape(name)}</text>')
        parts.append(
            f'<rect x="{left}" y="{y}" width="{can * scale:.1f}" height="{bar}" fill="#2a7ae2"/>'
        )
        parts.append(
            f'<rect x="{left + can * scale:.1f}" y="{y}" width="{cannot * scale:.1f}" '
            f'height="{bar}" fill="#c8c8c8"/>'
        )
        label = f"{count}" + (f" ({cannot} unreachable)" if cannot else "")
        parts.append(
            f'<text x="{left + count * scale + 6:.1f}" y="{y + bar * 0.7:.0f}">{label}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


__all__ = [
    "DEFAULT_INTERVAL_DAYS",
    "LifecycleReport",
    "RefreshReport",
    "lifecycle_report",
    "lifecycle_svg",
    "refresh_metrics",
]

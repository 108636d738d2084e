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

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.expression import ClauseElement, Executable

from bot.db import BigId, Money, UTCDateTime
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
    # a whole shop groups by customer_id + 0: SQLite and PostgreSQL would otherwise walk the
    # (shop, customer) index for the groups' order and read millions of orders at random (3x
    # slower than one scan and a sort)
    key = o.customer_id if some else (o.customer_id + 0)
    return (
        select(
            key.label("customer_id"),
            func.count().label("orders_all"),
            func.sum(case((recent, 1), else_=0)).label("orders_count"),
            type_coerce(
                func.sum(case((recent, o.total - func.coalesce(o.refunded_total, 0)), else_=None)),
                Money,
            ).label("revenue"),  # net of refunds (#13 ingest)
            func.min(o.placed_at).label("first_order_at"),
            func.max(o.placed_at).label("last_order_at"),
        )
        .where(
            o.shop_id == shop_id,
            o.status == OrderStatus.PLACED.value,
            o.customer_id.is_not(None),
            *some,
        )
        .group_by(key)
    )


async def _median_interval(session: AsyncSession, agg: Any, dialect: str) -> float:
    """Return the shop's median days between orders among repeat buyers."""
    span = _span_days(dialect, agg.c.last_order_at, agg.c.first_order_at)
    interval = (span / (agg.c.orders_all - 1)).label("interval")
    if dialect == "postgresql":  # the mean of the middle two for an even count, as below
        median = func.percentile_cont(0.5).within_group(interval)
        found = await session.scalar(select(median).where(agg.c.orders_all >= 2))
        return DEFAULT_INTERVAL_DAYS if found is None else float(found)
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

    A whole-shop refresh reads the orders once into a temporary table (per customer), computes
    every row once into a second one (RFM by one window pass over the buyers, the stage, the
    previous stage), then writes the stage events and the metrics from it: set-based, a few
    statements, nothing loaded into Python. Some customers use the same queries as CTEs.
    """
    dialect = session.bind.dialect.name
    now = now.astimezone(UTC)
    some = customer_ids is not None
    whole = not some
    restore: dict[str, str] = {}
    if whole and dialect == "postgresql":  # sorts of a million rows stay in memory
        restore = await _settings(session, {"work_mem": REFRESH_WORK_MEM})
    agg: Any
    if whole:
        agg = _temp_table(_AGG, _agg_columns())
        await _fill_temp(session, agg, _orders(shop_id, now))  # one (parallel) pass
    else:
        agg = _orders(shop_id, now, customer_ids).cte("agg")
    shop = await session.get(Shop, shop_id)
    if some and shop is not None and shop.median_interval_days is not None:
        median = shop.median_interval_days
    else:  # a whole-shop refresh already aggregates everyone: reuse it
        everyone = _orders(shop_id, now).cte("everyone") if some else agg
        median = await _median_interval(session, everyone, dialect)
        if shop is not None and whole:
            shop.median_interval_days = median
            session.add(shop)

    rows = _computed(dialect, shop_id, now, agg, median, customer_ids)
    computed: Any
    if whole:
        computed = _temp_table(_COMPUTED, _computed_columns())
        # in customer order: the writes then walk the metrics' key, the events' index and the
        # customers their foreign keys check in order, not at random (2-3x faster)
        await _fill_temp(session, computed, rows.order_by(CUSTOMERS.c.id))
    else:
        computed = rows.cte("computed")
    moved, written = await _write(session, dialect, computed, now, source)
    if whole:
        for table in (computed, agg):
            await session.execute(text(f"DROP TABLE {table.name}"))
        await _settings(session, restore)
    return RefreshReport(written, moved, median)


REFRESH_WORK_MEM = "128MB"  # PostgreSQL: per sort or hash, for the whole-shop refresh only
_AGG = "nudge_refresh_orders"
_COMPUTED = "nudge_refresh_rows"


def _agg_columns() -> list[Column[Any]]:
    return [
        Column("customer_id", BigId, primary_key=True),
        Column("orders_all", Integer),
        Column("orders_count", Integer),
        Column("revenue", Money),
        Column("first_order_at", UTCDateTime),
        Column("last_order_at", UTCDateTime),
    ]


_KEPT = [c for c in METRICS.columns if c.name not in ("stage_since", "refreshed_at")]


def _computed_columns() -> list[Column[Any]]:
    return [
        *(Column(c.name, c.type, primary_key=c.primary_key) for c in _KEPT),
        Column("previous", String(16)),  # the stored stage before this refresh (None: none)
        Column("previous_since", UTCDateTime),
    ]


def _temp_table(name: str, columns: list[Column[Any]]) -> Table:
    """Describe a temporary table of this refresh (its primary key is SQLite's rowid)."""
    return Table(name, MetaData(), *columns, prefixes=["TEMPORARY"])


class _CreateTempAs(Executable, ClauseElement):
    """CREATE TEMPORARY TABLE … ON COMMIT DROP AS SELECT … (PostgreSQL).

    PostgreSQL runs the SELECT of a CREATE TABLE AS in parallel (never an INSERT's) and
    writes no WAL for it; a hash join needs no key, so the table gets none.
    """

    inherit_cache = False

    def __init__(self, name: str, query: Any) -> None:
        self.name = name
        self.query = query


@compiles(_CreateTempAs)
def _compile_create_temp_as(element: _CreateTempAs, compiler: Any, **kw: Any) -> str:
    query = compiler.process(element.query, **kw)
    return f"CREATE TEMPORARY TABLE {element.name} ON COMMIT DROP AS {query}"


async def _fill_temp(session: AsyncSession, table: Table, query: Any) -> None:
    """Create the temporary table from a query (dropping one left on this connection)."""
    await session.execute(text(f"DROP TABLE IF EXISTS {table.name}"))
    if session.bind.dialect.name == "postgresql":
        await session.execute(_CreateTempAs(table.name, query))
        return
    await session.execute(CreateTable(table))
    await session.execute(insert(table).from_select([c.name for c in table.columns], query))


async def _settings(session: AsyncSession, values: dict[str, str]) -> dict[str, str]:
    """Set PostgreSQL settings for the rest of the transaction; return the previous ones."""
    before: dict[str, str] = {}
    if session.bind.dialect.name != "postgresql":
        return before
    for name, value in values.items():
        before[name] = await session.scalar(text("SELECT current_setting(:name)"), {"name": name})
        await session.execute(
            text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value}
        )
    return before


def _computed(
    dialect: str,
    shop_id: int,
    now: datetime,
    agg: Any,
    median: float,
    customer_ids: list[int] | None,
) -> Any:
    """Every refreshed customer's new metrics row, with the stage stored before it."""
    some = customer_ids is not None
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
    joined = CUSTOMERS.outerjoin(agg, agg.c.customer_id == c.id).outerjoin(
        prev, prev.c.customer_id == c.id
    )
    if some:  # keep the last whole-shop ranking
        r, f, m = prev.c.rfm_r, prev.c.rfm_f, prev.c.rfm_m
        has_rfm = prev.c.rfm_r.is_not(None)
        rfm_cell = prev.c.rfm_cell
    else:  # one window pass over the buyers of the last three years
        rfm = (
            select(
                agg.c.customer_id,
                func.percent_rank().over(order_by=agg.c.last_order_at).label("r"),
                func.percent_rank().over(order_by=agg.c.orders_count).label("f"),
                func.percent_rank().over(order_by=agg.c.revenue).label("m"),
            )
            .where(agg.c.orders_count > 0)
            .subquery("rfm")
        )
        r, f, m = _score(rfm.c.r), _score(rfm.c.f), _score(rfm.c.m)
        has_rfm = rfm.c.customer_id.is_not(None)
        rfm_cell = case((has_rfm, cast(r, String) + cast(f, String) + cast(m, String)), else_=None)
        joined = joined.outerjoin(rfm, rfm.c.customer_id == c.id)
    where = [c.shop_id == shop_id, c.redacted_hash.is_(None)]
    if some:
        where.append(c.id.in_(customer_ids))
    return (
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
            prev.c.stage.label("previous"),
            prev.c.stage_since.label("previous_since"),
        )
        .select_from(joined)
        .where(*where)
    )


async def _write(
    session: AsyncSession, dialect: str, computed: Any, now: datetime, source: str
) -> tuple[int, int]:
    """Record the stage changes and store the rows; return (stage changes, rows written)."""
    previous = func.coalesce(computed.c.previous, Stage.PROSPECT.value)
    changes = select(
        computed.c.shop_id,
        computed.c.customer_id,
        literal("stage_changed"),
        _stage_json(dialect, previous, computed.c.stage),
        literal(source),
        literal(now, UTCDateTime),
    ).where(previous != computed.c.stage)
    moved = await _rowcount(
        session,
        insert(EVENTS).from_select(
            ["shop_id", "customer_id", "type", "payload", "source", "occurred_at"], changes
        ),
    )
    stage_since = case(
        (computed.c.previous == computed.c.stage, computed.c.previous_since),
        else_=literal(now, UTCDateTime),
    )
    columns = [c.name for c in _KEPT]
    rows = select(
        *(computed.c[name] for name in columns),
        type_coerce(stage_since, UTCDateTime),
        literal(now, UTCDateTime),
    ).where(literal(True))  # SQLite: INSERT … SELECT … ON CONFLICT needs a WHERE
    columns += ["stage_since", "refreshed_at"]
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
    return moved, written


async def _rowcount(session: AsyncSession, statement: Any) -> int:
    """Execute a write and return how many rows it wrote (SQLite reports -1 after WITH …)."""
    result = await session.execute(statement)
    if result.rowcount is not None and result.rowcount >= 0:
        return int(result.rowcount)
    return int(await session.scalar(select(func.changes())) or 0)


@dataclass(frozen=True, slots=True)
class LifecycleReport:
    """How many customers are in each stage, how many of them a message can reach, and how
    customers moved between stages over the last `days` days.

    `unreachable` counts everyone a message cannot reach (not linked, no consent, blocked);
    `blocked` the part of them whose linked chat blocked the bot or is gone: nothing is sent
    there (the Courier skips it as `unreachable`) until they come back.
    """

    shop_id: int
    days: int
    stages: dict[str, int]
    unreachable: dict[str, int]
    moves: dict[str, dict[str, int]]  # from stage -> to stage -> customers
    blocked: dict[str, int]  # stage -> linked chats that blocked the bot (or are gone)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as plain data (the `--json` shape)."""
        return {
            "shop_id": self.shop_id,
            "days": self.days,
            "stages": self.stages,
            "unreachable": self.unreachable,
            "blocked": self.blocked,
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
    blocked = {s.value: 0 for s in Stage}
    chat_gone = and_(c.telegram_chat_id.is_not(None), c.unreachable_since.is_not(None))
    rows = await session.execute(
        select(
            stage,
            func.count(),
            func.sum(case((reachable(), 0), else_=1)),
            func.sum(case((chat_gone, 1), else_=0)),
        )
        .select_from(joined)
        .where(live)
        .group_by(stage)
    )
    for name, count, cannot, gone in rows.all():
        stages[name] = int(count)
        unreachable[name] = int(cannot or 0)
        blocked[name] = int(gone or 0)
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
    return LifecycleReport(shop_id, days, stages, unreachable, moves, blocked)


# The lifecycle chart's words; the console passes them in the reader's language.
LIFECYCLE_WORDS = {
    "title": "Customers by stage, shop {shop}",
    "unreachable": "{count} unreachable",
    "blocked": "{count} blocked",
}


def lifecycle_svg(
    report: LifecycleReport,
    words: Mapping[str, str] = LIFECYCLE_WORDS,
    stages: Mapping[str, str] | None = None,
) -> str:
    """Draw the stages as a bar chart (SVG): reachable and unreachable customers per stage.

    `words` and `stages` (a name per stage) give its texts; every text is escaped."""
    from xml.sax.saxutils import escape

    width, bar, gap, left, top = 640, 28, 14, 150, 40
    most = max([*report.stages.values(), 1])
    scale = (width - left - 160) / most
    title = words["title"].format(shop=report.shop_id)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{top + len(report.stages) * (bar + gap) + 20}" font-family="sans-serif" '
        'font-size="13">',
        f'<text x="10" y="22" font-size="15">{escape(title)}</text>',
    ]
    for i, (name, count) in enumerate(report.stages.items()):
        y = top + i * (bar + gap)
        cannot = report.unreachable.get(name, 0)
        can = count - cannot
        shown = (stages or {}).get(name, name)
        parts.append(f'<text x="10" y="{y + bar * 0.7:.0f}">{escape(shown)}</text>')
        parts.append(
            f'<rect x="{left}" y="{y}" width="{can * scale:.1f}" height="{bar}" fill="#2a7ae2"/>'
        )
        parts.append(
            f'<rect x="{left + can * scale:.1f}" y="{y}" width="{cannot * scale:.1f}" '
            f'height="{bar}" fill="#c8c8c8"/>'
        )
        gone = report.blocked.get(name, 0)
        notes = [words["unreachable"].format(count=cannot)] if cannot else []
        if cannot and gone:
            notes.append(words["blocked"].format(count=gone))
        label = f"{count}" + (f" ({', '.join(notes)})" if notes else "")
        parts.append(
            f'<text x="{left + count * scale + 6:.1f}" y="{y + bar * 0.7:.0f}">'
            f"{escape(label)}</text>"
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

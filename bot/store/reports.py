"""What a flow or campaign achieved: sent, blocked, skipped, clicked, not interested, revenue."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Click, Exclusion, Order, OrderStatus, Outbox, OutboxState


@dataclass
class FlowReport:
    """Counts for the messages of one flow (kind prefix) in one shop."""

    shop_id: int
    flow: str | None
    states: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    clicked: int = 0
    not_interested: int = 0
    orders: int = 0
    revenue: Decimal = Decimal(0)

    @property
    def sent(self) -> int:
        """Return how many messages reached Telegram."""
        return self.states.get(OutboxState.SENT, 0)

    @property
    def conversion(self) -> float:
        """Return attributed orders per sent message."""
        return self.orders / self.sent if self.sent else 0.0

    def count_state(self, state: str, reason: str | None, count: int) -> None:
        """Count `count` messages in `state` (skipped ones by their reason)."""
        self.states[state] = self.states.get(state, 0) + count
        if state == OutboxState.SKIPPED:
            why = reason or "unspecified"
            self.skipped[why] = self.skipped.get(why, 0) + count

    def add(self, other: FlowReport) -> None:
        """Add another report's counts (of another kind of the same flow) to this one."""
        for state, count in other.states.items():
            self.states[state] = self.states.get(state, 0) + count
        for reason, count in other.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + count
        self.clicked += other.clicked
        self.not_interested += other.not_interested
        self.orders += other.orders
        self.revenue += other.revenue

    def as_dict(self) -> dict[str, object]:
        """Return the report as JSON-ready data."""
        return {
            "shop_id": self.shop_id,
            "flow": self.flow or "all",
            "scheduled": self.states.get(OutboxState.SCHEDULED, 0),
            "sent": self.sent,
            "blocked": self.states.get(OutboxState.BLOCKED, 0),
            "failed": self.states.get(OutboxState.FAILED, 0),
            "unknown": self.states.get(OutboxState.UNKNOWN, 0),
            "cancelled": self.states.get(OutboxState.CANCELLED, 0),
            "skipped": dict(sorted(self.skipped.items())),
            "clicked": self.clicked,
            "not_interested": self.not_interested,
            "orders": self.orders,
            "revenue": f"{self.revenue:.2f}",
            "conversion": round(self.conversion, 4),
        }


class UnknownFlow(ValueError):
    """A flow name no message kind belongs to."""


def known_flows() -> list[str]:
    """Return the flows messages can belong to (the part of each kind before the dot)."""
    from bot import features
    from bot.messages.render import registered_kinds

    features.load()
    return sorted({kind.split(".")[0] for kind in registered_kinds() if "." in kind})


def check_flow(flow: str | None) -> str | None:
    """Return the flow name, or raise UnknownFlow naming the known ones."""
    if flow is None:
        return None
    flows = known_flows()
    if flow not in flows:
        raise UnknownFlow(f"{flow[:40]!r} is not a flow; known: {', '.join(flows)}")
    return flow


async def flow_report(*, session: AsyncSession, shop_id: int, flow: str | None) -> FlowReport:
    """Count outcomes of the shop's messages whose kind starts with `flow.` (all when None).

    Raises UnknownFlow for a flow no message kind belongs to.
    """
    check_flow(flow)
    report = FlowReport(shop_id=shop_id, flow=flow)
    for kind_report in (await _by_kind(session, shop_id, flow)).values():
        report.add(kind_report)
    return report


async def flow_reports(*, session: AsyncSession, shop_id: int) -> dict[str, FlowReport]:
    """Return the report of every known flow (as `flow_report` gives each), in one pass."""
    reports = {flow: FlowReport(shop_id=shop_id, flow=flow) for flow in known_flows()}
    for kind, kind_report in (await _by_kind(session, shop_id, None)).items():
        if "." in kind and kind.split(".")[0] in reports:
            reports[kind.split(".")[0]].add(kind_report)
    return reports


async def _by_kind(session: AsyncSession, shop_id: int, flow: str | None) -> dict[str, FlowReport]:
    """Count the shop's messages per kind (of one flow, or all): states, skip reasons, clicked
    messages, "not interested" and attributed orders, each in one grouped query."""
    mine = [Outbox.shop_id == shop_id]
    if flow:
        mine.append(Outbox.kind.startswith(f"{flow}."))  # type: ignore[attr-defined]
    found: dict[str, FlowReport] = {}

    def of(kind: str) -> FlowReport:
        return found.setdefault(kind, FlowReport(shop_id=shop_id, flow=flow))

    rows = await session.execute(
        select(Outbox.kind, Outbox.state, Outbox.skip_reason, func.count())
        .where(*mine)
        .group_by(Outbox.kind, Outbox.state, Outbox.skip_reason)
    )
    for kind, state, reason, count in rows:
        of(kind).count_state(state, reason, count)

    def kind_of(outbox_id: Any) -> Any:
        # the message's kind, looked up by key for each row: a join lets PostgreSQL read the
        # whole outbox to match a few thousand clicks (NULL: not one of these messages)
        return select(Outbox.kind).where(Outbox.id == outbox_id, *mine).scalar_subquery()

    kind = kind_of(Click.outbox_id).label("kind")
    clicked = select(kind, func.count(func.distinct(Click.outbox_id))).where(
        Click.shop_id == shop_id
    )
    kind = kind_of(Exclusion.outbox_id).label("kind")
    not_interested = select(kind, func.count()).where(
        Exclusion.shop_id == shop_id,
        Exclusion.outbox_id.is_not(None),  # type: ignore[union-attr]
    )
    for metric, query in (("clicked", clicked), ("not_interested", not_interested)):
        for found_kind, count in await session.execute(query.group_by(text("kind"))):
            if found_kind is not None:
                setattr(of(found_kind), metric, getattr(of(found_kind), metric) + count)
    kind = kind_of(Order.attributed_outbox_id).label("kind")
    orders = select(kind, func.count(), func.sum(Order.total)).where(
        Order.shop_id == shop_id,
        Order.status == OrderStatus.PLACED,
        Order.attributed_outbox_id.is_not(None),  # type: ignore[union-attr]
    )
    for found_kind, count, revenue in await session.execute(orders.group_by(text("kind"))):
        if found_kind is not None:
            of(found_kind).orders += count
            of(found_kind).revenue += revenue or Decimal(0)
    return found

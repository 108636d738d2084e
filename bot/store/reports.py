"""What a flow or campaign achieved: sent, blocked, skipped, clicked, not interested, revenue."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import func, select
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
    messages = select(Outbox.id).where(Outbox.shop_id == shop_id)
    if flow:
        messages = messages.where(Outbox.kind.startswith(f"{flow}."))  # type: ignore[attr-defined]
    ids = messages.scalar_subquery()
    report = FlowReport(shop_id=shop_id, flow=flow)
    rows = await session.execute(
        select(Outbox.state, Outbox.skip_reason, func.count())
        .where(Outbox.id.in_(ids))  # type: ignore[union-attr]
        .group_by(Outbox.state, Outbox.skip_reason)
    )
    for state, reason, count in rows:
        report.states[state] = report.states.get(state, 0) + count
        if state == OutboxState.SKIPPED:
            report.skipped[reason or "unspecified"] = count
    report.clicked = (
        await session.scalar(
            select(func.count(func.distinct(Click.outbox_id))).where(
                Click.shop_id == shop_id,
                Click.outbox_id.in_(ids),  # type: ignore[attr-defined]
            )
        )
        or 0
    )
    report.not_interested = (
        await session.scalar(
            select(func.count()).where(
                Exclusion.shop_id == shop_id,
                Exclusion.outbox_id.in_(ids),  # type: ignore[union-attr]
            )
        )
        or 0
    )
    orders, revenue = (
        await session.execute(
            select(func.count(), func.sum(Order.total)).where(
                Order.shop_id == shop_id,
                Order.status == OrderStatus.PLACED,
                Order.attributed_outbox_id.in_(ids),  # type: ignore[union-attr]
            )
        )
    ).one()
    report.orders = orders or 0
    report.revenue = revenue or Decimal(0)
    return report

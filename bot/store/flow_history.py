"""Flows over time: how many messages each flow sent per week, and their SVG chart.

A shop owner reads it to see the flows working week by week: the cart reminders steady, a
campaign's spike, a flow that went quiet after a setting changed. One grouped query by day and
kind (the number of kinds is small), folded into weeks here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from xml.sax.saxutils import escape

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Outbox, OutboxState

PALETTE = ("#2a7ae2", "#f2a93b", "#3bb273", "#d64545", "#8e5bd6", "#20a5a5", "#b5835a", "#777")


@dataclass
class FlowHistory:
    """Messages sent per flow per week (weeks start on Monday, oldest first)."""

    weeks: list[date]
    sent: dict[str, list[int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"weeks": [w.isoformat() for w in self.weeks], "sent": self.sent}


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


async def flow_history(
    *, session: AsyncSession, shop_id: int, now: datetime, weeks: int = 12
) -> FlowHistory:
    """Count the shop's sent messages per flow (the kind before its dot) in the last weeks."""
    first = _monday(now.date()) - timedelta(weeks=weeks - 1)
    start = datetime.combine(first, datetime.min.time(), tzinfo=now.tzinfo)
    day = func.date(Outbox.sent_at)
    rows = await session.execute(
        select(Outbox.kind, day, func.count())
        .where(
            Outbox.shop_id == shop_id,
            Outbox.state == OutboxState.SENT,
            Outbox.sent_at >= start,  # type: ignore[operator]
        )
        .group_by(Outbox.kind, day)
    )
    history = FlowHistory(weeks=[first + timedelta(weeks=i) for i in range(weeks)])
    for kind, when, count in rows:
        moment = when if isinstance(when, date) else date.fromisoformat(str(when)[:10])
        index = (_monday(moment) - first).days // 7
        if not 0 <= index < weeks:
            continue
        flow = kind.split(".")[0]
        history.sent.setdefault(flow, [0] * weeks)[index] += count
    history.sent = dict(sorted(history.sent.items()))
    return history


def flow_history_svg(history: FlowHistory, labels: dict[str, str], week_label: str) -> str:
    """Draw the weeks as stacked bars, one colour per flow, with a legend.

    `labels` names each flow in the reader's language; `week_label` formats a week's Monday
    ("{day}" placeholder). Every text is escaped.
    """
    width, height, left, top, bottom = 720, 260, 44, 16, 44
    totals = [sum(week) for week in zip(*history.sent.values(), strict=True)]
    most = max([*totals, 1])
    slot = (width - left - 10) / max(len(history.weeks), 1)
    scale = (height - top - bottom) / most
    legend_rows = (len(history.sent) + 3) // 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height + legend_rows * 18}" font-family="sans-serif" font-size="11" '
        'role="img">',
        f'<text x="4" y="{top + 8}">{most}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" '
        'stroke="#999"/>',
    ]
    for i, monday in enumerate(history.weeks):
        x = left + i * slot + 3
        y = height - bottom
        for j, (flow, values) in enumerate(history.sent.items()):
            if not values[i]:
                continue
            h = values[i] * scale
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot - 6:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(labels.get(flow, flow))}: '
                f"{values[i]}</title></rect>"
            )
        if i % 2 == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{height - bottom + 14}">'
                f"{escape(week_label.format(day=monday.strftime('%d.%m')))}</text>"
            )
    for j, flow in enumerate(history.sent):
        x, y = left + (j % 4) * 165, height - 12 + (j // 4) * 18
        color = PALETTE[j % len(PALETTE)]
        parts.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{x + 14}" y="{y}">{escape(labels.get(flow, flow))}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def nps_trend_svg(by_month: list[dict[str, object]]) -> str:
    """Draw the monthly NPS (-100..100) as bars around a zero line, the answers under each."""
    width, height, left, mid = 720, 220, 40, 100
    slot = (width - left - 10) / max(len(by_month), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11" role="img">',
        f'<line x1="{left}" y1="{mid}" x2="{width - 10}" y2="{mid}" stroke="#999"/>',
        f'<text x="4" y="{mid - 86}">100</text><text x="14" y="{mid + 4}">0</text>',
        f'<text x="0" y="{mid + 94}">-100</text>',
    ]
    for i, month in enumerate(by_month):
        x = left + i * slot + 4
        score = month.get("nps")
        if isinstance(score, int | float):
            h = abs(score) * 0.85
            y = mid - h if score >= 0 else mid
            color = "#3bb273" if score >= 0 else "#d64545"
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot - 8:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{escape(str(month["month"]))}: {score:g}</title></rect>'
            )
        parts.append(
            f'<text x="{x:.1f}" y="{height - 4}">{escape(str(month["month"]))} '
            f"({escape(str(month.get('answers', 0)))})</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"

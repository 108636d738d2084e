"""Win-back: a message with a personal code when a customer enters `at_risk`, a last one when
they become `lapsed`; never twice in one stage episode.

Stages move in `refresh_metrics` (after each order or cancellation, and the periodic whole-shop
refresh), which writes a `stage_changed` event for every move. bot/flows/lifecycle.py notes the
newest event id before a refresh (`event_mark`) and calls `plan_winbacks` after it, which reads
the shop's newer `stage_changed` events in chunks of `CHUNK` (bounded memory however many
customers a refresh moved) and schedules one promo row per customer who entered `at_risk` or
`lapsed` from a buying stage (a shop's first computation, where everyone comes from
`prospect`, sends nothing: turning the flow on must not blast every old customer). After a
periodic refresh, `plan_after_periodic_refresh` also reads the moves made since the previous
periodic run in this process (a `nudge customer refresh` plans nothing itself).

The dedupe key `winback:{customer}:{stage}:{last order time}` names the episode: refreshing
twice schedules once, while a customer who orders, drifts away again and re-enters the stage
has a new last order and so a new key. The guard skips the row when the customer ordered (or
moved on) before it went out; entering `lapsed` cancels a pending `at_risk` row.
Settings: `winback_enabled`, `winback_pool` (the code; the message goes without one when the
pool is missing or ran out). Topic `winback`, promo lane (quiet hours, frequency cap).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.flows.welcome import offer_keyboard, personal_code, resolve_catalog
from bot.messages import lifecycle as texts
from bot.messages.render import RenderContext, Rendered, register_kind
from bot.models import Consent, Customer, CustomerEvent, CustomerMetrics, Lane, Shop, Stage
from bot.offers import register_links
from bot.shop_settings import load_shop_settings
from bot.store.outbox import cancel_by_prefix, schedule_many

WINBACK_KIND = "winback.offer"
WINBACK_TOPIC = "winback"
CHUNK = 1000
ENTERED = frozenset({Stage.AT_RISK.value, Stage.LAPSED.value})
BUYING = frozenset({Stage.NEW.value, Stage.ACTIVE.value, Stage.AT_RISK.value})


def episode(last_order_at: datetime) -> str:
    """Name a stage episode by the last order it follows (whole seconds since the epoch)."""
    return str(int(last_order_at.timestamp()))


def winback_key(customer_id: int, stage: str, last_order_at: datetime) -> str:
    """Return the dedupe key of a customer's win-back for a stage episode."""
    return f"winback:{customer_id}:{stage}:{episode(last_order_at)}"


_SEEN: dict[int, int] = {}  # shop id -> newest event the last periodic plan read (this process)


async def event_mark(session: AsyncSession) -> int:
    """Return the newest customer event id: what a refresh writes after it is newer."""
    return int(await session.scalar(select(func.max(CustomerEvent.id))) or 0)


async def plan_winbacks(*, session: AsyncSession, shop: Shop, now: datetime, after: int) -> int:
    """Schedule win-backs for the shop's customers whose stage moved (events after `after`).

    One query per chunk walks the events by id (the primary key) joined to the reachable
    customers' metrics: scalar parameters only, so a prepared statement's generic plan stays
    an index walk however many chunks a big refresh needs.
    """
    if shop.id is None or not load_shop_settings(shop.settings).winback_enabled:
        return 0
    e, c, m = CustomerEvent, Customer, CustomerMetrics
    planned, cursor = 0, after
    while True:
        found = (
            await session.execute(
                select(e.id, e.customer_id, e.payload, m.stage, m.last_order_at)
                .join(c, c.id == e.customer_id)
                .join(m, m.customer_id == e.customer_id)
                .where(
                    e.shop_id == shop.id,
                    e.type == "stage_changed",
                    e.id > cursor,
                    c.shop_id == shop.id,
                    c.telegram_chat_id.is_not(None),  # type: ignore[union-attr]
                    c.consent == Consent.OPTED_IN,
                    c.unreachable_since.is_(None),  # type: ignore[union-attr]
                    c.redacted_hash.is_(None),  # type: ignore[union-attr]
                )
                .order_by(e.id)
                .limit(CHUNK)
            )
        ).all()
        if not found:
            return planned
        cursor = found[-1][0]
        moved: dict[int, tuple[str, datetime | None, str]] = {}
        for _id, customer_id, payload, stage, last_order_at in found:
            to, start = _stage(payload, "to"), _stage(payload, "from")
            if to in ENTERED and start in BUYING:
                moved[customer_id] = (to, last_order_at, stage)
            else:
                moved.pop(customer_id, None)  # a later move in the same chunk wins
        if moved:
            planned += await _schedule(session, shop, moved, now)
        if len(found) < CHUNK:
            return planned


async def plan_after_periodic_refresh(
    *, session: AsyncSession, shop: Shop, now: datetime, mark: int
) -> int:
    """Plan after a whole-shop refresh, also catching moves made since the previous periodic
    run that nothing planned (a `nudge customer refresh`); the dedupe keys make it idempotent."""
    assert shop.id is not None
    after = min(_SEEN.get(shop.id, mark), mark)
    planned = await plan_winbacks(session=session, shop=shop, now=now, after=after)
    _SEEN[shop.id] = await event_mark(session)
    return planned


def _stage(payload: Any, key: str) -> str | None:
    value = payload.get(key) if isinstance(payload, dict) else None
    return value if isinstance(value, str) else None


async def _schedule(
    session: AsyncSession,
    shop: Shop,
    moved: dict[int, tuple[str, datetime | None, str]],
    now: datetime,
) -> int:
    """Schedule the chunk's rows for customers still in the stage they entered."""
    assert shop.id is not None
    rows = []
    for customer_id, (entered, last_order_at, stage) in moved.items():
        if stage != entered or last_order_at is None:
            continue  # moved on since (a later refresh or an order): nothing to win back now
        if stage == Stage.LAPSED.value:
            await cancel_by_prefix(
                session=session,
                shop_id=shop.id,
                prefix=f"winback:{customer_id}:{Stage.AT_RISK.value}:",
                now=now,
                reason="lapsed",
            )
        rows.append(
            {
                "shop_id": shop.id,
                "customer_id": customer_id,
                "kind": WINBACK_KIND,
                "dedupe_key": winback_key(customer_id, stage, last_order_at),
                "due_at": now,
                "lane": Lane.PROMO,
                "topic": WINBACK_TOPIC,
                "payload": {"stage": stage, "episode": episode(last_order_at)},
                "now": now,
            }
        )
    return await schedule_many(session=session, rows=rows) if rows else 0


# ------------------------------------------------------------------------ rendering


async def same_episode(ctx: RenderContext) -> str | None:
    """Skip a win-back when the customer ordered or moved to another stage before it went out,
    or when the shop turned win-back off."""
    if not ctx.shop_settings.winback_enabled:
        return "flow_off"
    metrics = await ctx.session.get(CustomerMetrics, ctx.customer.id)
    if metrics is None or metrics.last_order_at is None:
        return "stage_changed"
    if episode(metrics.last_order_at) != ctx.payload.get("episode"):
        return "ordered"
    if metrics.stage != ctx.payload.get("stage"):
        return "stage_changed"
    return None


async def render_winback(ctx: RenderContext) -> Rendered:
    """Render the win-back with the customer's personal code (when the pool has one)."""
    code = await personal_code(ctx, ctx.shop_settings.winback_pool)
    text = texts.winback_text(
        lapsed=ctx.payload.get("stage") == Stage.LAPSED.value,
        shop_name=ctx.shop.name,
        first_name=ctx.customer.first_name,
        locale=ctx.locale,
        code=code,
    )
    return Rendered(text=text, buttons=await offer_keyboard(ctx))


register_kind(WINBACK_KIND, render=render_winback, guard=same_episode)
register_links(WINBACK_KIND, resolve_catalog)

"""Campaigns in the database: create, fan out into the outbox, pause, resume, cancel, report.

The fan-out walks the audience in keyset chunks (customer id > cursor), one short transaction
per chunk, so memory stays bounded and a crash or a `pause` leaves a cursor to go on from. Each
customer is written once to `campaign_recipients` with their variant (or the holdout) and
locale; non-holdout recipients get an outbox row whose dedupe key is
`campaign:{id}:{customer}:1`, so running the fan-out again moves no one and sends nothing twice.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import and_, bindparam, case, distinct, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.campaigns import (
    CampaignError,
    CampaignSpec,
    assign,
    local_due,
    parse_campaign,
    parse_local_time,
)
from bot.db import transaction
from bot.delivery.suppression import customer_zone
from bot.i18n import offered_locales
from bot.models import (
    Campaign,
    CampaignRecipient,
    CampaignStatus,
    Click,
    Customer,
    Exclusion,
    Lane,
    Order,
    OrderStatus,
    Outbox,
    OutboxState,
    PromoCode,
    PromoPool,
    Shop,
)
from bot.segments import audience, member_of
from bot.shop_settings import load_shop_settings
from bot.store.bulk import insert_rows
from bot.store.outbox import _row_values
from bot.store.segments import count_audience, saved_definitions, scope_for

CAMPAIGN_KIND = "campaign.message"
CENT = Decimal("0.01")
CHUNK = 5000
R = CampaignRecipient.__table__.c  # type: ignore[attr-defined]
O = Outbox.__table__.c  # type: ignore[attr-defined]  # noqa: E741


def dedupe_key(campaign_id: int, customer_id: int, step: int) -> str:
    """Return the outbox dedupe key of a campaign's message to a customer."""
    return f"campaign:{campaign_id}:{customer_id}:{step}"


# ------------------------------------------------------------------------------- the record


async def create_campaign(
    *, session: AsyncSession, shop_id: int, raw: Any, now: datetime
) -> Campaign:
    """Check a campaign file and store it as a draft."""
    spec = parse_campaign(raw, await saved_definitions(session=session, shop_id=shop_id))
    campaign = Campaign(
        shop_id=shop_id,
        name=spec.name,
        topic=spec.topic,
        spec=raw,
        status=CampaignStatus.DRAFT,
        send_at=spec.schedule.at,
        local_time=spec.schedule.local_time.strftime("%H:%M")
        if spec.schedule.local_time
        else None,
        created_at=now,
        updated_at=now,
    )
    session.add(campaign)
    await session.flush()
    return campaign


async def get_campaign(
    *, session: AsyncSession, shop_id: int | None, campaign_id: int
) -> Campaign:
    """Return the campaign (of the shop, when given) or raise CampaignError."""
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None or (shop_id is not None and campaign.shop_id != shop_id):
        raise CampaignError(f"no campaign {campaign_id}")
    return campaign


async def list_campaigns(*, session: AsyncSession, shop_id: int) -> list[Campaign]:
    """Return the shop's campaigns, newest first."""
    query = select(Campaign).where(Campaign.shop_id == shop_id).order_by(Campaign.id.desc())  # type: ignore[union-attr]
    return list((await session.scalars(query)).all())


_SPECS: dict[str, CampaignSpec] = {}


def spec_of(campaign: Campaign) -> CampaignSpec:
    """Return the checked spec of a stored campaign (parsed once per distinct file)."""
    key = json.dumps(campaign.spec, sort_keys=True, ensure_ascii=False)
    spec = _SPECS.get(key)
    if spec is None:
        if len(_SPECS) > 256:
            _SPECS.clear()
        spec = _SPECS[key] = parse_campaign(campaign.spec)
    return spec


def segment_definition(spec: CampaignSpec, saved: dict[str, Any]) -> dict[str, Any]:
    """Return the campaign's audience definition (a saved segment by reference)."""
    if isinstance(spec.segment, str):
        if spec.segment not in saved:
            raise CampaignError(f"segment: no saved segment named {spec.segment!r}")
        return member_of(spec.segment)
    return spec.segment


# ----------------------------------------------------------------------------- the audience


@dataclass(frozen=True, slots=True)
class Member:
    """One audience member as the fan-out needs them."""

    id: int
    locale: str
    timezone: str | None


def _locales(shop: Shop) -> tuple[tuple[str, ...], str]:
    """Return the shop's offered locales and the one a customer outside them reads."""
    offered = offered_locales(load_shop_settings(shop.settings).languages)
    return offered, shop.default_locale if shop.default_locale in offered else offered[0]


async def _members(
    session: AsyncSession,
    shop: Shop,
    definition: dict[str, Any],
    now: datetime,
    after: int,
    limit: int,
) -> list[Member]:
    """Return the next audience members after customer id `after`, in id order (keyset)."""
    assert shop.id is not None
    scope = await scope_for(session=session, shop_id=shop.id, now=now)
    c = Customer.__table__.c  # type: ignore[attr-defined]
    query = (
        audience(definition, scope)
        .add_columns(c.locale, c.timezone)
        .where(c.id > after)
        .order_by(c.id)
        .limit(limit)
    )
    rows = await session.execute(query)
    offered, fallback = _locales(shop)
    return [Member(i, loc if loc in offered else fallback, tz) for i, loc, tz in rows.all()]


@dataclass
class Split:
    """How an audience divides, before anything is written."""

    audience: int = 0
    holdout: int = 0
    variants: dict[str, int] = field(default_factory=dict)
    locales: dict[str, int] = field(default_factory=dict)
    by_variant_locale: dict[str, dict[str, int]] = field(default_factory=dict)


async def split_audience(
    *, session: AsyncSession, shop: Shop, campaign: Campaign, now: datetime
) -> Split:
    """Count the audience per variant, holdout and locale (walking it in chunks)."""
    assert shop.id is not None and campaign.id is not None
    spec = spec_of(campaign)
    definition = segment_definition(
        spec, await saved_definitions(session=session, shop_id=shop.id)
    )
    split, after = Split(), 0
    while True:
        chunk = await _members(session, shop, definition, now, after, CHUNK * 5)
        if not chunk:
            return split
        for member in chunk:
            split.audience += 1
            variant = assign(spec, campaign.id, member.id)
            split.locales[member.locale] = split.locales.get(member.locale, 0) + 1
            if variant is None:
                split.holdout += 1
                continue
            split.variants[variant] = split.variants.get(variant, 0) + 1
            per = split.by_variant_locale.setdefault(variant, {})
            per[member.locale] = per.get(member.locale, 0) + 1
        after = chunk[-1].id


async def codes_available(*, session: AsyncSession, shop_id: int, pool: str) -> int | None:
    """Return how many codes a pool can still give (None: generated, unlimited)."""
    target = (
        await session.scalars(
            select(PromoPool).where(PromoPool.shop_id == shop_id, PromoPool.name == pool)
        )
    ).first()
    if target is None:
        return 0
    if target.pattern:
        return None
    free = await session.scalar(
        select(func.count()).where(PromoCode.pool_id == target.id, PromoCode.customer_id.is_(None))  # type: ignore[union-attr]
    )
    return int(free or 0)


# ---------------------------------------------------------------------------- the fan-out


@dataclass
class FanOut:
    """What a fan-out did."""

    recipients: int = 0
    holdout: int = 0
    scheduled: int = 0
    stopped: str | None = None  # "paused" / "cancelled" when it stopped early


ACTIVE = (CampaignStatus.SENDING, CampaignStatus.SENT)


async def start(
    *,
    session: AsyncSession,
    shop: Shop,
    campaign: Campaign,
    now: datetime,
    at: datetime | None = None,
    local_time: str | None = None,
) -> Split:
    """Check the campaign can go (codes enough), fix its schedule and mark it sending."""
    assert shop.id is not None
    if campaign.status == CampaignStatus.CANCELLED:
        raise CampaignError(f"campaign {campaign.id} was cancelled; create a new one")
    if campaign.status == CampaignStatus.PAUSED:
        raise CampaignError(f"campaign {campaign.id} is paused; resume it instead")
    if not shop.bot_token:
        raise CampaignError("the shop has no bot connected (nudge shop set-bot)")
    spec = spec_of(campaign)
    definition = segment_definition(
        spec, await saved_definitions(session=session, shop_id=shop.id)
    )
    total = await count_audience(session=session, shop_id=shop.id, definition=definition, now=now)
    split = Split(audience=total)
    if spec.pool and not spec.skip_without_code and campaign.status == CampaignStatus.DRAFT:
        have = await codes_available(session=session, shop_id=shop.id, pool=spec.pool)
        if have is not None and have < total:  # the exact split only when it may matter
            split = await split_audience(session=session, shop=shop, campaign=campaign, now=now)
            needs = split.audience - split.holdout
            if have < needs:
                raise CampaignError(
                    f"pool {spec.pool!r} has {have} codes for {needs} recipients; import more "
                    'codes or set "skip_without_code": true to skip those left without one'
                )
    if campaign.status == CampaignStatus.DRAFT:
        if at is not None:
            campaign.send_at, campaign.local_time = at, None
        elif local_time is not None:
            campaign.send_at, campaign.local_time = None, local_time
        campaign.status = CampaignStatus.SENDING
        campaign.started_at = now
        campaign.updated_at = now
        session.add(campaign)
        await session.flush()
    return split


def _due(
    spec: CampaignSpec,
    campaign: Campaign,
    member: Member,
    shop: Shop,
    now: datetime,
    index: int,
    local: time | None,
) -> datetime:
    """Return when a member's message is due: now, at `send_at`, or at their local time,
    spaced by the campaign's own rate."""
    base = max(campaign.send_at, now) if campaign.send_at else now
    if local is not None:
        zone = customer_zone(SimpleNamespace(timezone=member.timezone), shop)  # type: ignore[arg-type]
        base = local_due(now, local, zone)
    if spec.rate_per_second:
        base += timedelta(seconds=index / spec.rate_per_second)
    return base


async def fan_out(
    *,
    sessions: async_sessionmaker[AsyncSession],
    shop_id: int,
    campaign_id: int,
    now: Callable[[], datetime],
    progress: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
) -> FanOut:
    """Write the campaign's recipients and outbox rows, chunk by chunk, from its cursor on."""
    done = FanOut()
    while True:
        try:
            written = await _fan_out_chunk(sessions, shop_id, campaign_id, now, chunk, done)
        except _Moved:
            continue  # paused or cancelled while this chunk was written: it was rolled back
        if written is None:
            return done
        if progress:
            progress(written)


class _Moved(Exception):
    """The campaign changed state while a chunk was being written."""


async def _fan_out_chunk(
    sessions: async_sessionmaker[AsyncSession],
    shop_id: int,
    campaign_id: int,
    now: Callable[[], datetime],
    chunk: int,
    done: FanOut,
) -> int | None:
    """Write one chunk; return how many members it held, or None when the fan-out is over."""
    draft = FanOut()
    async with transaction(sessions) as session:
        campaign = await get_campaign(session=session, shop_id=shop_id, campaign_id=campaign_id)
        if campaign.status in (CampaignStatus.PAUSED, CampaignStatus.CANCELLED):
            done.stopped = campaign.status
            return None
        if campaign.status == CampaignStatus.SENT:
            return None
        if campaign.status != CampaignStatus.SENDING:
            raise CampaignError(f"campaign {campaign_id} is not started (nudge campaign send)")
        shop = await session.get(Shop, shop_id)
        assert shop is not None and campaign.id is not None
        spec = spec_of(campaign)
        moment = now()
        definition = segment_definition(
            spec, await saved_definitions(session=session, shop_id=shop_id)
        )
        members = await _members(session, shop, definition, moment, campaign.cursor, chunk)
        if not members:
            values = {"status": CampaignStatus.SENT, "fanned_out_at": moment}
            if not await _advance(session, campaign_id, values):
                raise _Moved
            return None
        counted = await _write_chunk(session, shop, campaign, spec, members, moment, draft)
        values = {"cursor": members[-1].id, "recipients": counted}
        if not await _advance(session, campaign_id, values):
            raise _Moved  # rolls the chunk back: a pause or cancel wins
    done.recipients += draft.recipients
    done.holdout += draft.holdout
    done.scheduled += draft.scheduled
    return len(members)


async def _advance(session: AsyncSession, campaign_id: int, values: dict[str, Any]) -> bool:
    """Move the fan-out on, only while the campaign is still sending (it locks the row, so a
    pause or cancel either waits for this chunk and holds its rows, or rolls it back)."""
    result = await session.execute(
        update(Campaign.__table__)
        .where(
            Campaign.__table__.c.id == campaign_id,  # type: ignore[attr-defined]
            Campaign.__table__.c.status == CampaignStatus.SENDING.value,  # type: ignore[attr-defined]
        )
        .values(**values)
    )
    return bool(result.rowcount)


async def _write_chunk(
    session: AsyncSession,
    shop: Shop,
    campaign: Campaign,
    spec: CampaignSpec,
    members: list[Member],
    now: datetime,
    done: FanOut,
) -> int:
    """Assign a chunk of members, schedule their messages and record them as recipients;
    return how many messages the campaign has scheduled in all (its rate spacing goes on).

    A member already recorded (a re-run after a crash) keeps the variant stored for them.
    """
    assert campaign.id is not None and shop.id is not None
    ids = [m.id for m in members]
    stored = dict(
        (
            await session.execute(
                select(R.customer_id, R.variant).where(
                    R.campaign_id == campaign.id, R.customer_id.in_(ids)
                )
            )
        ).all()
    )
    chosen = {
        m.id: stored[m.id] if m.id in stored else assign(spec, campaign.id, m.id) for m in members
    }
    rows = []
    local = parse_local_time(campaign.local_time) if campaign.local_time else None
    index = campaign.recipients
    for m in members:
        done.recipients += 1
        variant = chosen[m.id]
        if variant is None:
            done.holdout += 1
            continue
        rows.append(
            {
                "shop_id": shop.id,
                "customer_id": m.id,
                "kind": CAMPAIGN_KIND,
                "dedupe_key": dedupe_key(campaign.id, m.id, 1),
                "due_at": _due(spec, campaign, m, shop, now, index, local),
                "lane": Lane.PROMO,
                "topic": spec.topic,
                "payload": {"campaign_id": campaign.id, "step": 1, "locale": m.locale},
                "variant": variant,
                "now": now,
            }
        )
        index += 1
    campaign.recipients = index
    outbox_ids, created = await _schedule_rows(session, shop.id, rows)
    done.scheduled += created
    new = [
        {
            "campaign_id": campaign.id,
            "shop_id": shop.id,
            "customer_id": m.id,
            "variant": chosen[m.id],
            "locale": m.locale,
            "outbox_id": outbox_ids.get(m.id),
            "created_at": now,
        }
        for m in members
        if m.id not in stored
    ]
    await insert_rows(
        session,
        CampaignRecipient.__table__,  # type: ignore[arg-type]
        new,
        conflict=("campaign_id", "customer_id"),
    )
    return index


async def _schedule_rows(
    session: AsyncSession, shop_id: int, rows: list[dict[str, Any]]
) -> tuple[dict[int, int], int]:
    """Insert a step's outbox rows in one statement; return the row id per customer (rows a
    re-run scheduled before keep theirs) and how many are new."""
    inserted = await insert_rows(
        session,
        Outbox.__table__,  # type: ignore[arg-type]
        [_row_values(**row) for row in rows],
        conflict=("shop_id", "dedupe_key"),
        returning=("customer_id", "id"),
    )
    ids = dict(inserted)
    missing = [r["dedupe_key"] for r in rows if r["customer_id"] not in ids]
    if missing:
        found = await session.execute(
            select(O.customer_id, O.id).where(O.shop_id == shop_id, O.dedupe_key.in_(missing))
        )
        ids.update(found.all())
    return ids, len(inserted)


# ------------------------------------------------------------------- pause, resume, cancel


def _campaign_rows(campaign_id: int) -> Any:
    """The outbox ids of a campaign (first messages and follow-ups)."""
    return (
        select(R.outbox_id)
        .where(R.campaign_id == campaign_id, R.outbox_id.is_not(None))
        .union_all(
            select(R.follow_up_id).where(R.campaign_id == campaign_id, R.follow_up_id.is_not(None))
        )
    )


async def pause(*, session: AsyncSession, campaign: Campaign, now: datetime) -> int:
    """Hold every row not yet claimed; the fan-out stops at its next chunk. Return rows held."""
    if campaign.status not in ACTIVE:
        raise CampaignError(
            f"campaign {campaign.id} is {campaign.status}; only a sending one pauses"
        )
    campaign.status = CampaignStatus.PAUSED
    campaign.updated_at = now
    session.add(campaign)
    result = await session.execute(
        update(Outbox.__table__)
        .where(O.id.in_(_campaign_rows(campaign.id)), O.state == OutboxState.SCHEDULED.value)  # type: ignore[arg-type]
        .values(state=OutboxState.HELD.value, updated_at=now)
    )
    return int(result.rowcount or 0)


async def resume(*, session: AsyncSession, campaign: Campaign, now: datetime) -> int:
    """Release held rows (the paused time is added to their due times) and go on fanning out."""
    if campaign.status != CampaignStatus.PAUSED:
        raise CampaignError(f"campaign {campaign.id} is {campaign.status}, not paused")
    paused_for = max(now - campaign.updated_at, timedelta(0))
    campaign.status = CampaignStatus.SENT if campaign.fanned_out_at else CampaignStatus.SENDING
    campaign.updated_at = now
    session.add(campaign)
    held = (
        await session.execute(
            select(O.id, O.due_at).where(
                O.id.in_(_campaign_rows(campaign.id)),  # type: ignore[arg-type]
                O.state == OutboxState.HELD.value,
            )
        )
    ).all()
    for i in range(0, len(held), 500):
        chunk = held[i : i + 500]
        await session.execute(
            update(Outbox.__table__)
            .where(O.id == bindparam("rid"))
            .values(
                state=OutboxState.SCHEDULED.value,
                due_at=bindparam("due"),
                next_attempt_at=bindparam("due"),
                updated_at=now,
            )
            .execution_options(synchronize_session=False),
            [{"rid": rid, "due": max(due + paused_for, now)} for rid, due in chunk],
        )
    return len(held)


async def cancel(*, session: AsyncSession, campaign: Campaign, now: datetime) -> int:
    """Cancel every row not yet sent; return how many."""
    if campaign.status == CampaignStatus.CANCELLED:
        return 0
    campaign.status = CampaignStatus.CANCELLED
    campaign.updated_at = now
    session.add(campaign)
    result = await session.execute(
        update(Outbox.__table__)
        .where(
            O.id.in_(_campaign_rows(campaign.id)),  # type: ignore[arg-type]
            O.state.in_([OutboxState.SCHEDULED.value, OutboxState.HELD.value]),
        )
        .values(
            state=OutboxState.CANCELLED.value, skip_reason="campaign_cancelled", updated_at=now
        )
    )
    return int(result.rowcount or 0)


# ------------------------------------------------------------------------------ follow-ups


async def plan_follow_ups(
    *, session: AsyncSession, campaign: Campaign, now: datetime, limit: int = CHUNK
) -> int:
    """Schedule the follow-up for recipients whose first message went `after` ago, unclicked.

    Return how many recipients were handled (at most `limit`; call again while it is not 0).
    """
    spec = spec_of(campaign)
    if spec.follow_up is None or campaign.status not in ACTIVE or campaign.id is None:
        return 0
    since = now - spec.follow_up.after
    clicked = exists().where(Click.outbox_id == R.outbox_id)
    rows = (
        await session.execute(
            select(R.customer_id, R.variant, R.locale)
            .join(Outbox.__table__, O.id == R.outbox_id)
            .where(
                R.campaign_id == campaign.id,
                R.follow_up_id.is_(None),
                O.state == OutboxState.SENT.value,
                O.sent_at <= since,
                ~clicked,
            )
            .order_by(R.customer_id)
            .limit(limit)
        )
    ).all()
    if not rows:
        return 0
    scheduled = [
        {
            "shop_id": campaign.shop_id,
            "customer_id": customer_id,
            "kind": CAMPAIGN_KIND,
            "dedupe_key": dedupe_key(campaign.id, customer_id, 2),
            "due_at": now,
            "lane": Lane.PROMO,
            "topic": campaign.topic,
            "payload": {"campaign_id": campaign.id, "step": 2, "locale": locale},
            "variant": variant,
            "now": now,
        }
        for customer_id, variant, locale in rows
    ]
    ids, _created = await _schedule_rows(session, campaign.shop_id, scheduled)
    await session.execute(
        update(CampaignRecipient.__table__)
        .where(R.campaign_id == campaign.id, R.customer_id == bindparam("cid"))
        .values(follow_up_id=bindparam("oid"))
        .execution_options(synchronize_session=False),
        [{"cid": cid, "oid": oid} for cid, oid in ids.items()],
    )
    return len(scheduled)


async def campaigns_with_follow_ups(*, session: AsyncSession) -> list[Campaign]:
    """Return every sending campaign whose file has a follow-up step."""
    rows = await session.scalars(
        select(Campaign).where(Campaign.status.in_([s.value for s in ACTIVE]))  # type: ignore[attr-defined]
    )
    return [c for c in rows.all() if isinstance(c.spec, dict) and c.spec.get("follow_up")]


# ---------------------------------------------------------------------------------- report


PENDING_STATES = (OutboxState.SCHEDULED, OutboxState.HELD, OutboxState.SENDING)
FAILED_STATES = (OutboxState.FAILED, OutboxState.UNKNOWN)
SKIPPED_STATES = (OutboxState.SKIPPED, OutboxState.CANCELLED)


@dataclass
class Tally:
    """One line of a campaign report (the whole campaign, a variant, a locale or a step)."""

    audience: int = 0
    holdout: int = 0
    sent: int = 0
    blocked: int = 0
    failed: int = 0
    skipped: int = 0
    pending: int = 0
    clicked: int = 0
    not_interested: int = 0
    orders: int = 0
    revenue: Decimal = Decimal(0)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)

    def add_state(self, state: str, reason: str | None, n: int) -> None:
        """Count `n` rows in `state`."""
        if state == OutboxState.SENT:
            self.sent += n
        elif state == OutboxState.BLOCKED:
            self.blocked += n
        elif state in FAILED_STATES:
            self.failed += n
        elif state in SKIPPED_STATES:
            self.skipped += n
            why = reason or state
            self.skipped_by_reason[why] = self.skipped_by_reason.get(why, 0) + n
        else:
            self.pending += n

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON shape, with conversion (orders per message sent)."""
        return {
            "audience": self.audience,
            "holdout": self.holdout,
            "sent": self.sent,
            "blocked": self.blocked,
            "failed": self.failed,
            "skipped": self.skipped,
            "skipped_by_reason": dict(sorted(self.skipped_by_reason.items())),
            "pending": self.pending,
            "clicked": self.clicked,
            "not_interested": self.not_interested,
            "orders": self.orders,
            "revenue": str(self.revenue.quantize(CENT)),
            "conversion": round(self.orders / self.sent, 4) if self.sent else 0.0,
            "click_rate": round(self.clicked / self.sent, 4) if self.sent else 0.0,
        }


@dataclass(frozen=True, slots=True)
class GroupOutcome:
    """Orders within the window by everyone assigned to a group (sent to or not)."""

    customers: int
    buyers: int
    revenue: Decimal
    revenue_squares: Decimal

    @property
    def order_rate(self) -> float:
        """Return the share of the group who ordered."""
        return self.buyers / self.customers if self.customers else 0.0

    @property
    def revenue_per_customer(self) -> float:
        """Return the mean revenue per customer of the group."""
        return float(self.revenue) / self.customers if self.customers else 0.0

    def revenue_variance(self) -> float:
        """Return the sample variance of revenue per customer."""
        n = self.customers
        if n < 2:
            return 0.0
        mean = float(self.revenue) / n
        return max((float(self.revenue_squares) - n * mean * mean) / (n - 1), 0.0)


Z95 = 1.959963984540054


def difference(treated: float, control: float, se: float) -> dict[str, Any]:
    """Return a difference with its 95% confidence interval and whether it is significant."""
    diff = treated - control
    low, high = diff - Z95 * se, diff + Z95 * se
    return {
        "difference": round(diff, 6),
        "ci95": [round(low, 6), round(high, 6)],
        "significant": se > 0 and (low > 0 or high < 0),
    }


def uplift(treated: GroupOutcome, control: GroupOutcome) -> dict[str, Any] | None:
    """Compare the order rate and revenue per customer of a treated group with the holdout."""
    if not treated.customers or not control.customers:
        return None
    p1, p2 = treated.order_rate, control.order_rate
    se_rate = math.sqrt(p1 * (1 - p1) / treated.customers + p2 * (1 - p2) / control.customers)
    se_revenue = math.sqrt(
        treated.revenue_variance() / treated.customers
        + control.revenue_variance() / control.customers
    )
    return {
        "treated": {
            "customers": treated.customers,
            "order_rate": round(p1, 6),
            "revenue_per_customer": round(treated.revenue_per_customer, 4),
        },
        "holdout": {
            "customers": control.customers,
            "order_rate": round(p2, 6),
            "revenue_per_customer": round(control.revenue_per_customer, 4),
        },
        "order_rate": difference(p1, p2, se_rate),
        "revenue_per_customer": difference(
            treated.revenue_per_customer, control.revenue_per_customer, se_revenue
        ),
        "incremental_orders": round((p1 - p2) * treated.customers, 2),
        "incremental_revenue": round(
            (treated.revenue_per_customer - control.revenue_per_customer) * treated.customers, 2
        ),
    }


def two_proportions(hits1: int, n1: int, hits2: int, n2: int) -> float | None:
    """Return the z statistic of two proportions (pooled), or None when undefined."""
    if not n1 or not n2:
        return None
    pooled = (hits1 + hits2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return ((hits1 / n1) - (hits2 / n2)) / se if se else None


def winner(variants: dict[str, Tally], outcomes: dict[str, GroupOutcome]) -> dict[str, Any] | None:
    """Name the variant whose order rate (else click rate) beats every other significantly."""
    names = list(variants)
    if len(names) < 2:
        return None
    for metric in ("order_rate", "click_rate"):

        def hits(name: str, metric: str = metric) -> tuple[int, int]:
            if metric == "order_rate":
                outcome = outcomes.get(name)
                return (outcome.buyers, outcome.customers) if outcome else (0, 0)
            return variants[name].clicked, variants[name].sent

        best = max(names, key=lambda n: hits(n)[0] / hits(n)[1] if hits(n)[1] else 0.0)
        zs = [two_proportions(*hits(best), *hits(other)) for other in names if other != best]
        if all(z is not None and z > Z95 for z in zs):
            return {"variant": best, "by": metric}
    return None


async def report(
    *, session: AsyncSession, shop: Shop, campaign: Campaign, now: datetime
) -> dict[str, Any]:
    """Return the campaign's numbers by campaign, variant, locale and step, and its uplift."""
    assert campaign.id is not None
    cid = campaign.id
    spec = spec_of(campaign)
    total = Tally()
    variants: dict[str, Tally] = {v.name: Tally() for v in spec.variants}
    locales: dict[str, Tally] = {}
    steps = {"1": Tally(), "2": Tally()}

    def lines(variant: str | None, locale: str) -> list[Tally]:
        found = [total, locales.setdefault(locale, Tally())]
        if variant is not None:
            found.append(variants.setdefault(variant, Tally()))
        return found

    # every recipient once, with both of their messages' states (a holdout's are NULL)
    outbox = Outbox.__table__  # type: ignore[attr-defined]
    first, second = outbox.alias("first"), outbox.alias("second")
    shape = (R.variant, R.locale, first.c.state, first.c.skip_reason)
    shape += (second.c.state, second.c.skip_reason)
    recipients = CampaignRecipient.__table__.outerjoin(  # type: ignore[attr-defined]
        first, first.c.id == R.outbox_id
    ).outerjoin(second, second.c.id == R.follow_up_id)
    states = (
        select(*shape, func.count())
        .select_from(recipients)
        .where(R.campaign_id == cid)
        .group_by(*shape)
    )
    for variant, locale, state, reason, state2, reason2, n in (
        await session.execute(states)
    ).all():
        for tally in lines(variant, locale):
            tally.audience += n
            tally.holdout += n if variant is None else 0
            if state is not None:  # the audience identity is about the first message
                tally.add_state(state, reason, n)
        if state is not None:
            steps["1"].add_state(state, reason, n)
        if state2 is not None:
            steps["2"].add_state(state2, reason2, n)
    responses = await _responses(session, R.campaign_id == cid, (R.variant, R.locale))
    for (variant, locale), numbers in responses.items():
        for tally in lines(variant, locale):
            for metric in ("clicked", "not_interested", "orders", "revenue"):
                setattr(tally, metric, getattr(tally, metric) + numbers[metric, 0])
        for step in ("1", "2"):
            for metric in ("clicked", "not_interested", "orders", "revenue"):
                value = getattr(steps[step], metric) + numbers[metric, int(step)]
                setattr(steps[step], metric, value)
    outcomes = await group_outcomes(session=session, shop=shop, campaign=campaign, now=now)
    control = outcomes.pop("holdout", None)
    result = total.as_dict()
    result.update(
        {
            "id": cid,
            "name": campaign.name,
            "status": campaign.status,
            "topic": campaign.topic,
            "started_at": campaign.started_at.isoformat() if campaign.started_at else None,
            "currency": shop.currency,
            "variants": {name: t.as_dict() for name, t in sorted(variants.items())},
            "locales": {name: t.as_dict() for name, t in sorted(locales.items())},
            "steps": {k: t.as_dict() for k, t in steps.items() if k == "1" or spec.follow_up},
            "uplift": uplift(_combine(list(outcomes.values())), control) if control else None,
            "variant_uplift": {
                name: uplift(outcome, control) for name, outcome in sorted(outcomes.items())
            }
            if control
            else {},
            "winner": winner(variants, outcomes),
        }
    )
    return result


async def _responses(
    session: AsyncSession, where: Any, by: tuple[Any, ...]
) -> dict[tuple[Any, ...], dict[tuple[str, int], Any]]:
    """Count recipients (those `where` picks) who clicked, said "not interested", and the
    orders credited to them, through either of their messages (step 0) and each (1, 2), grouped
    by `by`: {key: {(metric, step): value}} with metrics clicked, not_interested, orders and
    revenue. One grouped query per metric, each reading the recipients once."""
    ck, ex, oc = Click.__table__.c, Exclusion.__table__.c, Order.__table__.c  # type: ignore[attr-defined]
    found: dict[tuple[Any, ...], dict[tuple[str, int], Any]] = {}

    def numbers(key: tuple[Any, ...]) -> dict[tuple[str, int], Any]:
        if key not in found:
            found[key] = {
                (m, s): 0 for m in ("clicked", "not_interested", "orders") for s in (0, 1, 2)
            }
            found[key].update({("revenue", s): Decimal(0) for s in (0, 1, 2)})
        return found[key]

    for metric, table, column in (
        ("clicked", Click.__table__, ck.outbox_id),  # type: ignore[attr-defined]
        ("not_interested", Exclusion.__table__, ex.outbox_id),  # type: ignore[attr-defined]
    ):
        per_customer = (
            select(
                *by,
                func.max(case((column == R.outbox_id, 1), else_=0)).label("first"),
                func.max(case((column == R.follow_up_id, 1), else_=0)).label("second"),
            )
            .select_from(
                CampaignRecipient.__table__.join(  # type: ignore[attr-defined]
                    table, or_(column == R.outbox_id, column == R.follow_up_id)
                )
            )
            .where(where)
            .group_by(*by, R.customer_id)
            .subquery()
        )
        keys = [per_customer.c[c.name] for c in by]
        rows = await session.execute(
            select(
                *keys,
                func.count(),
                func.sum(per_customer.c.first),
                func.sum(per_customer.c.second),
            ).group_by(*keys)
        )
        for row in rows.all():
            counts = numbers(tuple(row[: len(by)]))
            for which, value in enumerate(row[len(by) :]):  # 0: either message
                counts[metric, which] = int(value or 0)
    step = case((oc.attributed_outbox_id == R.outbox_id, 1), else_=2)
    rows = await session.execute(
        select(*by, step, func.count(distinct(oc.id)), func.sum(oc.total))
        .select_from(
            CampaignRecipient.__table__.join(  # type: ignore[attr-defined]
                Order.__table__,  # type: ignore[attr-defined]
                or_(
                    oc.attributed_outbox_id == R.outbox_id,
                    oc.attributed_outbox_id == R.follow_up_id,
                ),
            )
        )
        .where(where, oc.status == OrderStatus.PLACED.value)
        .group_by(*by, step)
    )
    for row in rows.all():  # an order is credited to one message: the steps add up
        counts = numbers(tuple(row[: len(by)]))
        n, revenue = int(row[len(by) + 1] or 0), Decimal(row[len(by) + 2] or 0)
        for which in (0, row[len(by)]):
            counts["orders", which] += n
            counts["revenue", which] += revenue
    return found


async def progress(
    *, session: AsyncSession, shop_id: int, campaign_id: int | None = None
) -> dict[int, dict[str, int]]:
    """Per campaign of the shop (or just `campaign_id`): messages scheduled (the holdout gets
    none), those still waiting, recipients who clicked, orders credited. A few grouped queries
    for every campaign, for lists; `report` has the rest."""
    waiting = case((O.state.in_([s.value for s in PENDING_STATES]), 1), else_=0)
    # the shop's recipients through its campaigns (campaign_recipients is indexed by campaign)
    mine = R.campaign_id.in_(select(Campaign.id).where(Campaign.shop_id == shop_id))
    if campaign_id is not None:
        mine = and_(R.campaign_id == campaign_id, R.shop_id == shop_id)
    rows = await session.execute(
        select(R.campaign_id, func.count(O.id), func.coalesce(func.sum(waiting), 0))
        .select_from(CampaignRecipient.__table__.join(Outbox.__table__, O.id == R.outbox_id))
        .where(mine)
        .group_by(R.campaign_id)
    )
    found = {
        cid: {"messages": int(n), "pending": int(p), "clicked": 0, "orders": 0}
        for cid, n, p in rows.all()
    }
    for (cid,), numbers in (await _responses(session, mine, (R.campaign_id,))).items():
        if cid in found:
            found[cid]["clicked"] = numbers["clicked", 0]
            found[cid]["orders"] = numbers["orders", 0]
    return found


def progress_in(report: dict[str, Any]) -> dict[str, int]:
    """Return what `progress` gives for one campaign, read from its `report` (which counts
    the same rows: every first message by state, recipients who clicked, orders credited)."""
    first = report["steps"]["1"]
    messages = sum(first[k] for k in ("sent", "blocked", "failed", "skipped", "pending"))
    return {
        "messages": messages,
        "pending": first["pending"],
        "clicked": report["clicked"],
        "orders": report["orders"],
    }


def _combine(groups: list[GroupOutcome]) -> GroupOutcome:
    return GroupOutcome(
        customers=sum(g.customers for g in groups),
        buyers=sum(g.buyers for g in groups),
        revenue=sum((g.revenue for g in groups), Decimal(0)),
        revenue_squares=sum((g.revenue_squares for g in groups), Decimal(0)),
    )


async def group_outcomes(
    *, session: AsyncSession, shop: Shop, campaign: Campaign, now: datetime
) -> dict[str, GroupOutcome]:
    """Orders placed in the attribution window after the start, per variant and the holdout.

    Everyone assigned counts (intent to treat): a recipient who was skipped or blocked stays in
    their variant, so the comparison with the holdout is fair.
    """
    if campaign.started_at is None or campaign.id is None:
        return {}
    window = load_shop_settings(shop.settings).attribution_window
    start = campaign.started_at
    end = min(now, start + window + _spread(campaign))
    oc = Order.__table__.c  # type: ignore[attr-defined]
    per_customer = (
        select(
            R.customer_id.label("customer_id"),
            func.coalesce(R.variant, "holdout").label("grp"),
            func.count(oc.id).label("orders"),
            func.coalesce(func.sum(oc.total), 0).label("revenue"),
        )
        .select_from(
            CampaignRecipient.__table__.outerjoin(
                Order.__table__,
                and_(
                    oc.shop_id == R.shop_id,
                    oc.customer_id == R.customer_id,
                    oc.status == OrderStatus.PLACED.value,
                    oc.placed_at >= start,
                    oc.placed_at <= end,
                ),
            )
        )
        .where(R.campaign_id == campaign.id)
        .group_by(R.customer_id, R.variant)
        .subquery()
    )
    rows = await session.execute(
        select(
            per_customer.c.grp,
            func.count(),
            func.sum(case((per_customer.c.orders > 0, 1), else_=0)),
            func.coalesce(func.sum(per_customer.c.revenue), 0),
            func.coalesce(func.sum(per_customer.c.revenue * per_customer.c.revenue), 0),
        ).group_by(per_customer.c.grp)
    )
    return {
        grp: GroupOutcome(int(n), int(buyers or 0), Decimal(rev), Decimal(squares))
        for grp, n, buyers, rev, squares in rows.all()
    }


def _spread(campaign: Campaign) -> timedelta:
    """How long after its start a campaign's messages may still go out (local time: a day)."""
    return timedelta(days=1) if campaign.local_time else timedelta(0)

"""The outbox: scheduling, cancelling, claiming and recording the outcome of messages.

A row moves `scheduled -> sending -> sent | blocked | failed | skipped | unknown`, or
`scheduled -> cancelled`. `sending` is committed before the message leaves, so a crash leaves
the row in `sending`; `recover_stale` later turns it into `unknown` (never sent twice) or, for
rows scheduled `at_least_once`, back into `scheduled`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from bot.models import (
    LANE_PRIORITY,
    Customer,
    Exclusion,
    Lane,
    Outbox,
    OutboxState,
    Shop,
)

# A row counts against the promo frequency cap once it left (or may have left) the building.
_COUNTED_STATES = (OutboxState.SENT, OutboxState.SENDING, OutboxState.UNKNOWN)
_CHUNK = 500  # ids per statement: well under every driver's bound-parameter limit


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _row_values(
    *,
    shop_id: int,
    customer_id: int,
    kind: str,
    dedupe_key: str,
    due_at: datetime,
    lane: Lane | str,
    topic: str | None = None,
    payload: dict[str, Any] | None = None,
    variant: str | None = None,
    at_least_once: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    lane = Lane(lane)
    created = now or due_at
    return {
        "shop_id": shop_id,
        "customer_id": customer_id,
        "kind": kind,
        "topic": topic,
        "lane": lane.value,
        "priority": LANE_PRIORITY[lane],
        "payload": payload or {},
        "dedupe_key": dedupe_key,
        "due_at": due_at,
        "next_attempt_at": due_at,
        "state": OutboxState.SCHEDULED.value,
        "attempts": 0,
        "variant": variant,
        "at_least_once": at_least_once,
        "created_at": created,
        "updated_at": created,
    }


async def schedule(
    *,
    session: AsyncSession,
    shop_id: int,
    customer_id: int,
    kind: str,
    dedupe_key: str,
    due_at: datetime,
    lane: Lane | str,
    topic: str | None = None,
    payload: dict[str, Any] | None = None,
    variant: str | None = None,
    at_least_once: bool = False,
    now: datetime | None = None,
) -> Outbox | None:
    """Schedule one message; return the new row, or None when the dedupe key already exists."""
    values = _row_values(
        shop_id=shop_id,
        customer_id=customer_id,
        kind=kind,
        dedupe_key=dedupe_key,
        due_at=due_at,
        lane=lane,
        topic=topic,
        payload=payload,
        variant=variant,
        at_least_once=at_least_once,
        now=now,
    )
    statement = (
        _insert(session)(Outbox)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["shop_id", "dedupe_key"])
        .returning(Outbox)
    )
    return (await session.scalars(statement)).first()


async def schedule_many(*, session: AsyncSession, rows: Iterable[dict[str, Any]]) -> int:
    """Schedule many messages (dicts of `schedule`'s arguments); return how many were new."""
    created = 0
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(_row_values(**row))
        if len(chunk) >= 1000:
            created += await _insert_chunk(session, chunk)
            chunk = []
    if chunk:
        created += await _insert_chunk(session, chunk)
    return created


async def _insert_chunk(session: AsyncSession, chunk: list[dict[str, Any]]) -> int:
    statement = (
        _insert(session)(Outbox.__table__)
        .on_conflict_do_nothing(index_elements=["shop_id", "dedupe_key"])
        .returning(Outbox.__table__.c.id)
    )
    result = await session.execute(statement, chunk)
    return len(result.all())


async def cancel_by_prefix(
    *,
    session: AsyncSession,
    shop_id: int,
    prefix: str,
    now: datetime,
    customer_id: int | None = None,
    reason: str | None = None,
) -> int:
    """Cancel the shop's scheduled rows whose dedupe key starts with `prefix`; return the count."""
    if not prefix:
        raise ValueError("an empty prefix would cancel everything")
    # substr() compares exactly on both backends (SQLite's LIKE ignores case).
    conditions = [
        Outbox.shop_id == shop_id,
        Outbox.state == OutboxState.SCHEDULED,
        func.substr(Outbox.dedupe_key, 1, len(prefix)) == prefix,
    ]
    if customer_id is not None:
        conditions.append(Outbox.customer_id == customer_id)
    return await _cancel(session, conditions, now, reason)


async def cancel_by_topic(
    *,
    session: AsyncSession,
    shop_id: int,
    customer_id: int,
    topic: str,
    now: datetime,
    reason: str | None = None,
) -> int:
    """Cancel a customer's scheduled rows on a topic ("not interested"); return the count."""
    conditions = [
        Outbox.shop_id == shop_id,
        Outbox.customer_id == customer_id,
        Outbox.topic == topic,
        Outbox.state == OutboxState.SCHEDULED,
    ]
    return await _cancel(session, conditions, now, reason)


async def _cancel(
    session: AsyncSession, conditions: list[Any], now: datetime, reason: str | None
) -> int:
    statement = (
        update(Outbox)
        .where(*conditions)
        .values(state=OutboxState.CANCELLED, skip_reason=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(statement)
    return result.rowcount or 0  # type: ignore[attr-defined]


async def get_outbox(*, session: AsyncSession, shop_id: int, outbox_id: int) -> Outbox | None:
    """Return the shop's outbox row by id (never another shop's)."""
    row = await session.get(Outbox, outbox_id)
    if row is None or row.shop_id != shop_id:
        return None
    return row


async def list_outbox(
    *,
    session: AsyncSession,
    shop_id: int,
    customer_id: int | None = None,
    state: OutboxState | str | None = None,
    limit: int = 1000,
) -> list[Outbox]:
    """Return the shop's rows (optionally one customer's, one state's), oldest first."""
    query = select(Outbox).where(Outbox.shop_id == shop_id)
    if customer_id is not None:
        query = query.where(Outbox.customer_id == customer_id)
    if state is not None:
        query = query.where(Outbox.state == state)
    query = query.order_by(Outbox.id).limit(limit)  # type: ignore[arg-type]
    return list((await session.scalars(query)).all())


# ------------------------------------------------------------------------------ claiming


def _eligible(now: datetime) -> ColumnElement[bool]:
    return or_(Outbox.next_attempt_at.is_(None), Outbox.next_attempt_at <= now)  # type: ignore[union-attr]


def _claim(due: Any, now: datetime) -> Any:
    return (
        update(Outbox)
        .where(Outbox.id.in_(due.scalar_subquery()))  # type: ignore[union-attr]
        .values(
            state=OutboxState.SENDING,
            claimed_at=now,
            attempts=Outbox.attempts + 1,
            updated_at=now,
        )
        .returning(Outbox)
        .execution_options(synchronize_session=False)
    )


async def claim_due(
    *, session: AsyncSession, now: datetime, limit: int, shop_id: int | None = None
) -> list[Outbox]:
    """Move up to `limit` due rows to `sending` and return them, transactional lane first.

    On PostgreSQL the rows are locked with FOR UPDATE SKIP LOCKED, so several dispatchers can
    claim at once without taking the same row; SQLite has one writer at a time anyway.

    With `shop_id` (one bot's lane) the claim reads one lane after another, each an exact
    range of `ix_outbox_shop_claim` (shop, state, priority, due_at, id) already in claim
    order: its cost does not grow with the backlog, nor with rows due later.
    """
    if shop_id is not None:
        return await _claim_shop(session, now, limit, shop_id)
    due = (
        select(Outbox.id)
        .where(Outbox.state == OutboxState.SCHEDULED, Outbox.due_at <= now, _eligible(now))
        .order_by(Outbox.priority, Outbox.due_at, Outbox.id)  # type: ignore[arg-type]
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = list((await session.scalars(_claim(due, now))).all())
    rows.sort(key=lambda row: (row.priority, row.due_at, row.id))
    return rows


async def _claim_shop(
    session: AsyncSession, now: datetime, limit: int, shop_id: int
) -> list[Outbox]:
    rows: list[Outbox] = []
    for priority in sorted(set(LANE_PRIORITY.values())):
        wanted = limit - len(rows)
        if wanted <= 0:
            break
        due = (
            select(Outbox.id)
            .where(
                Outbox.shop_id == shop_id,
                Outbox.state == OutboxState.SCHEDULED,
                Outbox.priority == priority,
                Outbox.due_at <= now,
                _eligible(now),
            )
            .order_by(Outbox.due_at, Outbox.id)  # type: ignore[arg-type]
            .limit(wanted)
            .with_for_update(skip_locked=True)
        )
        claimed = list((await session.scalars(_claim(due, now))).all())
        claimed.sort(key=lambda row: (row.due_at, row.id))
        rows.extend(claimed)
    return rows


async def due_shops(
    *, session: AsyncSession, now: datetime, shop_ids: Iterable[int] | None = None
) -> list[int]:
    """Return the shops that have rows due now (one index probe per shop and lane).

    `shop_ids` limits the question to those shops (the ones without a running lane).
    """
    probes = []
    for priority in sorted(set(LANE_PRIORITY.values())):
        probes.append(
            select(Outbox.id)
            .where(
                Outbox.shop_id == Shop.id,
                Outbox.state == OutboxState.SCHEDULED,
                Outbox.priority == priority,
                Outbox.due_at <= now,
                _eligible(now),
            )
            .exists()
        )
    query = select(Shop.id).where(or_(*probes)).order_by(Shop.id)
    if shop_ids is not None:
        wanted = sorted(set(shop_ids))
        if not wanted:
            return []
        query = query.where(Shop.id.in_(wanted))  # type: ignore[union-attr]
    return [shop_id for shop_id in await session.scalars(query) if shop_id is not None]


@dataclass(frozen=True, slots=True)
class Recovered:
    """What `recover_stale` did: rows declared unknown, rows put back to be sent again."""

    unknown: int
    requeued: int


async def recover_stale(
    *, session: AsyncSession, now: datetime, lease: timedelta, max_attempts: int
) -> Recovered:
    """Resolve rows left in `sending` longer than the lease by a dispatcher that died.

    Such a row may or may not have reached Telegram, which has no idempotency key: it becomes
    `unknown` and is never sent again, unless it was scheduled `at_least_once` and has attempts
    left, in which case it is scheduled again.
    """
    stale = and_(Outbox.state == OutboxState.SENDING, Outbox.claimed_at < now - lease)  # type: ignore[operator]
    requeue = update(Outbox).where(
        stale,
        Outbox.at_least_once.is_(True),
        Outbox.attempts < max_attempts,  # type: ignore[attr-defined]
    )
    requeued = await session.execute(
        requeue.values(
            state=OutboxState.SCHEDULED,
            next_attempt_at=now,
            last_error="dispatcher stopped while sending; sent again (at least once)",
            updated_at=now,
        ).execution_options(synchronize_session=False)
    )
    unknown = await session.execute(
        update(Outbox)
        .where(stale)
        .values(
            state=OutboxState.UNKNOWN,
            last_error="dispatcher stopped while sending; delivery unknown",
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return Recovered(unknown=unknown.rowcount or 0, requeued=requeued.rowcount or 0)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- recording outcomes


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one claimed row; `record_outcomes` writes many of them at once."""

    outbox_id: int
    state: OutboxState
    skip_reason: str | None = None
    error: str | None = None
    message_id: int | None = None
    sent_at: datetime | None = None
    next_attempt_at: datetime | None = None
    release_attempt: bool = False  # postponed before any send: the claim's attempt is undone


async def record_outcomes(
    *, session: AsyncSession, outcomes: Iterable[Outcome], now: datetime
) -> None:
    """Write outcomes with a few UPDATEs: one per group of rows that get the same values.

    Sent rows share one statement whatever their message ids and times. Only rows still
    `sending` (or already declared `unknown` by a recovery) are touched.
    """
    sent: list[Outcome] = []
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for outcome in outcomes:
        if outcome.state is OutboxState.SENT:
            sent.append(outcome)
            continue
        key = (
            outcome.state,
            outcome.skip_reason,
            (outcome.error or "")[:2000] or None,
            outcome.next_attempt_at,
            outcome.release_attempt,
        )
        groups[key].append(outcome.outbox_id)
    if sent:
        # One UPDATE for all sent rows, executed with one parameter set per row (executemany:
        # a single prepared statement, pipelined by asyncpg, looped in C by sqlite3).
        await session.execute(
            _SENT,
            [
                {
                    "row_id": o.outbox_id,
                    "message_id": o.message_id,
                    "sent_at": o.sent_at,
                    "now": now,
                }
                for o in sent
            ],
        )
    for (state, reason, error, next_attempt_at, release), ids in groups.items():
        values = {"state": state, "skip_reason": reason, "last_error": error, "updated_at": now}
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        if release:
            values["attempts"] = Outbox.attempts - 1
        for start in range(0, len(ids), _CHUNK):
            await _update_ids(session, ids[start : start + _CHUNK], values)


_table = Outbox.__table__
_SENT = (
    update(_table)
    .where(
        _table.c.id == bindparam("row_id"),
        or_(_table.c.state == OutboxState.SENDING, _table.c.state == OutboxState.UNKNOWN),
    )
    .values(
        state=OutboxState.SENT.value,
        telegram_message_id=bindparam("message_id"),
        sent_at=bindparam("sent_at"),
        skip_reason=None,
        last_error=None,
        updated_at=bindparam("now"),
    )
)


async def _update_ids(session: AsyncSession, ids: Sequence[int], values: dict[str, Any]) -> None:
    statement = (
        update(Outbox)
        .where(
            Outbox.id.in_(ids),  # type: ignore[union-attr]
            Outbox.state.in_((OutboxState.SENDING, OutboxState.UNKNOWN)),  # type: ignore[attr-defined]
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    await session.execute(statement)


# ------------------------------------------------------------------------- reachability


async def mark_unreachable(
    *, session: AsyncSession, shop_id: int, customer_id: int, now: datetime
) -> int:
    """Mark a customer unreachable (blocked the bot, chat gone); skip their pending rows.

    Returns how many scheduled rows were skipped with reason `unreachable`.
    """
    await session.execute(
        update(Customer)
        .where(
            Customer.shop_id == shop_id,
            Customer.id == customer_id,
            Customer.unreachable_since.is_(None),  # type: ignore[union-attr]
        )
        .values(unreachable_since=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(
        update(Outbox)
        .where(
            Outbox.shop_id == shop_id,
            Outbox.customer_id == customer_id,
            Outbox.state == OutboxState.SCHEDULED,
        )
        .values(state=OutboxState.SKIPPED, skip_reason="unreachable", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0  # type: ignore[attr-defined]


async def mark_reachable(
    *, session: AsyncSession, shop_id: int, customer_id: int, now: datetime
) -> bool:
    """Clear a customer's unreachable mark (they pressed /start again); True if it was set."""
    result = await session.execute(
        update(Customer)
        .where(
            Customer.shop_id == shop_id,
            Customer.id == customer_id,
            Customer.unreachable_since.is_not(None),  # type: ignore[union-attr]
        )
        .values(unreachable_since=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# ------------------------------------------------------------------ what suppression reads


async def shops_by_id(*, session: AsyncSession, shop_ids: Iterable[int]) -> dict[int, Shop]:
    """Return the shops with these ids."""
    ids = sorted(set(shop_ids))
    if not ids:
        return {}
    rows = await session.scalars(select(Shop).where(Shop.id.in_(ids)))  # type: ignore[union-attr]
    return {shop.id: shop for shop in rows if shop.id is not None}


async def customers_by_id(
    *, session: AsyncSession, keys: Iterable[tuple[int, int]]
) -> dict[int, Customer]:
    """Return customers by id for (shop_id, customer_id) pairs, never another shop's."""
    wanted = set(keys)
    result: dict[int, Customer] = {}
    ids = sorted({customer_id for _, customer_id in wanted})
    for start in range(0, len(ids), _CHUNK):
        query = select(Customer).where(Customer.id.in_(ids[start : start + _CHUNK]))  # type: ignore[union-attr]
        for customer in await session.scalars(query):
            if (customer.shop_id, customer.id) in wanted:
                result[customer.id] = customer  # type: ignore[index]
    return result


async def excluded_topics(
    *, session: AsyncSession, keys: Iterable[tuple[int, int, str]]
) -> set[tuple[int, int, str]]:
    """Return which (shop_id, customer_id, topic) triples the customer said "not interested" to.

    Read per shop and customer (`uq_exclusions_customer_topic`), never across shops.
    """
    wanted = set(keys)
    if not wanted:
        return set()
    by_shop: dict[int, set[int]] = defaultdict(set)
    for shop_id, customer_id, _ in wanted:
        by_shop[shop_id].add(customer_id)
    topics = sorted({topic for _, _, topic in wanted})
    found: set[tuple[int, int, str]] = set()
    for shop_id, customers in sorted(by_shop.items()):
        customer_ids = sorted(customers)
        for start in range(0, len(customer_ids), _CHUNK):
            query = select(Exclusion.shop_id, Exclusion.customer_id, Exclusion.topic).where(
                Exclusion.shop_id == shop_id,
                Exclusion.customer_id.in_(customer_ids[start : start + _CHUNK]),  # type: ignore[attr-defined]
                Exclusion.topic.in_(topics),  # type: ignore[attr-defined]
            )
            for row_shop, customer_id, topic in await session.execute(query):
                if (row_shop, customer_id, topic) in wanted:
                    found.add((row_shop, customer_id, topic))
    return found


async def recent_promo_sends(
    *,
    session: AsyncSession,
    shop_id: int,
    customer_ids: Iterable[int],
    since: datetime,
    exclude_ids: Iterable[int] = (),
) -> dict[int, list[datetime]]:
    """Return, per customer of the shop, when promo messages went out (or may have) after `since`.

    Read by shop and customer (`ix_outbox_customer_state`): the cost follows those customers'
    rows, not the whole send history.
    """
    ids = sorted(set(customer_ids))
    skip = set(exclude_ids)
    moment = func.coalesce(Outbox.sent_at, Outbox.claimed_at)
    found: dict[int, list[datetime]] = defaultdict(list)
    for start in range(0, len(ids), _CHUNK):
        query = select(Outbox.id, Outbox.customer_id, Outbox.sent_at, Outbox.claimed_at).where(
            Outbox.shop_id == shop_id,
            Outbox.customer_id.in_(ids[start : start + _CHUNK]),  # type: ignore[attr-defined]
            Outbox.state.in_(_COUNTED_STATES),  # type: ignore[attr-defined]
            Outbox.lane == Lane.PROMO,
            moment > since,
        )
        for outbox_id, customer_id, sent_at, claimed_at in await session.execute(query):
            if outbox_id not in skip:
                found[customer_id].append(sent_at or claimed_at)
    return found


# ----------------------------------------------------------------------------- reports


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """Rows due now and waiting, and how late the oldest of them is."""

    depth: int
    oldest_due_at: datetime | None

    def lag(self, now: datetime) -> float:
        """Return how many seconds the oldest due row has waited (0 when none waits)."""
        if self.oldest_due_at is None:
            return 0.0
        return max(0.0, (now - self.oldest_due_at).total_seconds())


def _due_conditions(now: datetime) -> list[ColumnElement[bool]]:
    return [
        Outbox.state == OutboxState.SCHEDULED,
        Outbox.due_at <= now,
        or_(Outbox.next_attempt_at.is_(None), Outbox.next_attempt_at <= now),  # type: ignore[union-attr]
    ]


async def queue_depth(
    *, session: AsyncSession, now: datetime, shop_id: int | None = None
) -> QueueDepth:
    """Count rows that are due now but not yet claimed, and find the oldest due_at."""
    query = select(func.count(), func.min(Outbox.due_at)).where(*_due_conditions(now))
    if shop_id is not None:
        query = query.where(Outbox.shop_id == shop_id)
    depth, oldest = (await session.execute(query)).one()
    if oldest is not None and oldest.tzinfo is None:  # min() of a naive SQLite column
        from datetime import UTC

        oldest = oldest.replace(tzinfo=UTC)
    return QueueDepth(depth=int(depth or 0), oldest_due_at=oldest)


async def outbox_stats(
    *, session: AsyncSession, now: datetime, shop_id: int | None = None
) -> dict[str, Any]:
    """Count rows by state and skip reason, with the queue depth and the oldest due lag."""
    by_state = select(Outbox.state, func.count()).group_by(Outbox.state)
    by_reason = (
        select(Outbox.skip_reason, func.count())
        .where(Outbox.state == OutboxState.SKIPPED)
        .group_by(Outbox.skip_reason)
    )
    if shop_id is not None:
        by_state = by_state.where(Outbox.shop_id == shop_id)
        by_reason = by_reason.where(Outbox.shop_id == shop_id)
    states = {state.value: 0 for state in OutboxState}
    for state, count in await session.execute(by_state):
        states[state] = int(count)
    reasons = {
        (reason or "unspecified"): int(count) for reason, count in await session.execute(by_reason)
    }
    queue = await queue_depth(session=session, now=now, shop_id=shop_id)
    return {
        "shop_id": shop_id,
        "states": states,
        "skipped": dict(sorted(reasons.items())),
        "queue_depth": queue.depth,
        "oldest_due_at": queue.oldest_due_at.isoformat() if queue.oldest_due_at else None,
        "oldest_due_lag_seconds": round(queue.lag(now), 3),
        "total": sum(states.values()),
    }


__all__ = [
    "Outcome",
    "QueueDepth",
    "Recovered",
    "cancel_by_prefix",
    "cancel_by_topic",
    "claim_due",
    "customers_by_id",
    "due_shops",
    "excluded_topics",
    "get_outbox",
    "list_outbox",
    "mark_reachable",
    "mark_unreachable",
    "outbox_stats",
    "queue_depth",
    "recent_promo_sends",
    "record_outcomes",
    "recover_stale",
    "schedule",
    "schedule_many",
    "shops_by_id",
]

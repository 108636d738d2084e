"""The inbox: shop webhook deliveries stored before they are acknowledged, then applied.

The web layer writes with `store_deliveries` (one multi-row INSERT … ON CONFLICT DO NOTHING per
group of concurrent requests, through a plain connection: no ORM objects on the hot path). The
worker reads with `due_deliveries` / `earlier_pending`, takes one row at a time with
`lock_delivery` (FOR UPDATE SKIP LOCKED on PostgreSQL) and records the outcome.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.models import Inbox, InboxState, Shop

INBOX = Inbox.__table__  # type: ignore[attr-defined]
SHOPS = Shop.__table__  # type: ignore[attr-defined]
MAX_ERROR = 2000


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A verified delivery about to be stored."""

    shop_id: int
    platform: str
    topic: str
    delivery_key: str
    headers: Mapping[str, str]
    body: bytes
    received_at: datetime
    parked_reason: str | None = None

    def row(self) -> dict[str, Any]:
        """Return the inbox row's column values."""
        parked = self.parked_reason is not None
        return {
            "shop_id": self.shop_id,
            "platform": self.platform,
            "topic": self.topic[:64],
            "delivery_key": self.delivery_key[:255],
            "headers": dict(self.headers),
            "body": self.body,
            "state": InboxState.PARKED.value if parked else InboxState.PENDING.value,
            "attempts": 0,
            "next_attempt_at": self.received_at,
            "last_error": self.parked_reason[:MAX_ERROR] if self.parked_reason else None,
            "received_at": self.received_at,
        }


def _insert_ignoring_duplicates(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return (
        insert(INBOX)
        .on_conflict_do_nothing(index_elements=["shop_id", "delivery_key"])
        .returning(INBOX.c.shop_id, INBOX.c.delivery_key)
    )


# One statement for any batch size (one prepared statement on PostgreSQL): rows as arrays.
_PG_INSERT = text(
    """
    INSERT INTO inbox (shop_id, platform, topic, delivery_key, headers, body, state, attempts,
                       next_attempt_at, last_error, received_at)
    SELECT shop_id, platform, topic, delivery_key, CAST(headers AS jsonb), body, state, 0,
           received_at, last_error, received_at
    FROM unnest(CAST(:shop_id AS bigint[]), CAST(:platform AS text[]), CAST(:topic AS text[]),
                CAST(:delivery_key AS text[]), CAST(:headers AS text[]), CAST(:body AS bytea[]),
                CAST(:state AS text[]), CAST(:last_error AS text[]),
                CAST(:received_at AS timestamptz[]))
         AS rows(shop_id, platform, topic, delivery_key, headers, body, state, last_error,
                 received_at)
    ON CONFLICT (shop_id, delivery_key) DO NOTHING
    RETURNING shop_id, delivery_key
    """
)


def _columns(deliveries: Sequence[NewDelivery]) -> dict[str, list[Any]]:
    rows = [d.row() for d in deliveries]
    columns: dict[str, list[Any]] = {
        name: [row[name] for row in rows]
        for name in ("shop_id", "platform", "topic", "delivery_key", "body", "state")
    }
    columns["headers"] = [json.dumps(row["headers"]) for row in rows]
    columns["last_error"] = [row["last_error"] for row in rows]
    columns["received_at"] = [row["received_at"] for row in rows]
    return columns


async def store_deliveries(
    *,
    connection: AsyncConnection,
    deliveries: Sequence[NewDelivery],
    touched: Mapping[int, datetime],
) -> set[tuple[int, str]]:
    """Insert deliveries, skipping already stored keys; note each touched shop's last delivery.

    Returns the (shop_id, delivery_key) pairs that were new.
    """
    inserted: set[tuple[int, str]] = set()
    if deliveries and connection.dialect.name == "postgresql":
        result = await connection.execute(_PG_INSERT, _columns(deliveries))
        inserted = {(row[0], row[1]) for row in result.all()}
    elif deliveries:
        statement = _insert_ignoring_duplicates(connection.dialect.name)
        result = await connection.execute(statement, [d.row() for d in deliveries])
        inserted = {(row[0], row[1]) for row in result.all()}
    for shop_id, at in touched.items():
        await connection.execute(
            update(SHOPS)
            .where(
                SHOPS.c.id == shop_id,
                or_(SHOPS.c.last_delivery_at.is_(None), SHOPS.c.last_delivery_at < at),
            )
            .values(last_delivery_at=at)
        )
    return inserted


def _pending() -> Select[tuple[Inbox]]:
    return select(Inbox).where(Inbox.state == InboxState.PENDING)


async def due_deliveries(*, session: AsyncSession, now: datetime, limit: int) -> list[Inbox]:
    """Return pending deliveries whose time has come, oldest first."""
    query = _pending().where(Inbox.next_attempt_at <= now).order_by(Inbox.id).limit(limit)  # type: ignore[arg-type]
    return list((await session.scalars(query)).all())


async def earlier_pending(
    *, session: AsyncSession, before_id: int, exclude: Sequence[int], limit: int = 1000
) -> list[Inbox]:
    """Return pending deliveries older than before_id outside `exclude` (waiting or in work)."""
    query = _pending().where(Inbox.id < before_id)  # type: ignore[operator]
    if exclude:
        query = query.where(Inbox.id.not_in(exclude))  # type: ignore[union-attr]
    return list((await session.scalars(query.order_by(Inbox.id).limit(limit))).all())  # type: ignore[arg-type]


async def lock_delivery(*, session: AsyncSession, inbox_id: int) -> Inbox | None:
    """Take a pending delivery for this transaction; None when gone, applied or taken."""
    query = _pending().where(Inbox.id == inbox_id)
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    else:  # SQLite: hold the write lock from the start, so the transaction cannot lose a race
        await session.execute(
            update(Inbox)
            .where(Inbox.id == inbox_id, Inbox.state == InboxState.PENDING)  # type: ignore[arg-type]
            .values(attempts=Inbox.attempts)
            .execution_options(synchronize_session=False)
        )
    return (await session.scalars(query)).first()


async def delivery_state(*, session: AsyncSession, inbox_id: int) -> str | None:
    """Return the delivery's state, or None when it no longer exists."""
    return await session.scalar(select(Inbox.state).where(Inbox.id == inbox_id))


async def mark_done(*, session: AsyncSession, inbox_id: int, now: datetime) -> None:
    """Record that the delivery was applied."""
    await session.execute(
        update(Inbox)
        .where(Inbox.id == inbox_id)  # type: ignore[arg-type]
        .values(state=InboxState.DONE, processed_at=now, last_error=None)
    )


async def mark_failed(
    *,
    session: AsyncSession,
    inbox_id: int,
    error: str,
    now: datetime,
    max_attempts: int,
    base_delay: timedelta,
    max_delay: timedelta,
    permanent: bool = False,
) -> str | None:
    """Count a failed attempt: retry later with exponential backoff, or park; return the state."""
    row = await lock_delivery(session=session, inbox_id=inbox_id)
    if row is None:
        return None
    attempts = row.attempts + 1
    parked = permanent or attempts >= max_attempts
    delay = min(max_delay, base_delay * (2 ** (attempts - 1)))
    state = InboxState.PARKED if parked else InboxState.PENDING
    await session.execute(
        update(Inbox)
        .where(Inbox.id == inbox_id)  # type: ignore[arg-type]
        .values(
            state=state,
            attempts=attempts,
            next_attempt_at=now if parked else now + delay,
            last_error=error[:MAX_ERROR],
        )
    )
    return state.value


async def list_failed(*, session: AsyncSession, shop_id: int | None = None) -> list[Inbox]:
    """Return parked deliveries and pending ones that already failed, oldest first."""
    query = select(Inbox).where(
        or_(
            Inbox.state == InboxState.PARKED,
            (Inbox.state == InboxState.PENDING) & (Inbox.attempts > 0),  # type: ignore[operator]
        )
    )
    if shop_id is not None:
        query = query.where(Inbox.shop_id == shop_id)
    return list((await session.scalars(query.order_by(Inbox.id))).all())  # type: ignore[arg-type]


async def get_delivery(*, session: AsyncSession, inbox_id: int) -> Inbox | None:
    """Return one delivery."""
    return await session.get(Inbox, inbox_id)


async def retry_delivery(*, session: AsyncSession, inbox_id: int, now: datetime) -> Inbox | None:
    """Put a parked (or waiting) delivery back in line now, with a fresh attempt count."""
    row = await session.get(Inbox, inbox_id)
    if row is None or row.state == InboxState.DONE:
        return row
    row.state = InboxState.PENDING
    row.attempts = 0
    row.next_attempt_at = now
    session.add(row)
    await session.flush()
    return row


@dataclass(frozen=True, slots=True)
class Backlog:
    """How a shop's inbox looks."""

    pending: int
    retrying: int
    parked: int
    oldest_pending_at: datetime | None


async def shop_backlog(*, session: AsyncSession, shop_id: int) -> Backlog:
    """Count the shop's pending, retrying and parked deliveries."""
    query = select(
        func.count().filter(Inbox.state == InboxState.PENDING),
        func.count().filter((Inbox.state == InboxState.PENDING) & (Inbox.attempts > 0)),  # type: ignore[operator]
        func.count().filter(Inbox.state == InboxState.PARKED),
        func.min(Inbox.received_at).filter(Inbox.state == InboxState.PENDING),
    ).where(Inbox.shop_id == shop_id, Inbox.state != InboxState.DONE)
    pending, retrying, parked, oldest = (await session.execute(query)).one()
    return Backlog(int(pending), int(retrying), int(parked), oldest)

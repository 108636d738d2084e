"""The inbox: shop webhook deliveries stored before they are acknowledged, then applied.

The web layer writes with `store_deliveries` (one multi-row INSERT … ON CONFLICT DO NOTHING per
group of concurrent requests, through a plain connection: no ORM objects on the hot path), which
also notes on the shop when deliveries arrived and how many failed their signature check. The
worker reads with `due_deliveries` / `waiting_before`, takes one row at a time with
`lock_delivery` (FOR UPDATE SKIP LOCKED on PostgreSQL), records the outcome, and `postpone`s
rows that must wait behind a failing one (no attempt counted) so the next claim reaches newer
rows. Errors are stored escaped (`printable`): they may quote the text that caused them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, case, func, or_, select, text, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.models import Inbox, InboxState, Shop
from integrations.base import ParseError, printable

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
            "last_error": (
                printable(self.parked_reason, MAX_ERROR) if self.parked_reason else None
            ),
            "received_at": self.received_at,
        }


_RACES = ("23505", "23P01")  # unique / exclusion violation: two writers, the retry wins


def _sqlstate(exc: DBAPIError) -> str | None:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code if isinstance(code, str) else None


def is_permanent(exc: BaseException) -> bool:
    """Tell whether the same work would fail the same way again (the data), not pass later.

    Permanent: a ParseError (InvalidValue among them), data the database refuses (SQLSTATE
    class 22, integrity violations other than a unique race, SQLite's OverflowError and
    "NOT NULL"/"CHECK" failures), values Python cannot encode or compute (ValueError,
    ArithmeticError). Transient: everything else: connection errors, timeouts, deadlocks and
    serialization failures (SQLSTATE 08, 40, 53, 57…), a unique race with another worker, and
    unknown errors (a deploy may fix them).
    """
    if isinstance(exc, ParseError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return False
        code = _sqlstate(exc)
        if code is not None:
            if code.startswith("22"):
                return True
            if code.startswith("23"):
                return code not in _RACES
            return False
        if isinstance(exc, IntegrityError):
            return "UNIQUE constraint failed" not in str(exc.orig)
        return isinstance(exc, DataError)
    if isinstance(exc, StatementError) and exc.orig is not None:  # a bind parameter failed
        return is_permanent(exc.orig)
    if isinstance(exc, OSError):  # connection errors, timeouts
        return False
    return isinstance(exc, ValueError | ArithmeticError)


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


@dataclass(slots=True)
class ShopNote:
    """What a group of requests tells about one shop's webhook signatures."""

    verified: bool = False
    bad_signatures: int = 0
    last_bad_at: datetime | None = None

    def add(self, at: datetime, verified: bool) -> None:
        """Count one request: a verified delivery, or one that failed its signature check."""
        if verified:
            self.verified = True
            return
        self.bad_signatures += 1
        self.last_bad_at = at if self.last_bad_at is None else max(self.last_bad_at, at)


async def store_deliveries(
    *,
    connection: AsyncConnection,
    deliveries: Sequence[NewDelivery],
    touched: Mapping[int, datetime],
    notes: Mapping[int, ShopNote] | None = None,
) -> set[tuple[int, str]]:
    """Insert deliveries, skipping already stored keys; note each touched shop's last delivery.

    `notes` count signature failures per shop; a verified delivery resets the count (it is
    "failures since the last authentic delivery"). Returns the (shop_id, delivery_key) pairs
    that were new.
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
    for shop_id, note in (notes or {}).items():
        await _note_signatures(connection, shop_id, note)
    return inserted


async def _note_signatures(connection: AsyncConnection, shop_id: int, note: ShopNote) -> None:
    failures = SHOPS.c.signature_failures
    if note.bad_signatures:
        at = bindparam("bad_at", note.last_bad_at, type_=SHOPS.c.last_signature_failure_at.type)
        last = SHOPS.c.last_signature_failure_at
        await connection.execute(
            update(SHOPS)
            .where(SHOPS.c.id == shop_id)
            .values(
                signature_failures=(0 if note.verified else failures) + note.bad_signatures,
                last_signature_failure_at=case((or_(last.is_(None), last < at), at), else_=last),
            )
        )
    elif note.verified:
        await connection.execute(
            update(SHOPS).where(SHOPS.c.id == shop_id, failures != 0).values(signature_failures=0)
        )


async def stored_body(*, session: AsyncSession, shop_id: int, delivery_key: str) -> bytes | None:
    """Return the body stored under a delivery key, or None."""
    query = select(Inbox.body).where(
        Inbox.shop_id == shop_id,
        Inbox.delivery_key == delivery_key[:255],  # type: ignore[arg-type]
    )
    return await session.scalar(query)


def _pending() -> Select[tuple[Inbox]]:
    return select(Inbox).where(Inbox.state == InboxState.PENDING)


async def due_deliveries(*, session: AsyncSession, now: datetime, limit: int) -> list[Inbox]:
    """Return pending deliveries whose time has come, oldest first."""
    query = _pending().where(Inbox.next_attempt_at <= now).order_by(Inbox.id).limit(limit)  # type: ignore[arg-type]
    return list((await session.scalars(query)).all())


@dataclass(frozen=True, slots=True)
class Waiting:
    """A pending delivery older than the batch: waiting for a retry, postponed, or in work."""

    id: int
    shop_id: int
    next_attempt_at: datetime


async def waiting_before(
    *,
    session: AsyncSession,
    before_id: int,
    shop_ids: Sequence[int],
    exclude: Sequence[int],
    per_shop: int,
) -> list[Waiting]:
    """Return the first `per_shop` pending deliveries of each shop older than before_id."""
    if not shop_ids:
        return []
    rank = func.row_number().over(partition_by=Inbox.shop_id, order_by=Inbox.id)
    query = select(Inbox.id, Inbox.shop_id, Inbox.next_attempt_at, rank.label("n")).where(
        Inbox.state == InboxState.PENDING,
        Inbox.id < before_id,  # type: ignore[operator]
        Inbox.shop_id.in_(shop_ids),  # type: ignore[attr-defined]
    )
    if exclude:
        query = query.where(Inbox.id.not_in(exclude))  # type: ignore[union-attr]
    ranked = query.subquery()
    rows = await session.execute(
        select(ranked.c.id, ranked.c.shop_id, ranked.c.next_attempt_at)
        .where(ranked.c.n <= per_shop)
        .order_by(ranked.c.id)
    )
    return [Waiting(*row) for row in rows.all()]


async def deliveries_by_id(*, session: AsyncSession, ids: Sequence[int]) -> list[Inbox]:
    """Return these deliveries (any state), by id."""
    if not ids:
        return []
    query = select(Inbox).where(Inbox.id.in_(ids)).order_by(Inbox.id)  # type: ignore[union-attr, arg-type]
    return list((await session.scalars(query)).all())


async def postpone(*, session: AsyncSession, until: Mapping[int, datetime]) -> int:
    """Move pending deliveries' next attempt later (no attempt counted); return how many moved.

    Rows another worker holds (PostgreSQL) are skipped: they are being applied.
    """
    by_time: dict[datetime, list[int]] = {}
    for inbox_id, at in until.items():
        by_time.setdefault(at, []).append(inbox_id)
    moved = 0
    for at, ids in sorted(by_time.items()):
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            movable = select(Inbox.id).where(
                Inbox.id.in_(chunk),  # type: ignore[union-attr]
                Inbox.state == InboxState.PENDING,
                Inbox.next_attempt_at < at,  # type: ignore[arg-type]
            )
            if session.bind.dialect.name == "postgresql":
                movable = movable.with_for_update(skip_locked=True)
            result = await session.execute(
                update(Inbox)
                .where(Inbox.id.in_(movable.scalar_subquery()))  # type: ignore[union-attr]
                .values(next_attempt_at=at)
                .execution_options(synchronize_session=False)
            )
            moved += result.rowcount or 0  # type: ignore[attr-defined]
    return moved


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


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failed attempt left: parked, or pending until `next_attempt_at`."""

    state: str
    next_attempt_at: datetime


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
) -> Failure | None:
    """Count a failed attempt: retry later with exponential backoff, or park (at once when
    `permanent`); return the outcome, None when the delivery is gone or taken."""
    row = await lock_delivery(session=session, inbox_id=inbox_id)
    if row is None:
        return None
    attempts = row.attempts + 1
    parked = permanent or attempts >= max_attempts
    delay = min(max_delay, base_delay * (2 ** (attempts - 1)))
    state = InboxState.PARKED if parked else InboxState.PENDING
    next_attempt_at = now if parked else now + delay
    await session.execute(
        update(Inbox)
        .where(Inbox.id == inbox_id)  # type: ignore[arg-type]
        .values(
            state=state,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            last_error=printable(error, MAX_ERROR),
        )
    )
    return Failure(state.value, next_attempt_at)


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
    """Put a parked (or waiting) delivery back in line now, with a fresh attempt count.

    The deliveries postponed behind it (same shop, later, waiting for exactly its next attempt
    time) come back in line too; the worker keeps them behind it if it fails again.
    """
    row = await session.get(Inbox, inbox_id)
    if row is None or row.state == InboxState.DONE:
        return row
    held_until = row.next_attempt_at if row.state == InboxState.PENDING else None
    row.state = InboxState.PENDING
    row.attempts = 0
    row.next_attempt_at = now
    session.add(row)
    await session.flush()
    if held_until is not None and held_until > now:
        await session.execute(
            update(Inbox)
            .where(
                Inbox.shop_id == row.shop_id,  # type: ignore[arg-type]
                Inbox.state == InboxState.PENDING,
                Inbox.id > inbox_id,  # type: ignore[operator]
                Inbox.next_attempt_at == held_until,  # type: ignore[arg-type]
            )
            .values(next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
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

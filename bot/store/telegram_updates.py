"""The ledger of Telegram updates: one row per bot and update_id, claimed before handling.

`claim_update` inserts the row (INSERT … ON CONFLICT DO NOTHING on the unique bot_id +
update_id) or takes over a claim that was released for a retry or went stale; the row then ends
`done`, `failed` or `rejected` (a body that could not be read). A row whose fingerprint differs
holds another update under the same id (Telegram picks a new random id sequence after a week
of silence; a test double may restart at 1): it is reused for the new one. Rows are pruned
after a few days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import TelegramUpdate
from bot.models import TelegramUpdateState as State

UPDATES = TelegramUpdate.__table__  # type: ignore[attr-defined]
MAX_ERROR = 2000


class ClaimOutcome(StrEnum):
    """What claiming an update found."""

    MINE = "mine"  # handle it now
    SEEN = "seen"  # handled, failed or rejected before: a duplicate
    BUSY = "busy"  # someone holds a fresh claim on it
    EXHAUSTED = "exhausted"  # it was tried too often; now recorded failed


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of a claim and, when it is ours, the row and the attempt number."""

    outcome: ClaimOutcome
    row_id: int | None = None
    attempts: int = 0


def clean_error(text: str) -> str:
    """Return an error text any backend can store (no NUL, no lone surrogates), truncated."""
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return safe[:MAX_ERROR]


def _insert_new(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return (
        dialect_insert(UPDATES)
        .on_conflict_do_nothing(index_elements=["bot_id", "update_id"])
        .returning(UPDATES.c.id)
    )


async def claim_update(
    *,
    session: AsyncSession,
    shop_id: int,
    bot_id: int,
    update_id: int,
    fingerprint: str,
    now: datetime,
    stale_before: datetime,
    max_attempts: int,
) -> Claim:
    """Claim an update for handling, unless it was seen or someone holds a fresh claim."""
    fresh = {
        "shop_id": shop_id,
        "state": State.HANDLING.value,
        "attempts": 1,
        "fingerprint": fingerprint,
        "error": None,
        "received_at": now,
        "claimed_at": now,
        "finished_at": None,
    }
    row = {**fresh, "bot_id": bot_id, "update_id": update_id}
    new_id = (await session.execute(_insert_new(session.bind.dialect.name), row)).scalar()
    if new_id is not None:
        return Claim(ClaimOutcome.MINE, new_id, 1)
    key = (UPDATES.c.bot_id == bot_id, UPDATES.c.update_id == update_id)
    reused = (
        await session.execute(
            update(UPDATES)
            .where(*key, UPDATES.c.fingerprint != fingerprint)
            .values(**fresh)
            .returning(UPDATES.c.id)
        )
    ).first()
    if reused is not None:
        return Claim(ClaimOutcome.MINE, reused[0], 1)
    claimable = or_(
        UPDATES.c.state == State.RETRY.value,
        (UPDATES.c.state == State.HANDLING.value) & (UPDATES.c.claimed_at < stale_before),
    )
    taken = (
        await session.execute(
            update(UPDATES)
            .where(*key, claimable, UPDATES.c.attempts < max_attempts)
            .values(state=State.HANDLING.value, claimed_at=now, attempts=UPDATES.c.attempts + 1)
            .returning(UPDATES.c.id, UPDATES.c.attempts)
        )
    ).first()
    if taken is not None:
        return Claim(ClaimOutcome.MINE, taken[0], taken[1])
    given_up = (
        await session.execute(
            update(UPDATES)
            .where(*key, claimable)
            .values(
                state=State.FAILED.value,
                finished_at=now,
                error=f"gave up after {max_attempts} attempts",
            )
            .returning(UPDATES.c.id)
        )
    ).first()
    if given_up is not None:
        return Claim(ClaimOutcome.EXHAUSTED, given_up[0])
    state = (await session.execute(select(UPDATES.c.state).where(*key))).scalar()
    if state in (State.DONE, State.FAILED, State.REJECTED):
        return Claim(ClaimOutcome.SEEN)
    return Claim(ClaimOutcome.BUSY)


async def finish_update(
    *, session: AsyncSession, row_id: int, state: State, now: datetime, error: str | None = None
) -> None:
    """Record how handling a claimed update ended (done, failed, or retry: released)."""
    await session.execute(
        update(UPDATES)
        .where(UPDATES.c.id == row_id)
        .values(
            state=state.value,
            error=clean_error(error) if error else None,
            finished_at=None if state is State.RETRY else now,
        )
    )


async def record_rejected(
    *,
    session: AsyncSession,
    shop_id: int,
    bot_id: int,
    update_id: int | None,
    fingerprint: str,
    error: str,
    now: datetime,
) -> bool:
    """Keep an update that could not be read, with why; False when it was recorded before."""
    row = {
        "shop_id": shop_id,
        "bot_id": bot_id,
        "update_id": update_id,
        "fingerprint": fingerprint,
        "state": State.REJECTED.value,
        "attempts": 1,
        "error": clean_error(error),
        "received_at": now,
        "claimed_at": now,
        "finished_at": now,
    }
    if update_id is None:
        await session.execute(insert(UPDATES), row)
        return True
    new_id = (await session.execute(_insert_new(session.bind.dialect.name), row)).scalar()
    return new_id is not None


async def prune_updates(*, session: AsyncSession, before: datetime) -> int:
    """Delete ledger rows received before a moment; return how many."""
    result = await session.execute(delete(UPDATES).where(UPDATES.c.received_at < before))
    return result.rowcount or 0  # type: ignore[attr-defined]


async def list_updates(
    *, session: AsyncSession, shop_id: int, states: tuple[State, ...] = ()
) -> list[TelegramUpdate]:
    """Return the shop's ledger rows, oldest first (optionally only in these states)."""
    query = select(TelegramUpdate).where(TelegramUpdate.shop_id == shop_id)
    if states:
        query = query.where(TelegramUpdate.state.in_([s.value for s in states]))  # type: ignore[attr-defined]
    return list((await session.scalars(query.order_by(TelegramUpdate.id))).all())

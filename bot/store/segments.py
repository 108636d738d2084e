"""Saved segments and audience previews: counts, a sample, and splits by locale and stage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Customer, CustomerMetrics, Segment, Stage
from bot.segments import Scope, SegmentError, audience, check

MAX_NAME = 100


@dataclass(frozen=True, slots=True)
class Preview:
    """Who a definition holds now."""

    count: int
    by_locale: dict[str, int]
    by_stage: dict[str, int]
    sample: list[dict[str, Any]]


async def saved_definitions(*, session: AsyncSession, shop_id: int) -> dict[str, Any]:
    """Return every saved segment of the shop by name (for `segment` conditions)."""
    rows = await session.execute(
        select(Segment.name, Segment.definition).where(Segment.shop_id == shop_id)
    )
    return {name: definition for name, definition in rows.all()}


async def scope_for(*, session: AsyncSession, shop_id: int, now: datetime) -> Scope:
    """Return the compile scope of a shop at a moment."""
    return Scope(shop_id, now, await saved_definitions(session=session, shop_id=shop_id))


async def save_segment(
    *, session: AsyncSession, shop_id: int, name: str, definition: Any, now: datetime
) -> Segment:
    """Create or replace a named segment after checking that it compiles."""
    name = name.strip()
    if not name or len(name) > MAX_NAME or "\x00" in name:
        raise SegmentError(f"a segment name has 1 to {MAX_NAME} characters, got {name!r}")
    saved = await saved_definitions(session=session, shop_id=shop_id)
    saved[name] = definition
    check(definition, saved)  # also refuses a definition that refers to itself
    segment = await get_segment(session=session, shop_id=shop_id, name=name)
    if segment is None:
        segment = Segment(shop_id=shop_id, name=name, created_at=now)
    segment.definition = definition
    segment.updated_at = now
    session.add(segment)
    await session.flush()
    return segment


async def get_segment(*, session: AsyncSession, shop_id: int, name: str) -> Segment | None:
    """Return a saved segment by name."""
    return (
        await session.scalars(
            select(Segment).where(Segment.shop_id == shop_id, Segment.name == name)
        )
    ).first()


async def list_segments(*, session: AsyncSession, shop_id: int) -> list[Segment]:
    """Return the shop's saved segments by name."""
    query = select(Segment).where(Segment.shop_id == shop_id).order_by(Segment.name)
    return list((await session.scalars(query)).all())


async def delete_segment(*, session: AsyncSession, shop_id: int, name: str) -> bool:
    """Delete a saved segment unless another one refers to it; return whether it existed."""
    segment = await get_segment(session=session, shop_id=shop_id, name=name)
    if segment is None:
        return False
    saved = await saved_definitions(session=session, shop_id=shop_id)
    del saved[name]
    for other, definition in saved.items():
        try:
            check(definition, saved)
        except SegmentError:
            raise SegmentError(f"segment {other!r} refers to {name!r}; change it first") from None
    await session.delete(segment)
    await session.flush()
    return True


async def _without_jit(session: AsyncSession) -> None:
    """PostgreSQL: no JIT for the rest of this transaction.

    An audience query over a large shop costs enough to be JIT-compiled, which takes longer
    (130-800 ms here) than the compiled code saves on a query that mostly walks indexes.
    """
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT set_config('jit', 'off', true)"))


async def count_audience(
    *, session: AsyncSession, shop_id: int, definition: Any, now: datetime
) -> int:
    """Count the customers a definition holds now."""
    await _without_jit(session)
    scope = await scope_for(session=session, shop_id=shop_id, now=now)
    query = select(func.count()).select_from(audience(definition, scope).subquery())
    return int(await session.scalar(query) or 0)


async def preview_audience(
    *, session: AsyncSession, shop_id: int, definition: Any, now: datetime, sample: int = 10
) -> Preview:
    """Return the count, a sample and the split by locale and stage of an audience."""
    await _without_jit(session)
    scope = await scope_for(session=session, shop_id=shop_id, now=now)
    ids = audience(definition, scope).subquery()
    c = Customer.__table__.c  # type: ignore[attr-defined]
    m = CustomerMetrics.__table__.c  # type: ignore[attr-defined]
    members = c.id.in_(select(ids.c.id))
    stage = func.coalesce(m.stage, Stage.PROSPECT.value)
    joined = Customer.__table__.outerjoin(  # type: ignore[attr-defined]
        CustomerMetrics.__table__,  # type: ignore[attr-defined]
        m.customer_id == c.id,
    )
    splits: dict[str, dict[str, int]] = {}
    for name, column in (("locale", func.coalesce(c.locale, "")), ("stage", stage)):
        rows = await session.execute(
            select(column, func.count()).select_from(joined).where(members).group_by(column)
        )
        splits[name] = {str(key or "-"): int(n) for key, n in rows.all()}
    rows = await session.execute(
        select(c.id, c.first_name, c.last_name, c.locale, stage)
        .select_from(joined)
        .where(members)
        .order_by(c.id)
        .limit(sample)
    )
    people = [
        {
            "id": row[0],
            "name": " ".join(part for part in (row[1], row[2]) if part) or None,
            "locale": row[3],
            "stage": row[4],
        }
        for row in rows.all()
    ]
    return Preview(sum(splits["locale"].values()), splits["locale"], splits["stage"], people)

"""Promo code pools: import, generate from a pattern, issue one code per customer atomically."""

from __future__ import annotations

import codecs
import csv
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import PromoCode, PromoPool

# No 0/O, 1/I/L: codes are read off a phone screen and typed at checkout.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_PATTERN = re.compile(r"^[A-Z0-9-]*X{4,}[A-Z0-9-]*$")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$")


class CodeError(ValueError):
    """A code or pattern is not acceptable."""


HEADERS = ("code", "codes", "promo_code", "promo code", "код", "промокод", "kod", "kod rabatowy")
DELIMITERS = ",;\t"


def _decode(data: bytes) -> str:
    """Decode a code file as shops save it: UTF-8 (BOM or not), UTF-16, or Windows-1251."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding)
    odd, even = data[1::2].count(0), data[0::2].count(0)
    if max(odd, even) > len(data) // 4:  # UTF-16 without a BOM: ASCII has a zero byte each
        return data.decode("utf-16-le" if odd > even else "utf-16-be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1251")  # Excel's "CSV" in ru/uk locales; every byte decodes


def read_code_file(data: bytes) -> list[tuple[int, str]]:
    """Return (line number, code) from the first column of a CSV/TSV file; refuse bad files.

    The delimiter is `,`, `;` (Excel's default in ru/uk/pl) or a tab; a header row such as
    `code` is skipped. An empty file, or a row whose code is not usable, is a CodeError that
    names the line.
    """
    try:
        text = _decode(data)
    except UnicodeDecodeError as exc:
        raise CodeError(f"cannot read the file as text ({exc.reason})") from None
    lines = text.splitlines()
    sample = next((line for line in lines if line.strip()), "")
    delimiter = max(DELIMITERS, key=sample.count) if any(d in sample for d in DELIMITERS) else ","
    found: list[tuple[int, str]] = []
    for number, row in enumerate(csv.reader(lines, delimiter=delimiter), start=1):
        code = row[0].strip().strip("\ufeff") if row else ""
        if not code:
            continue
        if not found and code.lower() in HEADERS:
            continue
        if not _CODE.fullmatch(code):
            raise CodeError(f"line {number}: {code!r} {_why_unusable(code)}")
        found.append((number, code))
    if not found:
        raise CodeError("the file has no codes")
    return found


def _why_unusable(code: str) -> str:
    if any(ch.isalpha() and not ch.isascii() for ch in code):
        return (
            "is not a usable promo code: use Latin letters (A-Z), digits, '-' and '_' "
            "(customers type codes at checkout, where other alphabets mix up)"
        )
    if len(code) < 3 or len(code) > 64:
        return "is not a usable promo code: a code has 3 to 64 characters"
    return "is not a usable promo code: use Latin letters (A-Z), digits, '-' and '_'"


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """How many codes a pool has left."""

    name: str
    pattern: str | None
    total: int
    issued: int
    available: int | None  # None: generated on demand, never runs out

    @property
    def generated(self) -> bool:
        """Tell whether codes are made on demand from a pattern."""
        return self.pattern is not None


def check_pattern(pattern: str) -> str:
    """Validate a pattern such as SPRING-XXXXXX (at least four X, which become random)."""
    normalized = pattern.strip().upper()
    if not _PATTERN.fullmatch(normalized) or len(normalized) > 64:
        raise CodeError(f"pattern {pattern!r}: use letters, digits, '-' and at least XXXX")
    return normalized


def make_code(pattern: str) -> str:
    """Fill each X of the pattern with a random unambiguous character."""
    return "".join(secrets.choice(ALPHABET) if ch == "X" else ch for ch in pattern)


async def ensure_pool(
    *, session: AsyncSession, shop_id: int, name: str, now: datetime, pattern: str | None = None
) -> PromoPool:
    """Return the shop's pool by name, creating it; set its pattern when one is given."""
    pool = (
        await session.scalars(
            select(PromoPool).where(PromoPool.shop_id == shop_id, PromoPool.name == name)
        )
    ).first()
    if pool is None:
        pool = PromoPool(shop_id=shop_id, name=name, pattern=pattern, created_at=now)
        session.add(pool)
    elif pattern is not None:
        pool.pattern = pattern
    await session.flush()
    return pool


async def import_codes(
    *, session: AsyncSession, shop_id: int, pool: str, codes: Iterable[str], now: datetime
) -> tuple[int, int]:
    """Add codes to a pool; return (added, skipped as duplicates). Bad codes raise CodeError.

    Codes compare case-insensitively (checkouts accept SPRING10 as spring10): a code that
    differs from a stored one, or an earlier one in the file, only in case is a duplicate.
    """
    target = await ensure_pool(session=session, shop_id=shop_id, name=pool, now=now)
    wanted: list[str] = []
    for raw in codes:
        code = raw.strip()
        if not code:
            continue
        if not _CODE.fullmatch(code):
            raise CodeError(f"{code!r} {_why_unusable(code)}")
        wanted.append(code)
    folded = sorted({code.upper() for code in wanted})
    existing: set[str] = set()
    for start in range(0, len(folded), 500):  # bounded IN lists for big files
        chunk = folded[start : start + 500]
        stored = await session.scalars(
            select(func.upper(PromoCode.code)).where(
                PromoCode.shop_id == shop_id,
                func.upper(PromoCode.code).in_(chunk),
            )
        )
        existing.update(stored.all())
    fresh: dict[str, str] = {}
    for code in wanted:
        if code.upper() not in existing:
            fresh.setdefault(code.upper(), code)
    fresh_codes = list(fresh.values())
    session.add_all(
        PromoCode(shop_id=shop_id, pool_id=target.id, code=c, created_at=now) for c in fresh_codes
    )
    await session.flush()
    return len(fresh_codes), len(wanted) - len(fresh_codes)


async def issue_code(
    *,
    session: AsyncSession,
    shop_id: int,
    pool: str,
    customer_id: int,
    now: datetime,
    outbox_id: int | None = None,
) -> str | None:
    """Give the customer a code from the pool (the one they already hold, if any).

    Imported codes are claimed with one UPDATE (FOR UPDATE SKIP LOCKED on PostgreSQL), so two
    dispatchers never hand out the same code. Returns None when the pool is exhausted or
    missing.
    """
    target = (
        await session.scalars(
            select(PromoPool).where(PromoPool.shop_id == shop_id, PromoPool.name == pool)
        )
    ).first()
    if target is None:
        return None
    held = await session.scalar(
        select(PromoCode.code)
        .where(PromoCode.pool_id == target.id, PromoCode.customer_id == customer_id)
        .order_by(PromoCode.id)
        .limit(1)
    )
    if held is not None:
        return held
    if target.pattern:
        return await _generate(session, target, customer_id, outbox_id, now)
    free = (
        select(PromoCode.id)
        .where(PromoCode.pool_id == target.id, PromoCode.customer_id.is_(None))  # type: ignore[union-attr]
        .order_by(PromoCode.id)
        .limit(1)
    )
    if session.bind.dialect.name == "postgresql":
        free = free.with_for_update(skip_locked=True)
    claimed = await session.scalar(
        update(PromoCode)
        .where(PromoCode.id == free.scalar_subquery(), PromoCode.customer_id.is_(None))  # type: ignore[union-attr]
        .values(customer_id=customer_id, outbox_id=outbox_id, issued_at=now)
        .returning(PromoCode.code)
    )
    return claimed


async def _generate(
    session: AsyncSession, pool: PromoPool, customer_id: int, outbox_id: int | None, now: datetime
) -> str:
    assert pool.pattern is not None
    for _attempt in range(10):
        code = make_code(pool.pattern)
        try:
            async with session.begin_nested():
                session.add(
                    PromoCode(
                        shop_id=pool.shop_id,
                        pool_id=pool.id,
                        code=code,
                        customer_id=customer_id,
                        outbox_id=outbox_id,
                        issued_at=now,
                        created_at=now,
                    )
                )
            return code
        except IntegrityError:
            continue
    raise CodeError(f"pool {pool.name!r}: pattern {pool.pattern!r} has too few free codes left")


async def pool_status(*, session: AsyncSession, shop_id: int) -> list[PoolStatus]:
    """Return every pool of the shop with its counts."""
    issued = func.count(PromoCode.customer_id)
    rows = (
        await session.execute(
            select(PromoPool.name, PromoPool.pattern, func.count(PromoCode.id), issued)
            .outerjoin(PromoCode, PromoCode.pool_id == PromoPool.id)
            .where(PromoPool.shop_id == shop_id)
            .group_by(PromoPool.id, PromoPool.name, PromoPool.pattern)
            .order_by(PromoPool.name)
        )
    ).all()
    return [
        PoolStatus(
            name=name,
            pattern=pattern,
            total=total,
            issued=used,
            available=None if pattern else total - used,
        )
        for name, pattern, total, used in rows
    ]


async def codes_of(*, session: AsyncSession, shop_id: int, customer_id: int) -> list[PromoCode]:
    """Return the codes issued to a customer, oldest first."""
    query = (
        select(PromoCode)
        .where(PromoCode.shop_id == shop_id, PromoCode.customer_id == customer_id)
        .order_by(PromoCode.issued_at, PromoCode.id)
    )
    return list((await session.scalars(query)).all())

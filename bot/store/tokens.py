"""Admin API tokens: made once, shown once, stored as a SHA-256, revocable.

A token reads `nudge_<43 URL-safe characters>` (256 random bits). Looking one up hashes what
was presented and compares the stored hash in constant time, so neither the database nor the
comparison learns more than "this token, or none".
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import ApiToken, Shop

PREFIX = "nudge_"
OWNER, SHOP = "owner", "shop"
MAX_NAME = 100


class TokenError(ValueError):
    """A token request that cannot be done; the message says why."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request speaks for: the owner (every shop) or one shop, maybe read-only."""

    token_id: int
    kind: str
    shop_id: int | None
    read_only: bool

    def may_see(self, shop_id: int) -> bool:
        """Tell whether this principal may read the shop (owner: any; shop token: its own)."""
        return self.kind == OWNER or self.shop_id == shop_id


def digest(token: str) -> str:
    """Return the stored form of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _shown(row: ApiToken) -> dict[str, object]:
    return {
        "id": row.id,
        "kind": row.kind,
        "shop_id": row.shop_id,
        "read_only": row.read_only,
        "name": row.name,
        "prefix": row.prefix,
        "created_at": row.created_at.isoformat(),
        "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


async def create_token(
    *,
    session: AsyncSession,
    now: datetime,
    shop_id: int | None = None,
    read_only: bool = False,
    name: str | None = None,
) -> tuple[dict[str, object], str]:
    """Make a token for the owner (no shop) or for a shop; return its record and the token."""
    if name is not None:
        name = name.strip()
        if not name or len(name) > MAX_NAME or not name.isprintable():
            raise TokenError(f"a token name has 1 to {MAX_NAME} printable characters")
    if shop_id is not None and await session.get(Shop, shop_id) is None:
        raise LookupError(f"no shop with id {shop_id}")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        kind=SHOP if shop_id is not None else OWNER,
        shop_id=shop_id,
        read_only=read_only,
        name=name,
        prefix=token[: len(PREFIX) + 6],
        token_hash=digest(token),
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return _shown(row), token


async def list_tokens(*, session: AsyncSession) -> list[dict[str, object]]:
    """Return every token's record (never the token), newest first."""
    rows = await session.scalars(select(ApiToken).order_by(ApiToken.id.desc()))  # type: ignore[union-attr]
    return [_shown(row) for row in rows.all()]


async def revoke_token(*, session: AsyncSession, token_id: int, now: datetime) -> bool:
    """Revoke a token at once; return False when it does not exist (revoking twice is fine)."""
    row = await session.get(ApiToken, token_id)
    if row is None:
        return False
    if row.revoked_at is None:
        row.revoked_at = now
        session.add(row)
        await session.flush()
    return True


async def authenticate(*, session: AsyncSession, token: str, now: datetime) -> Principal | None:
    """Return who a presented token speaks for, or None (unknown, malformed or revoked)."""
    if not token.startswith(PREFIX) or len(token) > 200 or not token.isascii():
        return None
    wanted = digest(token)
    row = (await session.scalars(select(ApiToken).where(ApiToken.token_hash == wanted))).first()
    if row is None or not hmac.compare_digest(row.token_hash, wanted) or row.revoked_at:
        return None
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        await session.execute(
            update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now)  # type: ignore[arg-type]
        )
    assert row.id is not None
    return Principal(row.id, row.kind, row.shop_id, row.read_only)

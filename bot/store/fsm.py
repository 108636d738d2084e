"""Where conversation state lives: an aiogram FSM storage on the database, or Redis.

Survey state must survive a restart and be shared by every process serving the bots, so it is
never kept in memory. `build_storage` picks Redis when NUDGE_REDIS_URL is set and the
`fsm_states` table otherwise. Each write pushes the record's expiry `ttl` ahead; surveys keep
their own shorter, shop-set deadline in their data.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StateType, StorageKey
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.models import FsmRecord

DEFAULT_TTL = timedelta(days=30)
KEY_BUILDER = DefaultKeyBuilder(prefix="nudge:fsm", with_bot_id=True, with_destiny=True)


def _state_name(state: StateType) -> str | None:
    return state.state if isinstance(state, State) else state


class DatabaseStorage(BaseStorage):
    """aiogram FSM storage in the `fsm_states` table (SQLite or PostgreSQL)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        ttl: timedelta = DEFAULT_TTL,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.ttl = ttl

    async def _read(self, key: StorageKey) -> FsmRecord | None:
        async with self.sessions() as session:
            record = await session.get(FsmRecord, KEY_BUILDER.build(key))
        if record is None or record.expires_at <= self.clock.now():
            return None
        return record

    async def _write(self, key: StorageKey, **values: Any) -> None:
        now = self.clock.now()
        name = KEY_BUILDER.build(key)
        async with self.sessions() as session, session.begin():
            current = await session.get(FsmRecord, name, with_for_update=True)
            live = current is not None and current.expires_at > now
            row = {
                "state": current.state if live and current else None,
                "data": dict(current.data) if live and current else {},
            }
            row.update(values)
            if row["state"] is None and not row["data"]:
                await session.execute(delete(FsmRecord).where(FsmRecord.key == name))  # type: ignore[arg-type]
                return
            insert = (
                postgresql.insert
                if session.get_bind().dialect.name == "postgresql"
                else sqlite.insert
            )
            fields = {**row, "expires_at": now + self.ttl, "updated_at": now}
            statement = (
                insert(FsmRecord)
                .values(
                    key=name, bot_id=key.bot_id, chat_id=key.chat_id, user_id=key.user_id, **fields
                )
                .on_conflict_do_update(index_elements=["key"], set_=fields)
            )
            await session.execute(statement)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        """Set the conversation state for the key (None clears it)."""
        await self._write(key, state=_state_name(state))

    async def get_state(self, key: StorageKey) -> str | None:
        """Return the key's state, or None when there is none or it expired."""
        record = await self._read(key)
        return record.state if record else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        """Replace the key's data."""
        await self._write(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        """Return a copy of the key's data ({} when none or expired)."""
        record = await self._read(key)
        return dict(record.data) if record else {}

    async def close(self) -> None:
        """Nothing to close: the engine belongs to the application."""


async def purge_expired(*, session: AsyncSession, clock: Clock) -> int:
    """Delete expired FSM records; return how many went."""
    result = await session.execute(
        delete(FsmRecord).where(FsmRecord.expires_at <= clock.now())  # type: ignore[arg-type]
    )
    return result.rowcount or 0  # type: ignore[attr-defined]


def build_storage(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    redis_url: str | None = None,
    ttl: timedelta = DEFAULT_TTL,
) -> BaseStorage:
    """Return the FSM storage: Redis when a URL is configured, else the database."""
    if redis_url:
        from aiogram.fsm.storage.redis import RedisStorage

        seconds = int(ttl.total_seconds())
        return RedisStorage.from_url(
            redis_url, key_builder=KEY_BUILDER, state_ttl=seconds, data_ttl=seconds
        )
    return DatabaseStorage(sessions, clock, ttl=ttl)

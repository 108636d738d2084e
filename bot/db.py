"""Database engine, sessions and the portable column types every table uses."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, Numeric, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator

from bot.config import ConfigError, mask_secrets, safe_url

MONEY_SCALE = 10_000  # SQLite keeps money as an integer number of 1/10000 units


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (naive UTC on SQLite, timestamptz on PostgreSQL)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """An exact decimal amount: NUMERIC(14,4) on PostgreSQL, a scaled integer on SQLite."""

    impl = Numeric(14, 4)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(14, 4))

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value)
        if dialect.name == "sqlite":
            return int((value * MONEY_SCALE).to_integral_value())
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / MONEY_SCALE).quantize(Decimal("0.0001"))
        return Decimal(value).quantize(Decimal("0.0001"))


# An id column that is BIGINT on PostgreSQL and INTEGER (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


BUSY_TIMEOUT = 5.0  # seconds a SQLite statement waits for another writer before "locked"


def _sqlite_pragmas(dbapi_connection: Any, busy_timeout: float) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    # Erased personal data must not survive in freed pages, nor in a stale tail of the -wal.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA journal_size_limit=0")
    cursor.close()
    # SQLite's lower() folds ASCII only; searches compare Олена and олена with this one.
    dbapi_connection.create_function("nudge_casefold", 1, _casefold, deterministic=True)


def _casefold(value: Any) -> str | None:
    return value.casefold() if isinstance(value, str) else None if value is None else str(value)


PRIVATE_FILE_MODE = 0o600


def _private_database_file(database: str) -> None:
    """Create the SQLite file owner-only (its -wal and -shm inherit the mode) or tighten it.

    The file holds bot tokens, webhook secrets and customers' personal data.
    """
    path = Path(database).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE_MODE)
    except FileExistsError:
        for each in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))):
            try:
                if each.stat().st_mode & 0o077:
                    each.chmod(PRIVATE_FILE_MODE)
            except OSError:  # gone meanwhile, or owned by someone else: SQLite will say
                continue
    else:
        os.close(fd)


def create_engine(
    database_url: str, *, busy_timeout: float = BUSY_TIMEOUT, **kwargs: Any
) -> AsyncEngine:
    """Create the async engine for a database URL, tuned for its backend.

    Errors never carry the statement's parameters (personal data would end up in logs and in
    the inbox's last_error); SQLite files are created readable by their owner only. On SQLite
    a statement waits up to `busy_timeout` seconds for another process's write to finish.
    """
    url = make_url(database_url)
    kwargs.setdefault("hide_parameters", True)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            _private_database_file(database)
        engine = create_async_engine(url, **kwargs)
        event.listen(
            engine.sync_engine,
            "connect",
            lambda connection, _record: _sqlite_pragmas(connection, busy_timeout),
        )
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return the session factory: async sessions that keep objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """Open a session in one transaction: committed on success, rolled back on error."""
    async with sessions() as session, session.begin():
        yield session


async def check_database(engine: AsyncEngine) -> None:
    """Connect once, raising ConfigError naming NUDGE_DATABASE_URL when that fails."""
    from sqlalchemy import text

    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means the database is not usable
        where = safe_url(engine.url.render_as_string(hide_password=False))
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        password = engine.url.password
        if password and len(password) >= 3:
            reason = reason.replace(str(password), "***")
        reason = mask_secrets(reason)
        raise ConfigError(f"NUDGE_DATABASE_URL: cannot connect to {where}: {reason}") from None

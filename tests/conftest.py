"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

The `database` fixture gives each test an empty schema built from the models; the migrations
are checked against the models separately (tests/test_migrations.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import SQLModel

from bot.clock import ManualClock
from bot.db import create_engine, session_factory

PG_BASE_URL = os.environ.get(
    "NUDGE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass
class Database:
    """One test's database: URL, engine and session factory."""

    backend: str
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


def _pg_admin(statement: str) -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:  # callable from inside a running loop too
        pool.submit(asyncio.run, _pg_admin_async(statement)).result()


async def _pg_admin_async(statement: str) -> None:
    import asyncpg

    url = make_url(PG_BASE_URL)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Create an empty PostgreSQL database, yield its URL, drop it after (skip if none here)."""
    name = f"nudge_test_{uuid.uuid4().hex[:10]}"
    try:
        _pg_admin(f'CREATE DATABASE "{name}"')
    except (OSError, Exception) as exc:
        reason = f"PostgreSQL at {make_url(PG_BASE_URL).render_as_string()} unreachable: {exc}"
        if IN_CI:
            pytest.fail(reason + " (CI=true requires it)")
        pytest.skip(reason)
    try:
        yield make_url(PG_BASE_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _create_schema(url: str) -> None:
    """Build the models' schema directly (tests/test_migrations.py checks migrations match)."""

    async def create() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.create_all)
        await engine.dispose()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, create()).result()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for this run with the schema; dropped after."""
    with throwaway_postgres() as url:
        _create_schema(url)
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file with the schema; each test gets a copy of it."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    _create_schema(f"sqlite+aiosqlite:///{path}")
    return path


async def _truncate_all(engine: AsyncEngine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "pg"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database with the schema, on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "nudge.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite+aiosqlite:///{path}"
        engine = create_engine(url)
    else:
        url = request.getfixturevalue("postgres_url")
        engine = create_engine(url, pool_size=5, max_overflow=5)
        await _truncate_all(engine)
    try:
        yield Database(request.param, url, engine, session_factory(engine))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "pg"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with no tables at all, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/empty.db"
        return
    with throwaway_postgres() as url:
        yield url


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when the test says so."""
    return ManualClock()


@pytest.fixture
async def cli_database(database: Database) -> Database:
    """The test database stamped at the shipped head revision, as `nudge` commands expect."""
    from alembic import command

    from bot.migrate import alembic_config

    def stamp(connection: object) -> None:
        config = alembic_config(database.url)
        config.attributes["connection"] = connection
        command.stamp(config, "head", purge=True)  # another test may have stamped it

    async with database.engine.begin() as conn:
        await conn.run_sync(stamp)
    return database


class SandboxThread:
    """A Telegram sandbox serving from its own thread, for CLI tests that run asyncio.run."""

    def __init__(self, **options: object) -> None:
        import threading

        from bot.sandbox import Sandbox

        self.sandbox = Sandbox(**options)  # type: ignore[arg-type]
        self.base_url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self.base_url = self._loop.run_until_complete(self.sandbox.start("127.0.0.1", 0))
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> SandboxThread:
        self._thread.start()
        self._ready.wait(10)
        return self

    def call(self, coro: object) -> object:
        """Run a coroutine on the sandbox's loop (e.g. a customer's send) and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)  # type: ignore[arg-type]

    def __exit__(self, *_exc: object) -> None:
        self.call(self.sandbox.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def telegram_sandbox() -> Iterator[SandboxThread]:
    """A sandbox that accepts any well-shaped bot token, served from a thread."""
    with SandboxThread(auto_register=True) as running:
        yield running

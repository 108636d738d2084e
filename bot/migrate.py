"""Run Alembic migrations from code: `nudge db upgrade`, `serve --migrate`, tests."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.resources import resource_dir


def alembic_config(database_url: str) -> Config:
    """Build the Alembic config for the shipped migrations and a database URL."""
    config = Config()
    config.set_main_option("script_location", str(resource_dir("migrations")))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database to a revision (blocking; Alembic's env opens its own event loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(alembic_config(database_url), revision)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:  # a running loop cannot host asyncio.run
        pool.submit(command.upgrade, alembic_config(database_url), revision).result()


async def upgrade_engine(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate through an engine from inside a running event loop."""
    url = engine.url.render_as_string(hide_password=False)

    def _run(connection: object) -> None:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_run)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    """Migrate from inside a running event loop without blocking it."""
    await asyncio.to_thread(upgrade, database_url, revision)


def head_revision() -> str | None:
    """Return the newest revision the shipped migrations know."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def check_schema(engine: AsyncEngine) -> None:
    """Raise ConfigError unless the database is migrated to the shipped head revision."""
    from alembic.migration import MigrationContext

    from bot.config import ConfigError

    def current(connection: object) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()  # type: ignore[arg-type]

    async with engine.connect() as conn:
        revision = await conn.run_sync(current)
    head = head_revision()
    if revision != head:
        state = "empty" if revision is None else f"at {revision}, code expects {head}"
        raise ConfigError(
            f"NUDGE_DATABASE_URL: the database schema is {state}; run `nudge db upgrade` "
            "(or `nudge serve --migrate`)"
        )

"""What every `nudge` command shares: settings, running work on the database, output, errors."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

import click

from bot.config import ConfigError, Settings, load_settings
from bot.db import check_database, create_engine, session_factory

T = TypeVar("T")
log = logging.getLogger("nudge")


class UsageProblem(click.ClickException):
    """An error the user can fix; printed as one line, exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"nudge: error: {self.format_message()}", err=True)


class NotFound(click.ClickException):
    """The thing asked for does not exist; exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"nudge: {self.format_message()}", err=True)


def settings_from(ctx: click.Context) -> Settings:
    """Load settings once per invocation, turning bad config into one clear line."""
    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        try:
            obj["settings"] = load_settings()
        except ConfigError as exc:
            raise UsageProblem(str(exc)) from None
        configure_logging(obj["settings"].log_level)
    return obj["settings"]


# Loggers kept at or above a level whatever NUDGE_LOG_LEVEL says: alembic's chatter, and
# aiosqlite's DEBUG lines, which echo every statement with its parameters (bot tokens, webhook
# secrets, token hashes, personal data) where SQLAlchemy's hide_parameters cannot reach.
FLOORS = {"alembic": logging.WARNING, "aiosqlite": logging.INFO}


def configure_logging(level: str) -> None:
    """Log to stderr at `level`, with the floors above (no secret reaches a log line)."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name, floor in FLOORS.items():
        logging.getLogger(name).setLevel(floor)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, mapping config problems and a locked database to one line."""
    from sqlalchemy.exc import OperationalError

    try:
        return asyncio.run(coro)
    except RuntimeError:
        coro.close()  # asyncio.run refused (a loop is running here): no "never awaited" noise
        raise
    except ConfigError as exc:
        raise UsageProblem(str(exc)) from None
    except OperationalError as exc:
        if "locked" not in str(exc.orig).lower():
            raise
        raise UsageProblem(
            "the database stayed locked by another process (a long write, or a tool holding it "
            "open) for longer than NUDGE_DATABASE_BUSY_TIMEOUT; nothing was changed: try again"
        ) from None


async def with_database(
    settings: Settings, work: Callable[[Any], Awaitable[T]], *, migrated: bool = True
) -> T:
    """Open the database (failing clearly when unreachable or not migrated), run work, close."""
    from bot.migrate import check_schema

    engine = create_engine(settings.database_url, busy_timeout=settings.database_busy_timeout)
    try:
        await check_database(engine)
        if migrated:
            await check_schema(engine)
        return await work(session_factory(engine))
    finally:
        await engine.dispose()


async def noop(_sessions: Any) -> None:
    """Do nothing with the database (used to check that it is reachable)."""
    return None


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    """Print JSON for scripts or the human rendering."""
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        human()


def utc_now() -> datetime:
    """Return the current aware UTC time."""
    from bot.clock import SystemClock

    return SystemClock().now()


def iso(value: datetime | None) -> str | None:
    """Render a time as ISO 8601, or None."""
    return value.isoformat() if value else None


async def shop_or_fail(session: Any, shop_id: int) -> Any:
    """Return the shop or raise NotFound (exit 1)."""
    from bot.store.shops import find_shop

    shop = await find_shop(session=session, shop_id=shop_id)
    if shop is None:
        raise NotFound(f"no shop with id {shop_id}")
    return shop


MAX_ID = 2**63 - 1  # the largest id any table can hold (BIGINT)


class RecordId(click.ParamType):
    """A positive whole number that can be a row's id; anything else is a usage error."""

    name = "id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            if not text.isascii() or not text.isdigit():
                self.fail(
                    f"{str(value)[:40]!r} is not an id (a whole number such as 12)", param, ctx
                )
            number = int(text[:30])
        if not 1 <= number <= MAX_ID:
            self.fail(f"{str(value)[:40]} is not an id (ids run from 1 to {MAX_ID})", param, ctx)
        return number


RECORD_ID = RecordId()
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def read_json_file(path: Any) -> Any:
    """Read a shop owner's JSON file (a segment, a campaign); bad JSON is one clear line."""
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise UsageProblem(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise UsageProblem(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    except RecursionError:
        raise UsageProblem(f"{path}: nested too deeply") from None

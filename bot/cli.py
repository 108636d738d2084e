"""The `nudge` command: serve, demo, db upgrade, shop …, sandbox."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from bot.config import ConfigError, Settings, load_settings
from bot.db import check_database, create_engine, session_factory, transaction
from bot.models import Platform, Shop

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
        logging.basicConfig(
            level=obj["settings"].log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        logging.getLogger("alembic").setLevel(logging.WARNING)
    return obj["settings"]


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, mapping config problems to a clean exit."""
    try:
        return asyncio.run(coro)
    except ConfigError as exc:
        raise UsageProblem(str(exc)) from None


async def with_database(
    settings: Settings, work: Callable[[Any], Awaitable[T]], *, migrated: bool = True
) -> T:
    """Open the database (failing clearly when unreachable or not migrated), run work, close."""
    from bot.migrate import check_schema

    engine = create_engine(settings.database_url)
    try:
        await check_database(engine)
        if migrated:
            await check_schema(engine)
        return await work(session_factory(engine))
    finally:
        await engine.dispose()


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    """Print JSON for scripts or the human rendering."""
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        human()


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


@click.group()
@click.version_option(package_name="nudge")
def cli() -> None:
    """Nudge: abandoned carts, offers, surveys and support for shops, in Telegram."""


# ----------------------------------------------------------------------------- db


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@json_option
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str, as_json: bool) -> None:
    """Migrate the database to the latest schema."""
    from bot.migrate import upgrade

    settings = settings_from(ctx)
    run(with_database(settings, _noop, migrated=False))
    upgrade(settings.database_url, revision)
    where = _safe_url(settings.database_url)
    emit(
        as_json,
        {"database": where, "revision": revision},
        lambda: click.echo(f"{where}: {revision}"),
    )


async def _noop(_sessions: Any) -> None:
    return None


def _safe_url(url: str) -> str:
    from bot.config import safe_url

    return safe_url(url)


# -------------------------------------------------------------------------- serve


@cli.command()
@click.option("--migrate", is_flag=True, help="Run database migrations before serving.")
@click.option("--host", default=None, help="Listen address (default NUDGE_HTTP_HOST).")
@click.option("--port", type=int, default=None, help="Listen port (default NUDGE_HTTP_PORT).")
@click.pass_context
def serve(ctx: click.Context, migrate: bool, host: str | None, port: int | None) -> None:
    """Serve webhooks, the Telegram webhook, the admin API and workers until SIGTERM."""
    from aiohttp import web

    from bot.app import build_app
    from bot.migrate import upgrade

    settings = settings_from(ctx)
    run(with_database(settings, _noop, migrated=False))
    if migrate:
        upgrade(settings.database_url)
    else:
        run(with_database(settings, _noop))
    app = build_app(settings)
    host = host or settings.http_host
    port = settings.http_port if port is None else port
    log.info("serving on http://%s:%s (database %s)", host, port, _safe_url(settings.database_url))
    web.run_app(app, host=host, port=port, print=None, shutdown_timeout=10)


@cli.command()
@click.option("--locale", type=click.Choice(["en", "ru", "uk", "pl"]), default="ru")
@click.pass_context
def demo(ctx: click.Context, locale: str) -> None:
    """Play the abandoned-cart story against the Telegram sandbox and print the transcript."""
    from bot.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run_demo(locale))


# --------------------------------------------------------------------------- shop


@cli.group()
def shop() -> None:
    """Connect and tune shops."""


def shop_record(settings: Settings, item: Shop) -> dict[str, Any]:
    """Describe a shop for output; the bot token is masked."""
    from bot.shop_settings import load_shop_settings

    token = item.bot_token
    return {
        "id": item.id,
        "name": item.name,
        "platform": item.platform,
        "currency": item.currency,
        "country": item.country,
        "locale": item.default_locale,
        "timezone": item.timezone,
        "bot_token": (token.split(":")[0] + ":…") if token else None,
        "bot_username": item.bot_username,
        "webhook_url": f"{settings.public_base}/hooks/{item.platform}/{item.id}",
        "webhook_secret": item.webhook_secret,
        "settings": load_shop_settings(item.settings).model_dump(mode="json"),
        "last_delivery_at": item.last_delivery_at.isoformat() if item.last_delivery_at else None,
        "created_at": item.created_at.isoformat(),
    }


def _print_shop(record: dict[str, Any]) -> None:
    for key, value in record.items():
        if key == "settings":
            click.echo("settings:")
            for name, setting in value.items():
                click.echo(f"  {name} = {setting}")
        else:
            click.echo(f"{key}: {value if value is not None else '-'}")


@shop.command("add")
@click.option("--platform", type=click.Choice([p.value for p in Platform]), required=True)
@click.option("--name", required=True)
@click.option("--bot-token", default=None, help="The shop's Telegram bot token from @BotFather.")
@click.option("--bot-username", default=None)
@click.option("--currency", default="USD", show_default=True)
@click.option("--country", default=None, help="ISO 3166 code; phone numbers default to it.")
@click.option("--locale", default="en", show_default=True)
@click.option("--timezone", default="UTC", show_default=True)
@click.option(
    "--webhook-secret",
    default=None,
    help="The key the platform signs with (Shopify: the app's client secret); default: new.",
)
@json_option
@click.pass_context
def shop_add(
    ctx: click.Context,
    platform: str,
    name: str,
    bot_token: str | None,
    bot_username: str | None,
    currency: str,
    country: str | None,
    locale: str,
    timezone: str,
    webhook_secret: str | None,
    as_json: bool,
) -> None:
    """Connect a shop and print its webhook URL and secret."""
    from bot.store.shops import create_shop
    from bot.validation import check_country, check_currency, check_locale, check_timezone

    settings = settings_from(ctx)
    try:
        values = {
            "currency": check_currency(currency),
            "country": check_country(country) if country else None,
            "default_locale": check_locale(locale),
            "timezone": check_timezone(timezone),
        }
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    if not name.strip():
        raise UsageProblem("--name must not be empty")
    if bot_token is not None and not _looks_like_bot_token(bot_token):
        raise UsageProblem("--bot-token: expected the form 123456789:AA… from @BotFather")
    if webhook_secret is not None:
        from bot.shop_settings import SettingError, check_webhook_secret

        try:
            check_webhook_secret(webhook_secret)
        except SettingError as exc:
            raise UsageProblem("--" + str(exc).replace("_", "-", 1)) from None

    async def work(sessions: Any) -> dict[str, Any]:
        async with transaction(sessions) as session:
            item = await create_shop(
                session=session,
                name=name.strip(),
                platform=platform,
                bot_token=bot_token,
                bot_username=bot_username,
                webhook_secret=webhook_secret,
                now=datetime.now(UTC),
                **values,
            )
            return shop_record(settings, item)

    record = run(with_database(settings, work))
    record["topics"] = _subscribe_topics(platform)
    emit(as_json, record, lambda: _print_shop_and_topics(record))


def _subscribe_topics(platform: str) -> list[str]:
    from integrations import ADAPTERS

    adapter = ADAPTERS[platform]
    return [*adapter.subscribe_topics, *getattr(adapter, "compliance_topics", ())]


def _print_shop_and_topics(record: dict[str, Any]) -> None:
    _print_shop({key: value for key, value in record.items() if key != "topics"})
    click.echo(f"subscribe these webhook topics (to {record['webhook_url']}):")
    for topic in record["topics"]:
        click.echo(f"  {topic}")


def _looks_like_bot_token(token: str) -> bool:
    head, _, tail = token.partition(":")
    return head.isdigit() and len(tail) >= 10 and all(c.isalnum() or c in "_-" for c in tail)


@shop.command("list")
@json_option
@click.pass_context
def shop_list(ctx: click.Context, as_json: bool) -> None:
    """List connected shops."""
    from bot.store.shops import list_shops

    settings = settings_from(ctx)

    async def work(sessions: Any) -> list[dict[str, Any]]:
        async with sessions() as session:
            return [shop_record(settings, s) for s in await list_shops(session=session)]

    records = run(with_database(settings, work))

    def human() -> None:
        if not records:
            click.echo("no shops yet: nudge shop add --platform shopify --name 'My shop'")
        for r in records:
            click.echo(f"{r['id']:>4}  {r['platform']:<12} {r['name']}  ({r['webhook_url']})")

    emit(as_json, records, human)


@shop.command("show")
@click.argument("shop_id", type=int)
@json_option
@click.pass_context
def shop_show(ctx: click.Context, shop_id: int, as_json: bool) -> None:
    """Show one shop with its settings."""
    from bot.store.shops import find_shop

    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any] | None:
        async with sessions() as session:
            item = await find_shop(session=session, shop_id=shop_id)
            return shop_record(settings, item) if item else None

    record = run(with_database(settings, work))
    if record is None:
        raise NotFound(f"no shop with id {shop_id}")
    emit(as_json, record, lambda: _print_shop(record))


@shop.command("set")
@click.argument("shop_id", type=int)
@click.argument("assignments", nargs=-1, required=True)
@json_option
@click.pass_context
def shop_set(
    ctx: click.Context, shop_id: int, assignments: tuple[str, ...], as_json: bool
) -> None:
    """Change shop settings: key=value … (durations accept 90s, 60m, 24h, 3d).

    `webhook_secret=KEY` rotates the key the platform signs with; a running service uses it
    within seconds.
    """
    from bot.shop_settings import SettingError
    from bot.store.shops import ShopNotFound, update_shop

    settings = settings_from(ctx)
    pairs = []
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise UsageProblem(f"expected key=value, got {assignment!r}")
        pairs.append((key.strip(), value))

    async def work(sessions: Any) -> dict[str, Any]:
        async with transaction(sessions) as session:
            item = None
            for key, value in pairs:
                item = await update_shop(session=session, shop_id=shop_id, key=key, value=value)
            assert item is not None
            return shop_record(settings, item)

    try:
        record = run(with_database(settings, work))
    except ShopNotFound as exc:
        raise NotFound(str(exc)) from None
    except (SettingError, ValueError) as exc:
        raise UsageProblem(str(exc)) from None
    emit(as_json, record, lambda: _print_shop(record))


def _register_optional_commands() -> None:
    """Attach the command groups that live beside the features they drive."""
    from bot.sandbox.cli import sandbox

    cli.add_command(sandbox)
    from bot.offers_cli import codes, report

    cli.add_command(codes)
    cli.add_command(report)
    from bot.delivery.cli import register as register_delivery

    register_delivery(cli)
    from bot.ingest_cli import register_ingest_commands

    register_ingest_commands(cli)
    from bot.surveys_cli import register_survey_commands

    register_survey_commands(cli)


_register_optional_commands()


def main() -> None:
    """Entry point of the `nudge` console script."""
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)

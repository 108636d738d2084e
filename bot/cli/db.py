"""`nudge db upgrade`: migrate the database to the shipped schema."""

from __future__ import annotations

import click

from bot.cli.common import emit, json_option, noop, run, settings_from, with_database
from bot.config import safe_url


@click.group()
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
    run(with_database(settings, noop, migrated=False))
    upgrade(settings.database_url, revision)
    where = safe_url(settings.database_url)
    emit(
        as_json,
        {"database": where, "revision": revision},
        lambda: click.echo(f"{where}: {revision}"),
    )

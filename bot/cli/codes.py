"""`nudge codes …`: promo code pools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from bot.cli.common import (
    RECORD_ID,
    UsageProblem,
    emit,
    json_option,
    run,
    settings_from,
    shop_or_fail,
    with_database,
)
from bot.db import transaction
from bot.shop_settings import load_shop_settings
from bot.store.codes import (
    CodeError,
    check_pattern,
    ensure_pool,
    import_codes,
    pool_status,
    read_code_file,
)


@click.group()
def codes() -> None:
    """Promo code pools."""


@codes.command("import")
@click.option("--shop", "shop_id", type=RECORD_ID, required=True)
@click.option("--pool", required=True, help="Pool name, e.g. cart, followup, birthday.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@click.pass_context
def codes_import(ctx: click.Context, shop_id: int, pool: str, file: Path, as_json: bool) -> None:
    """Import codes from a CSV file (first column; `,` `;` or tab; UTF-8, UTF-16 or cp1251)."""
    settings = settings_from(ctx)
    try:
        found = [code for _line, code in read_code_file(file.read_bytes())]
    except CodeError as exc:
        raise UsageProblem(f"{file}: {exc}") from None

    async def work(sessions: Any) -> dict[str, Any]:
        from datetime import UTC, datetime

        async with transaction(sessions) as session:
            await shop_or_fail(session, shop_id)
            added, skipped = await import_codes(
                session=session, shop_id=shop_id, pool=pool, codes=found, now=datetime.now(UTC)
            )
        return {"shop_id": shop_id, "pool": pool, "added": added, "duplicates": skipped}

    try:
        result = run(with_database(settings, work))
    except CodeError as exc:
        raise UsageProblem(f"{file}: {exc}") from None
    emit(
        as_json,
        result,
        lambda: click.echo(
            f"pool {pool}: {result['added']} codes added, "
            f"{result['duplicates']} duplicates skipped"
        ),
    )


@codes.command("generate")
@click.option("--shop", "shop_id", type=RECORD_ID, required=True)
@click.option("--pool", required=True)
@click.option("--pattern", required=True, help="e.g. SPRING-XXXXXX: each X becomes random.")
@json_option
@click.pass_context
def codes_generate(
    ctx: click.Context, shop_id: int, pool: str, pattern: str, as_json: bool
) -> None:
    """Make a pool generate a fresh personal code from a pattern whenever one is needed."""
    settings = settings_from(ctx)
    try:
        normalized = check_pattern(pattern)
    except CodeError as exc:
        raise UsageProblem(str(exc)) from None

    async def work(sessions: Any) -> dict[str, Any]:
        from datetime import UTC, datetime

        async with transaction(sessions) as session:
            await shop_or_fail(session, shop_id)
            await ensure_pool(
                session=session,
                shop_id=shop_id,
                name=pool,
                now=datetime.now(UTC),
                pattern=normalized,
            )
        return {"shop_id": shop_id, "pool": pool, "pattern": normalized}

    result = run(with_database(settings, work))
    emit(as_json, result, lambda: click.echo(f"pool {pool}: codes like {normalized}"))


@codes.command("status")
@click.option("--shop", "shop_id", type=RECORD_ID, required=True)
@json_option
@click.pass_context
def codes_status(ctx: click.Context, shop_id: int, as_json: bool) -> None:
    """Show each pool's issued and available codes; warn about pools running low."""
    settings = settings_from(ctx)

    async def work(sessions: Any) -> list[dict[str, Any]]:
        async with sessions() as session:
            shop = await shop_or_fail(session, shop_id)
            threshold = load_shop_settings(shop.settings).code_pool_low_threshold
            pools = await pool_status(session=session, shop_id=shop_id)
        return [
            {
                "pool": p.name,
                "pattern": p.pattern,
                "issued": p.issued,
                "available": p.available,
                "low": p.available is not None and p.available < threshold,
                "threshold": threshold,
            }
            for p in pools
        ]

    rows = run(with_database(settings, work))

    def human() -> None:
        if not rows:
            click.echo("no pools yet: nudge codes import --shop ID --pool NAME FILE")
        for row in rows:
            left = "generated" if row["available"] is None else f"{row['available']} left"
            warning = f"  LOW (below {row['threshold']})" if row["low"] else ""
            click.echo(f"{row['pool']:<16} {row['issued']:>6} issued  {left}{warning}")

    emit(as_json, rows, human)

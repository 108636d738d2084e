"""`nudge token …`: bearer tokens for the admin API (the owner's, or one shop's)."""

from __future__ import annotations

from typing import Any

import click

from bot.cli.common import (
    RECORD_ID,
    NotFound,
    UsageProblem,
    emit,
    json_option,
    run,
    settings_from,
    utc_now,
    with_database,
)
from bot.db import transaction


@click.group()
def token() -> None:
    """Admin API tokens: create, list, revoke."""


@token.command("create")
@click.option("--owner", is_flag=True, help="A token for every shop (and for creating shops).")
@click.option("--shop", "shop_id", type=RECORD_ID, default=None, help="A token for one shop.")
@click.option("--read-only", is_flag=True, help="The token may only read.")
@click.option("--name", default=None, help="What the token is for (shown in `token list`).")
@json_option
@click.pass_context
def token_create(
    ctx: click.Context,
    owner: bool,
    shop_id: int | None,
    read_only: bool,
    name: str | None,
    as_json: bool,
) -> None:
    """Create a token; it is printed once and stored only as a hash."""
    from bot.store.tokens import TokenError, create_token

    if owner == (shop_id is not None):
        raise UsageProblem("give either --owner or --shop ID")
    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        async with transaction(sessions) as session:
            try:
                record, secret = await create_token(
                    session=session, now=utc_now(), shop_id=shop_id, read_only=read_only, name=name
                )
            except LookupError as exc:
                raise NotFound(str(exc)) from None
            except TokenError as exc:
                raise UsageProblem(str(exc)) from None
        return {**record, "token": secret}

    record = run(with_database(settings, work))

    def human() -> None:
        scope = "every shop" if record["kind"] == "owner" else f"shop {record['shop_id']}"
        mode = ", read-only" if record["read_only"] else ""
        click.echo(record["token"])
        click.echo(
            f"token {record['id']} for {scope}{mode}: keep it now, it is not shown again",
            err=True,
        )

    emit(as_json, record, human)


@token.command("list")
@json_option
@click.pass_context
def token_list(ctx: click.Context, as_json: bool) -> None:
    """List tokens (never the tokens themselves)."""
    from bot.store.tokens import list_tokens

    settings = settings_from(ctx)

    async def work(sessions: Any) -> list[dict[str, Any]]:
        async with sessions() as session:
            return await list_tokens(session=session)

    records = run(with_database(settings, work))

    def human() -> None:
        if not records:
            click.echo("no tokens yet: nudge token create --owner")
        for r in records:
            scope = "owner" if r["kind"] == "owner" else f"shop {r['shop_id']}"
            flags = " read-only" if r["read_only"] else ""
            state = f" revoked {r['revoked_at']}" if r["revoked_at"] else ""
            click.echo(f"{r['id']}  {r['prefix']}…  {scope}{flags}  {r['name'] or ''}{state}")

    emit(as_json, records, human)


@token.command("revoke")
@click.argument("token_id", metavar="ID", type=RECORD_ID)
@json_option
@click.pass_context
def token_revoke(ctx: click.Context, token_id: int, as_json: bool) -> None:
    """Revoke a token: the API refuses it from the next request on."""
    from bot.store.tokens import revoke_token

    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        async with transaction(sessions) as session:
            if not await revoke_token(session=session, token_id=token_id, now=utc_now()):
                raise NotFound(f"no token with id {token_id}")
        return {"id": token_id, "revoked": True}

    record = run(with_database(settings, work))
    emit(as_json, record, lambda: click.echo(f"token {token_id} revoked"))

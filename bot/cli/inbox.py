"""`nudge inbox …`: shop webhook deliveries waiting, retrying or parked."""

from __future__ import annotations

from typing import Any

import click

from bot.cli.common import (
    RECORD_ID,
    NotFound,
    UsageProblem,
    emit,
    iso,
    json_option,
    run,
    settings_from,
    shop_or_fail,
    utc_now,
    with_database,
)


@click.group()
def inbox() -> None:
    """Shop webhook deliveries waiting, retrying or parked."""


def _delivery_record(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "shop_id": row.shop_id,
        "platform": row.platform,
        "topic": row.topic,
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at),
        "last_error": row.last_error,
        "received_at": iso(row.received_at),
    }


@inbox.command("failed")
@click.option(
    "--shop", "shop_id", type=RECORD_ID, default=None, help="Only this shop's deliveries."
)
@json_option
@click.pass_context
def inbox_failed(ctx: click.Context, shop_id: int | None, as_json: bool) -> None:
    """List parked deliveries and the ones waiting for a retry, with their errors."""
    from bot.store.inbox import list_failed

    settings = settings_from(ctx)

    async def work(sessions: Any) -> list[dict[str, Any]]:
        async with sessions() as session:
            if shop_id is not None:
                await shop_or_fail(session, shop_id)
            rows = await list_failed(session=session, shop_id=shop_id)
            return [_delivery_record(row) for row in rows]

    records = run(with_database(settings, work))

    def human() -> None:
        if not records:
            click.echo("no failed deliveries")
        for r in records:
            click.echo(
                f"{r['id']:>6}  shop {r['shop_id']}  {r['platform']} {r['topic']}  "
                f"{r['state']} after {r['attempts']} attempt(s)  received {r['received_at']}"
            )
            click.echo(f"        {r['last_error']}")

    emit(as_json, records, human)


@inbox.command("retry")
@click.argument("inbox_id", type=RECORD_ID)
@json_option
@click.pass_context
def inbox_retry(ctx: click.Context, inbox_id: int, as_json: bool) -> None:
    """Put a parked delivery back in line now, with a fresh attempt count."""
    from bot.db import transaction
    from bot.models import InboxState
    from bot.store.inbox import retry_delivery

    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any] | None:
        async with transaction(sessions) as session:
            row = await retry_delivery(session=session, inbox_id=inbox_id, now=utc_now())
            return _delivery_record(row) if row else None

    record = run(with_database(settings, work))
    if record is None:
        raise NotFound(f"no inbox delivery with id {inbox_id}")
    if record["state"] == InboxState.DONE:
        raise UsageProblem(f"delivery {inbox_id} was already applied")
    emit(as_json, record, lambda: click.echo(f"delivery {inbox_id} queued for a retry"))

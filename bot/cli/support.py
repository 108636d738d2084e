"""`nudge support …`: customers' messages to the shop, and the shop's answers."""

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
    shop_or_fail,
    with_database,
)


@click.group()
def support() -> None:
    """Customers' messages to the shop, and the shop's answers."""


@support.command("inbox")
@click.option("--shop", "shop_id", type=RECORD_ID, required=True)
@json_option
@click.pass_context
def support_inbox(ctx: click.Context, shop_id: int, as_json: bool) -> None:
    """List customers waiting for an answer or flagged for follow-up (NPS detractors)."""
    from bot.support import inbox

    settings = settings_from(ctx)

    async def work(sessions: Any) -> list[dict[str, Any]]:
        async with sessions() as session:
            await shop_or_fail(session, shop_id)
        return [c.as_dict() for c in await inbox(sessions, shop_id=shop_id)]

    records = run(with_database(settings, work))
    emit(as_json, records, lambda: _print_inbox(records))


def _print_inbox(records: list[dict[str, Any]]) -> None:
    if not records:
        click.echo("nobody is waiting")
    for r in records:
        who = r["name"] or r["email"] or r["phone"] or "-"
        flag = f"  FOLLOW UP (NPS {r['nps_score']})" if r["needs_follow_up"] else ""
        click.echo(f"customer {r['customer_id']}: {who}{flag}")
        for m in r["messages"]:
            what = m["text"] if m["text"] else f"[{m['content']}]"
            about = ""
            if m["type"] == "nps_feedback":
                about = f" (NPS {m['score']}, order {m['order_id']})"
            elif m["offer_kind"]:
                topic = f" {m['offer_topic']}" if m["offer_topic"] else ""
                about = f" (answering {m['offer_kind']}{topic}, message {m['outbox_id']})"
            click.echo(f"  {m['at']}  {what}{about}")


@support.command("reply")
@click.argument("customer_id", type=RECORD_ID)
@click.argument("text")
@click.option("--shop", "shop_id", type=RECORD_ID, default=None, help="The customer's shop.")
@json_option
@click.pass_context
def support_reply(
    ctx: click.Context, customer_id: int, text: str, shop_id: int | None, as_json: bool
) -> None:
    """Answer a customer through the bot (sent at once by the dispatcher)."""
    from bot.clock import SystemClock
    from bot.support import CustomerNotFound, reply

    if not text.strip() or len(text) > 3500:
        raise UsageProblem("TEXT must be 1-3500 characters")
    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        row = await reply(
            sessions, SystemClock(), customer_id=customer_id, text=text.strip(), shop_id=shop_id
        )
        return {"customer_id": customer_id, "outbox_id": row.id, "state": row.state}

    try:
        result = run(with_database(settings, work))
    except CustomerNotFound as exc:
        raise NotFound(str(exc)) from None
    emit(as_json, result, lambda: click.echo(f"queued as outbox row {result['outbox_id']}"))

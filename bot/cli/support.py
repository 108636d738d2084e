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
    """List who waits for an answer: open conversations (linked or not), answers that were not
    delivered, and customers flagged for follow-up (NPS detractors)."""
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
        if r["linked"]:
            click.echo(f"customer {r['customer_id']}: {who}{flag}")
        else:
            user = r["telegram_user_id"]
            click.echo(
                f"telegram user {user}: not linked (answer with: nudge support reply tg:{user})"
            )
        for m in r["messages"]:
            what = m["text"] if m["text"] else f"[{m['content']}]"
            about = ""
            if m["type"] == "nps_feedback":
                about = f" (NPS {m['score']}, order {m['order_id']})"
            elif m["offer_kind"]:
                topic = f" {m['offer_topic']}" if m["offer_topic"] else ""
                about = f" (answering {m['offer_kind']}{topic}, message {m['outbox_id']})"
            click.echo(f"  {m['at']}  {what}{about}")
        for a in r["undelivered"]:
            click.echo(
                f"  {a['at']}  ANSWER NOT DELIVERED: {a['text']!r} ({a['error'] or a['state']})"
            )


class Recipient(click.ParamType):
    """A customer id (digits), or tg:<Telegram user id> for someone not linked yet."""

    name = "CUSTOMER_ID|tg:USER_ID"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[str, int]:
        text = str(value).strip()
        kind, number = ("tg", text[3:]) if text.lower().startswith("tg:") else ("id", text)
        if not number.isdigit() or not 0 < int(number) < 2**63:
            self.fail(f"{value!r} is not a customer id or tg:<Telegram user id>", param, ctx)
        return kind, int(number)


@support.command("reply")
@click.argument("who", type=Recipient())
@click.argument("text")
@click.option("--shop", "shop_id", type=RECORD_ID, default=None, help="The customer's shop.")
@json_option
@click.pass_context
def support_reply(
    ctx: click.Context, who: tuple[str, int], text: str, shop_id: int | None, as_json: bool
) -> None:
    """Answer a customer now: a customer id, or tg:USER_ID for someone not linked yet.

    Exits 0 when Telegram took the answer (or, briefly unreachable, the dispatcher will send
    it), 1 when it cannot be delivered (the customer blocked the bot, the chat is gone): the
    conversation then stays open in `nudge support inbox` with the answer marked.
    """
    from bot.clock import SystemClock
    from bot.support import ANSWER_LIMIT, ConversationNotFound, CustomerNotFound, reply
    from bot.telegram import BotPool

    if not text.strip() or len(text) > ANSWER_LIMIT:
        raise UsageProblem(f"TEXT must be 1-{ANSWER_LIMIT} characters")
    kind, number = who
    if kind == "tg" and shop_id is None:
        raise UsageProblem("--shop is required with tg:USER_ID")
    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        bots = BotPool(settings.telegram_base)
        try:
            answered = await reply(
                sessions,
                SystemClock(),
                customer_id=number if kind == "id" else None,
                telegram_user_id=number if kind == "tg" else None,
                text=text.strip(),
                shop_id=shop_id,
                bots=bots,
                settings=settings,
            )
        finally:
            await bots.close()
        return {"customer_id": number if kind == "id" else None, **answered.as_dict()}

    try:
        result = run(with_database(settings, work))
    except (CustomerNotFound, ConversationNotFound) as exc:
        raise NotFound(str(exc)) from None

    def human() -> None:
        if result["state"] == "sent":
            click.echo(f"delivered (conversation {result['conversation_id']})")
        elif result["state"] == "queued":
            click.echo(
                f"queued as outbox row {result['outbox_id']}: Telegram did not take it now "
                f"({result['error']}); the dispatcher sends it"
            )

    emit(as_json, result, human)
    if result["state"] == "undelivered":
        reasons = {
            "unreachable": "the customer blocked the bot or the chat is gone",
            "failed": "Telegram refused the message",
            "retry": "Telegram is unreachable",
        }
        why = reasons.get(result["reason"] or "", result["reason"])
        raise Refused(
            f"NOT DELIVERED: {why} ({result['error']}); the conversation stays open "
            "with the answer marked (nudge support inbox)"
        )


class Refused(click.ClickException):
    """An answer Telegram would not deliver; exit code 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"nudge: {self.format_message()}", err=True)


@support.command("check")
@click.option("--shop", "shop_id", type=RECORD_ID, required=True)
@json_option
@click.pass_context
def support_check(ctx: click.Context, shop_id: int, as_json: bool) -> None:
    """Check the shop's support group (support_chat): topics, the bot's rights; exit 1 if not."""
    from bot.shop_settings import load_shop_settings
    from bot.support import support_group_problems
    from bot.telegram import BotPool

    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        async with sessions() as session:
            shop = await shop_or_fail(session, shop_id)
        chat_id = load_shop_settings(shop.settings).support_chat_id
        if chat_id is None or not shop.bot_token:
            missing = ["a support group (nudge shop set ID support_chat=-100…)"]
            return {"shop_id": shop_id, "support_chat": chat_id, "missing": missing}
        bots = BotPool(settings.telegram_base)
        try:
            missing = await support_group_problems(bots.get(shop.bot_token), chat_id)
        finally:
            await bots.close()
        return {"shop_id": shop_id, "support_chat": chat_id, "missing": missing}

    result = run(with_database(settings, work))
    emit(as_json, result, lambda: click.echo("ok" if not result["missing"] else ""))
    if result["missing"]:
        raise Refused(f"missing: {', '.join(result['missing'])}")

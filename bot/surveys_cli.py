"""`nudge survey …`, `nudge support …`, `nudge report nps` and `nudge customer resolve`."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlalchemy import select

from bot.cli import NotFound, UsageProblem, emit, json_option, run, settings_from, with_database
from bot.db import transaction
from bot.models import Consent, Customer, Shop
from bot.store.shops import find_shop


async def _shop(session: Any, shop_id: int) -> Shop:
    shop = await find_shop(session=session, shop_id=shop_id)
    if shop is None:
        raise NotFound(f"no shop with id {shop_id}")
    return shop


def _now() -> Any:
    from bot.clock import SystemClock

    return SystemClock().now()


# -------------------------------------------------------------------------------- survey


@click.group()
def survey() -> None:
    """Questions that enrich customer profiles (the birthday, or the shop's own)."""


@survey.command("create")
@click.option("--shop", "shop_id", type=int, required=True)
@click.option("--question", required=True, help="The question, in the shop's language.")
@click.option("--attribute", required=True, help="Profile attribute the answer goes to.")
@click.option("--choice", "choices", multiple=True, help="An answer button (repeat); none = text.")
@json_option
@click.pass_context
def survey_create(
    ctx: click.Context,
    shop_id: int,
    question: str,
    attribute: str,
    choices: tuple[str, ...],
    as_json: bool,
) -> None:
    """Define a single-question survey whose answer is written to a profile attribute."""
    from bot.store.surveys import create_survey

    question, attribute = question.strip(), attribute.strip()
    if not question or len(question) > 1000:
        raise UsageProblem("--question must be 1-1000 characters")
    if not attribute or len(attribute) > 64 or not attribute.replace("_", "").isalnum():
        raise UsageProblem("--attribute must be a name of letters, digits and _ (at most 64)")
    cleaned = [c.strip() for c in choices if c.strip()]
    if any(len(c) > 64 for c in cleaned) or len(cleaned) > 20:
        raise UsageProblem("at most 20 choices of at most 64 characters each")
    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        async with transaction(sessions) as session:
            await _shop(session, shop_id)
            item = await create_survey(
                session=session,
                shop_id=shop_id,
                question=question,
                attribute=attribute,
                choices=cleaned,
                now=_now(),
            )
            return _survey_record(item)

    record = run(with_database(settings, work))
    emit(as_json, record, lambda: click.echo(f"survey {record['id']}: {record['question']}"))


def _survey_record(item: Any) -> dict[str, Any]:
    return {
        "id": item.id,
        "shop_id": item.shop_id,
        "question": item.question,
        "attribute": item.attribute,
        "choices": item.choices,
        "answer": "choice" if item.choices else "text",
    }


@survey.command("list")
@click.option("--shop", "shop_id", type=int, required=True)
@json_option
@click.pass_context
def survey_list(ctx: click.Context, shop_id: int, as_json: bool) -> None:
    """List the shop's surveys."""
    from bot.store.surveys import list_surveys

    settings = settings_from(ctx)

    async def work(sessions: Any) -> list[dict[str, Any]]:
        async with sessions() as session:
            await _shop(session, shop_id)
            return [
                _survey_record(s) for s in await list_surveys(session=session, shop_id=shop_id)
            ]

    records = run(with_database(settings, work))

    def human() -> None:
        click.echo("birthday  (built in) When is your birthday? -> birthday")
        for r in records:
            choices = " / ".join(r["choices"]) or "free text"
            click.echo(f"{r['id']:>8}  {r['question']} -> {r['attribute']} ({choices})")

    emit(as_json, records, human)


@survey.command("send")
@click.argument("which")
@click.option("--shop", "shop_id", type=int, required=True)
@click.option("--customer", "customer_ids", type=int, multiple=True, help="A customer (repeat).")
@click.option("--all", "everyone", is_flag=True, help="Every subscribed customer in Telegram.")
@json_option
@click.pass_context
def survey_send(
    ctx: click.Context,
    which: str,
    shop_id: int,
    customer_ids: tuple[int, ...],
    everyone: bool,
    as_json: bool,
) -> None:
    """Send a survey (`birthday` or a survey id) to chosen customers through the outbox."""
    from bot.store.surveys import get_survey
    from bot.surveys import schedule_birthday_survey, schedule_question

    if bool(customer_ids) == everyone:
        raise UsageProblem("give --customer ID (one or more) or --all")
    if which != "birthday" and not which.isdigit():
        raise UsageProblem("WHICH is `birthday` or a survey id")
    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        now = _now()
        async with transaction(sessions) as session:
            await _shop(session, shop_id)
            question = None
            if which != "birthday":
                question = await get_survey(session=session, shop_id=shop_id, survey_id=int(which))
                if question is None:
                    raise NotFound(f"no survey {which} in shop {shop_id}")
            query = select(Customer).where(
                Customer.shop_id == shop_id,
                Customer.telegram_chat_id.is_not(None),  # type: ignore[union-attr]
                Customer.consent == Consent.OPTED_IN,
            )
            if customer_ids:
                query = query.where(Customer.id.in_(customer_ids))  # type: ignore[union-attr]
            targets = list((await session.scalars(query)).all())
            scheduled = 0
            for target in targets:
                if question is None:
                    row = await schedule_birthday_survey(
                        session=session,
                        shop_id=shop_id,
                        customer_id=target.id,  # type: ignore[arg-type]
                        now=now,
                        dedupe_key=f"survey:birthday:{target.id}:{now:%Y%m%d}",
                    )
                else:
                    row = await schedule_question(
                        session=session,
                        shop_id=shop_id,
                        survey=question,
                        customer_id=target.id,  # type: ignore[arg-type]
                        now=now,
                    )
                scheduled += row is not None
        found = {c.id for c in targets}
        return {
            "survey": which,
            "scheduled": scheduled,
            "not_reachable": sorted(set(customer_ids) - found),
        }

    result = run(with_database(settings, work))

    def human() -> None:
        click.echo(f"scheduled {result['scheduled']} survey message(s)")
        if result["not_reachable"]:
            skipped = ", ".join(map(str, result["not_reachable"]))
            click.echo(f"not in Telegram or not subscribed: {skipped}")

    emit(as_json, result, human)


# ------------------------------------------------------------------------------- support


@click.group()
def support() -> None:
    """Customers' messages to the shop, and the shop's answers."""


@support.command("inbox")
@click.option("--shop", "shop_id", type=int, required=True)
@json_option
@click.pass_context
def support_inbox(ctx: click.Context, shop_id: int, as_json: bool) -> None:
    """List customers waiting for an answer or flagged for follow-up (NPS detractors)."""
    from bot.support import inbox

    settings = settings_from(ctx)

    async def work(sessions: Any) -> list[dict[str, Any]]:
        async with sessions() as session:
            await _shop(session, shop_id)
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
@click.argument("customer_id", type=int)
@click.argument("text")
@click.option("--shop", "shop_id", type=int, default=None, help="The customer's shop.")
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


# ----------------------------------------------------------------- report nps, customer resolve


@click.command("nps")
@click.option("--shop", "shop_id", type=int, required=True)
@json_option
@click.pass_context
def report_nps(ctx: click.Context, shop_id: int, as_json: bool) -> None:
    """Show the shop's NPS, the distribution of scores and the trend by month."""
    from bot.store.surveys import nps_scores
    from bot.surveys import nps_summary

    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        async with sessions() as session:
            shop = await _shop(session, shop_id)
            answers = await nps_scores(session=session, shop_id=shop_id)
        try:
            zone = ZoneInfo(shop.timezone)
        except (KeyError, ValueError):
            zone = ZoneInfo("UTC")
        return {"shop_id": shop_id, **nps_summary(answers, zone)}

    data = run(with_database(settings, work))
    emit(as_json, data, lambda: _print_nps(data))


def _print_nps(data: dict[str, Any]) -> None:
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:+.0f}"

    click.echo(f"shop {data['shop_id']}: NPS {fmt(data['nps'])} from {data['answers']} answers")
    click.echo(
        f"  promoters {data['promoters']}, passives {data['passives']}, "
        f"detractors {data['detractors']}"
    )
    top = max(data["distribution"].values(), default=0) or 1
    for score, count in data["distribution"].items():
        click.echo(f"  {score:>2} {'#' * round(20 * count / top):<20} {count}")
    for month in data["by_month"]:
        click.echo(f"  {month['month']}  NPS {fmt(month['nps']):>4}  ({month['answers']} answers)")


@click.command("resolve")
@click.argument("customer_id", type=int)
@click.option("--shop", "shop_id", type=int, default=None, help="The customer's shop.")
@json_option
@click.pass_context
def customer_resolve(
    ctx: click.Context, customer_id: int, shop_id: int | None, as_json: bool
) -> None:
    """Clear a customer's follow-up flag; promo messages to them resume."""
    from bot.clock import SystemClock
    from bot.support import CustomerNotFound, resolve

    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        _customer, was_set = await resolve(
            sessions, SystemClock(), customer_id=customer_id, shop_id=shop_id
        )
        return {"customer_id": customer_id, "was_flagged": was_set}

    try:
        result = run(with_database(settings, work))
    except CustomerNotFound as exc:
        raise NotFound(str(exc)) from None
    emit(
        as_json,
        result,
        lambda: click.echo(
            f"customer {customer_id}: follow-up cleared"
            if result["was_flagged"]
            else f"customer {customer_id} was not flagged"
        ),
    )


def _subgroup(cli: click.Group, name: str, help_text: str) -> click.Group:
    existing = cli.commands.get(name)
    if isinstance(existing, click.Group):
        return existing
    group = click.Group(name, help=help_text)
    cli.add_command(group)
    return group


def register_survey_commands(cli: click.Group) -> None:
    """Add survey, support, `report nps` and `customer resolve` to the `nudge` group."""
    cli.add_command(survey)
    cli.add_command(support)
    _subgroup(cli, "report", "Reports.").add_command(report_nps)
    _subgroup(cli, "customer", "Customers.").add_command(customer_resolve)

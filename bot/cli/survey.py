"""`nudge survey …`: questions that enrich customer profiles."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import select

from bot.cli.common import (
    MAX_ID,
    RECORD_ID,
    NotFound,
    UsageProblem,
    emit,
    json_option,
    run,
    settings_from,
    shop_or_fail,
    utc_now,
    with_database,
)
from bot.db import transaction
from bot.models import Consent, Customer


@click.group()
def survey() -> None:
    """Questions that enrich customer profiles (the birthday, or the shop's own)."""


@survey.command("create")
@click.option("--shop", "shop_id", type=RECORD_ID, required=True)
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
            await shop_or_fail(session, shop_id)
            item = await create_survey(
                session=session,
                shop_id=shop_id,
                question=question,
                attribute=attribute,
                choices=cleaned,
                now=utc_now(),
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
@click.option("--shop", "shop_id", type=RECORD_ID, required=True)
@json_option
@click.pass_context
def survey_list(ctx: click.Context, shop_id: int, as_json: bool) -> None:
    """List the shop's surveys."""
    from bot.store.surveys import list_surveys

    settings = settings_from(ctx)

    async def work(sessions: Any) -> list[dict[str, Any]]:
        async with sessions() as session:
            await shop_or_fail(session, shop_id)
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
@click.option("--shop", "shop_id", type=RECORD_ID, required=True)
@click.option(
    "--customer", "customer_ids", type=RECORD_ID, multiple=True, help="A customer (repeat)."
)
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
    if which != "birthday" and not (
        which.isascii() and which.isdigit() and 1 <= int(which[:30]) <= MAX_ID
    ):
        raise UsageProblem("WHICH is `birthday` or a survey id")
    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        now = utc_now()
        async with transaction(sessions) as session:
            await shop_or_fail(session, shop_id)
            question = None
            if which != "birthday":
                question = await get_survey(session=session, shop_id=shop_id, survey_id=int(which))
                if question is None:
                    raise NotFound(f"no survey {which} in shop {shop_id}")
            if customer_ids:
                known = select(Customer.id).where(
                    Customer.shop_id == shop_id,
                    Customer.id.in_(customer_ids),  # type: ignore[union-attr]
                )
                missing = sorted(set(customer_ids) - set(await session.scalars(known)))
                if missing:
                    ids = ", ".join(map(str, missing))
                    raise NotFound(f"no customer {ids} in shop {shop_id}; nothing scheduled")
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

"""`nudge customer …`: what Nudge stores about a shop's customers."""

from __future__ import annotations

import json
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
    utc_now,
    with_database,
)


@click.group()
def customer() -> None:
    """What Nudge stores about a shop's customers."""


@customer.command("export")
@click.argument("customer_id", type=RECORD_ID)
@click.option("--shop", "shop_id", type=RECORD_ID, default=None, help="The customer's shop.")
@json_option
@click.pass_context
def customer_export(
    ctx: click.Context, customer_id: int, shop_id: int | None, as_json: bool
) -> None:
    """Print everything stored about a customer as JSON (GDPR data request).

    The export is a JSON document either way; `--json` is accepted like on every command.
    Raw shop deliveries that mention the customer are under `deliveries`.
    """
    from bot.models import Customer
    from bot.store.privacy import export_customer

    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any] | None:
        async with sessions() as session:
            found = await session.get(Customer, customer_id)
            if found is None or (shop_id is not None and found.shop_id != shop_id):
                return None
            return await export_customer(
                session=session, shop_id=found.shop_id, customer_id=customer_id
            )

    export = run(with_database(settings, work))
    if export is None:
        where = f" in shop {shop_id}" if shop_id is not None else ""
        raise NotFound(f"no customer with id {customer_id}{where}")
    click.echo(json.dumps(export, ensure_ascii=False, indent=2, default=str))


@customer.command("erase")
@click.option("--shop", "shop_id", type=RECORD_ID, required=True, help="The customer's shop.")
@click.option(
    "--customer", "customer_id", type=RECORD_ID, default=None, help="Nudge's customer id."
)
@click.option("--email", default=None, help="The customer's e-mail.")
@click.option("--phone", default=None, help="The customer's phone (the shop's country default).")
@click.option("--yes", is_flag=True, help="Erase for real (without it, say what would go).")
@json_option
@click.pass_context
def customer_erase(
    ctx: click.Context,
    shop_id: int,
    customer_id: int | None,
    email: str | None,
    phone: str | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Erase a customer's personal data everywhere it is stored (GDPR erasure request).

    Profile, events, carts, messages, conversation state and the raw deliveries that mention
    them; orders stay for the shop's reports, without the customer. What is kept is listed in
    the README's privacy section.
    """
    from bot.db import transaction
    from bot.store.commerce import Identity, normalize_email
    from bot.store.privacy import Erasure, erase_customers
    from bot.store.shops import find_shop
    from integrations.fields import e164

    if sum(value is not None for value in (customer_id, email, phone)) != 1:
        raise UsageProblem("give exactly one of --customer, --email, --phone")
    if email is not None and not normalize_email(email):
        raise UsageProblem("--email must not be empty")
    settings = settings_from(ctx)
    now = utc_now()

    async def work(sessions: Any) -> tuple[str, Erasure | None]:
        outcome = await erase(sessions)
        if outcome[0] == "erased" and settings.is_sqlite:
            await _checkpoint(sessions)
        return outcome

    async def erase(sessions: Any) -> tuple[str, Erasure | None]:
        async with transaction(sessions) as session:
            shop = await find_shop(session=session, shop_id=shop_id)
            if shop is None:
                return "no_shop", None
            normalized = None
            if phone is not None:
                normalized = e164(phone, shop.country)
                if normalized is None:
                    return "bad_phone", None
            request = {
                "session": session,
                "shop_id": shop_id,
                "identity": Identity(email=normalize_email(email), phone=normalized),
                "customer_ids": [customer_id] if customer_id is not None else [],
                "now": now,
            }
            plan = await erase_customers(**request, dry_run=True)
            if not plan.found or not yes:
                return "plan", plan
            return "erased", await erase_customers(**request)

    outcome, erasure = run(with_database(settings, work))
    if outcome == "no_shop":
        raise NotFound(f"no shop with id {shop_id}")
    if outcome == "bad_phone":
        raise UsageProblem("--phone: not a valid phone number for the shop's country")
    assert erasure is not None
    if not erasure.found:
        given = f"id {customer_id}" if customer_id is not None else f"that {_given(email, phone)}"
        raise NotFound(f"no customer with {given} in shop {shop_id}")
    ids = ", ".join(str(i) for i in erasure.customer_ids)
    who = f"customer {ids}" if ids else "what is left of an erased customer"
    if outcome == "plan":
        raise UsageProblem(
            f"this would erase {who} in shop {shop_id}: {erasure.summary()}; "
            "run again with --yes to erase"
        )
    summary = f"erased {who} in shop {shop_id}: {erasure.summary()}"
    emit(as_json, erasure.as_dict(), lambda: click.echo(summary))


def _given(email: str | None, phone: str | None) -> str:
    if email is not None:
        return "e-mail"
    return "phone" if phone is not None else ""


async def _checkpoint(sessions: Any) -> None:
    """Move SQLite's write-ahead log into the database and empty it: no erased bytes stay."""
    from sqlalchemy import text

    async with sessions() as session:
        await session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


@customer.command("resolve")
@click.argument("customer_id", type=RECORD_ID)
@click.option("--shop", "shop_id", type=RECORD_ID, default=None, help="The customer's shop.")
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


@customer.command("list")
@click.option("--shop", "shop_id", type=RECORD_ID, required=True, help="The shop.")
@click.option("--query", default=None, help="Part of a name, e-mail, phone or Telegram id.")
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="At most this many, newest first.",
)
@json_option
@click.pass_context
def customer_list(
    ctx: click.Context, shop_id: int, query: str | None, limit: int, as_json: bool
) -> None:
    """Find a shop's customers by name, e-mail, phone or Telegram id (any case)."""
    from bot.store.customer_card import customer_summary
    from bot.store.customers import BadQuery, search_customers

    settings = settings_from(ctx)

    async def work(sessions: Any) -> list[dict[str, Any]]:
        async with sessions() as session:
            shop = await shop_or_fail(session, shop_id)
            found = await search_customers(
                session=session, shop_id=shop_id, query=query, country=shop.country, limit=limit
            )
            return [customer_summary(c) for c in found]

    try:
        records = run(with_database(settings, work))
    except BadQuery as exc:
        raise UsageProblem(f"--query {exc}") from None

    def human() -> None:
        if not records:
            click.echo(f"no customer matches {query!r}" if query else "no customers yet")
        for r in records:
            who = r["name"] or ("(erased)" if r["redacted"] else "-")
            telegram = f"tg {r['telegram_id']}" if r["telegram_id"] is not None else "no chat"
            click.echo(
                f"{r['id']:>6}  {who:<24} {r['email'] or '-':<28} {r['phone'] or '-':<16} "
                f"{telegram}  {r['consent']}"
            )

    emit(as_json, records, human)


@customer.command("show")
@click.argument("customer_id", type=RECORD_ID)
@click.option("--shop", "shop_id", type=RECORD_ID, default=None, help="The customer's shop.")
@json_option
@click.pass_context
def customer_show(
    ctx: click.Context, customer_id: int, shop_id: int | None, as_json: bool
) -> None:
    """Show a customer: profile, consent, exclusions, codes, orders, stage, every message.

    Each message Nudge scheduled for them is listed with its state and, when it was skipped or
    cancelled, why.
    """
    from bot.store.customer_card import customer_card

    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any] | None:
        async with sessions() as session:
            if shop_id is not None:
                await shop_or_fail(session, shop_id)
            return await customer_card(session=session, customer_id=customer_id, shop_id=shop_id)

    card = run(with_database(settings, work))
    if card is None:
        where = f" in shop {shop_id}" if shop_id is not None else ""
        raise NotFound(f"no customer with id {customer_id}{where}")
    emit(as_json, card, lambda: print_card(card))


def print_card(card: dict[str, Any]) -> None:
    """Print a customer card for people."""

    def line(label: str, value: Any) -> None:
        if value not in (None, "", [], {}):
            click.echo(f"  {label}: {value}")

    profile, consent = card["profile"], card["consent"]
    name = " ".join(p for p in (profile["first_name"], profile["last_name"]) if p) or "-"
    erased = "  (erased)" if card["redacted"] else ""
    click.echo(f"customer {card['customer_id']} of shop {card['shop_id']}: {name}{erased}")
    for key in ("email", "phone", "locale", "timezone", "country", "city", "birthday"):
        line(key, profile[key])
    line("external id", profile["external_id"])
    line("tags", ", ".join(profile["tags"]))
    line("attributes", ", ".join(f"{k}={v}" for k, v in (profile["attributes"] or {}).items()))
    line("last NPS", profile["nps_score"])
    click.echo("consent:")
    source = f" via {consent['consent_source']}" if consent["consent_source"] else ""
    since = f" since {consent['consent_at']}" if consent["consent_at"] else ""
    click.echo(f"  {consent['consent']}{source}{since}")
    if consent["telegram_chat_id"] is not None:
        username = f" @{consent['telegram_username']}" if consent["telegram_username"] else ""
        click.echo(f"  Telegram chat {consent['telegram_chat_id']}{username}")
    else:
        click.echo("  no Telegram chat linked")
    line("unreachable since", consent["unreachable_since"])
    line("offers paused until", consent["promos_paused_until"])
    if consent["needs_follow_up"]:
        click.echo("  flagged for follow-up: no promo messages until nudge customer resolve")
    if card["exclusions"]:
        click.echo("not interested in:")
        for e in card["exclusions"]:
            click.echo(f"  {e['topic']} (since {e['since']})")
    if card["codes"]:
        click.echo("promo codes:")
        for c in card["codes"]:
            click.echo(f"  {c['code']} from pool {c['pool']}, issued {c['issued_at'] or '-'}")
    metrics = card["metrics"]
    if metrics:
        click.echo(
            f"stage: {metrics['stage']} (since {metrics['stage_since'] or '-'}); "
            f"{metrics['orders_count']} orders, revenue {metrics['revenue']}, "
            f"RFM {metrics['rfm_cell'] or '-'}, next order expected "
            f"{metrics['expected_next_order_at'] or '-'}"
        )
    else:
        click.echo("stage: not computed yet")
    click.echo(f"orders: {len(card['orders'])}")
    for o in card["orders"]:
        credited = (
            f", credited to message {o['attributed_message_id']}"
            if o["attributed_message_id"]
            else ""
        )
        click.echo(
            f"  {o['placed_at']}  #{o['external_id']}  {o['status']}  "
            f"{o['total'] or '-'} {o['currency'] or ''}{credited}"
        )
    click.echo(f"messages: {len(card['messages'])}")
    for m in card["messages"]:
        when = m["sent_at"] or m["due_at"]
        why = f": {m['why']}" if m["why"] else ""
        error = f" ({m['error']})" if m["error"] and m["state"] in ("failed", "blocked") else ""
        click.echo(f"  {m['id']:>6}  {when}  {m['kind']:<18} {m['state']}{why}{error}")


@customer.command("refresh")
@click.option("--shop", "shop_id", type=RECORD_ID, required=True, help="The shop.")
@json_option
@click.pass_context
def customer_refresh(ctx: click.Context, shop_id: int, as_json: bool) -> None:
    """Recompute every customer's metrics, RFM and stage now (the service does it every 6 h)."""
    from bot.db import transaction
    from bot.lifecycle import refresh_metrics

    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        async with transaction(sessions) as session:
            await shop_or_fail(session, shop_id)
            done = await refresh_metrics(session=session, shop_id=shop_id, now=utc_now())
        return {
            "shop_id": shop_id,
            "customers": done.customers,
            "stage_changes": done.stage_changes,
            "median_interval_days": round(done.median_interval_days, 2),
        }

    result = run(with_database(settings, work))
    emit(
        as_json,
        result,
        lambda: click.echo(
            f"shop {shop_id}: {result['customers']} customers refreshed, "
            f"{result['stage_changes']} changed stage "
            f"(median days between orders: {result['median_interval_days']})"
        ),
    )

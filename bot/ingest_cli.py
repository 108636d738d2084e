"""`nudge inbox …`, `nudge shop check`, `nudge customer export`, `nudge link`: the shop connection.

Registered by bot/cli.py (`register_ingest_commands`); helpers of bot.cli are imported when a
command runs, so importing this module never needs bot.cli half-initialized.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def _base() -> Any:
    import bot.cli as base

    return base


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _now() -> datetime:
    from bot.clock import SystemClock

    return SystemClock().now()


# --------------------------------------------------------------------------------- inbox


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
        "next_attempt_at": _iso(row.next_attempt_at),
        "last_error": row.last_error,
        "received_at": _iso(row.received_at),
    }


@inbox.command("failed")
@click.option("--shop", "shop_id", type=int, default=None, help="Only this shop's deliveries.")
@json_option
@click.pass_context
def inbox_failed(ctx: click.Context, shop_id: int | None, as_json: bool) -> None:
    """List parked deliveries and the ones waiting for a retry, with their errors."""
    from bot.store.inbox import list_failed

    base = _base()
    settings = base.settings_from(ctx)

    async def work(sessions: Any) -> list[dict[str, Any]]:
        async with sessions() as session:
            rows = await list_failed(session=session, shop_id=shop_id)
            return [_delivery_record(row) for row in rows]

    records = base.run(base.with_database(settings, work))

    def human() -> None:
        if not records:
            click.echo("no failed deliveries")
        for r in records:
            click.echo(
                f"{r['id']:>6}  shop {r['shop_id']}  {r['platform']} {r['topic']}  "
                f"{r['state']} after {r['attempts']} attempt(s)  received {r['received_at']}"
            )
            click.echo(f"        {r['last_error']}")

    base.emit(as_json, records, human)


@inbox.command("retry")
@click.argument("inbox_id", type=int)
@json_option
@click.pass_context
def inbox_retry(ctx: click.Context, inbox_id: int, as_json: bool) -> None:
    """Put a parked delivery back in line now, with a fresh attempt count."""
    from bot.db import transaction
    from bot.models import InboxState
    from bot.store.inbox import retry_delivery

    base = _base()
    settings = base.settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any] | None:
        async with transaction(sessions) as session:
            row = await retry_delivery(session=session, inbox_id=inbox_id, now=_now())
            return _delivery_record(row) if row else None

    record = base.run(base.with_database(settings, work))
    if record is None:
        raise base.NotFound(f"no inbox delivery with id {inbox_id}")
    if record["state"] == InboxState.DONE:
        raise base.UsageProblem(f"delivery {inbox_id} was already applied")
    base.emit(as_json, record, lambda: click.echo(f"delivery {inbox_id} queued for a retry"))


# ------------------------------------------------------------------------------ shop check


@click.command("check")
@click.argument("shop_id", type=int)
@click.option("--stale", default="24h", show_default=True, help="Warn after this long silent.")
@json_option
@click.pass_context
def shop_check(ctx: click.Context, shop_id: int, stale: str, as_json: bool) -> None:
    """Tell whether a shop's deliveries still arrive: last delivery, backlog, parked count."""
    from bot.shop_settings import parse_duration
    from bot.store.inbox import shop_backlog
    from bot.store.shops import find_shop

    base = _base()
    settings = base.settings_from(ctx)
    try:
        quiet_limit = parse_duration(stale)
    except ValueError as exc:
        raise base.UsageProblem(f"--stale: {exc}") from None
    now = _now()

    async def work(sessions: Any) -> dict[str, Any] | None:
        async with sessions() as session:
            shop = await find_shop(session=session, shop_id=shop_id)
            if shop is None:
                return None
            backlog = await shop_backlog(session=session, shop_id=shop_id)
            return {"shop": shop, "backlog": backlog}

    found = base.run(base.with_database(settings, work))
    if found is None:
        raise base.NotFound(f"no shop with id {shop_id}")
    shop, backlog = found["shop"], found["backlog"]
    warnings = []
    last = shop.last_delivery_at
    if last is None:
        warnings.append("no delivery has arrived yet: check the webhook URL and secret")
    elif now - last > quiet_limit:
        warnings.append(
            f"no delivery for {_age(now - last)} (more than {stale}): the platform may have "
            "disabled the webhook; check its delivery log"
        )
    if backlog.parked:
        warnings.append(f"{backlog.parked} parked deliveries: nudge inbox failed --shop {shop_id}")
    if shop.uninstalled_at is not None:
        warnings.append(f"the app was uninstalled at {shop.uninstalled_at.isoformat()}")
    record = {
        "shop_id": shop_id,
        "platform": shop.platform,
        "last_delivery_at": _iso(last),
        "seconds_since_last_delivery": int((now - last).total_seconds()) if last else None,
        "pending": backlog.pending,
        "retrying": backlog.retrying,
        "parked": backlog.parked,
        "oldest_pending_at": _iso(backlog.oldest_pending_at),
        "stale_after": stale,
        "ok": not warnings,
        "warnings": warnings,
    }

    def human() -> None:
        click.echo(f"shop {shop_id} ({shop.platform})")
        click.echo(f"last delivery: {_iso(last) or 'never'}")
        click.echo(
            f"inbox: {backlog.pending} pending ({backlog.retrying} retrying), "
            f"{backlog.parked} parked"
        )
        for warning in warnings:
            click.echo(f"warning: {warning}")
        if not warnings:
            click.echo("ok")

    base.emit(as_json, record, human)


def _age(delta: Any) -> str:
    from bot.shop_settings import format_duration

    return format_duration(delta.__class__(seconds=int(delta.total_seconds())))


# ---------------------------------------------------------------------------- customers


@click.group()
def customer() -> None:
    """What Nudge stores about a shop's customers."""


@customer.command("export")
@click.argument("customer_id", type=int)
@click.option("--shop", "shop_id", type=int, default=None, help="The customer's shop.")
@click.pass_context
def customer_export(ctx: click.Context, customer_id: int, shop_id: int | None) -> None:
    """Print everything stored about a customer as JSON (GDPR data request)."""
    from bot.models import Customer
    from bot.store.privacy import export_customer

    base = _base()
    settings = base.settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any] | None:
        async with sessions() as session:
            found = await session.get(Customer, customer_id)
            if found is None or (shop_id is not None and found.shop_id != shop_id):
                return None
            return await export_customer(
                session=session, shop_id=found.shop_id, customer_id=customer_id
            )

    export = base.run(base.with_database(settings, work))
    if export is None:
        where = f" in shop {shop_id}" if shop_id is not None else ""
        raise base.NotFound(f"no customer with id {customer_id}{where}")
    click.echo(json.dumps(export, ensure_ascii=False, indent=2, default=str))


# ------------------------------------------------------------------------------------ link


@click.command("link")
@click.option("--shop", "shop_id", type=int, required=True)
@click.option("--customer", "customer_id", type=int, default=None)
@click.option("--email", default=None)
@click.option("--phone", default=None)
@json_option
@click.pass_context
def link(
    ctx: click.Context,
    shop_id: int,
    customer_id: int | None,
    email: str | None,
    phone: str | None,
    as_json: bool,
) -> None:
    """Print the Telegram deep link that links a customer's chat (for e-mails, order pages)."""
    from bot.linking import deep_link, make_link_token
    from bot.store.customers import find_by_email, find_by_phone, get_customer
    from bot.store.shops import find_shop
    from integrations.fields import e164

    base = _base()
    if sum(value is not None for value in (customer_id, email, phone)) != 1:
        raise base.UsageProblem("give exactly one of --customer, --email, --phone")
    settings = base.settings_from(ctx)
    now = _now()

    async def work(sessions: Any) -> tuple[Any, Any]:
        async with sessions() as session:
            shop = await find_shop(session=session, shop_id=shop_id)
            if shop is None:
                return None, None
            if customer_id is not None:
                found = await get_customer(
                    session=session, shop_id=shop_id, customer_id=customer_id
                )
            elif email is not None:
                found = await find_by_email(session=session, shop_id=shop_id, email=email)
            else:
                normalized = e164(phone, shop.country) or phone or ""
                found = await find_by_phone(session=session, shop_id=shop_id, phone=normalized)
            return shop, found

    shop, found = base.run(base.with_database(settings, work))
    if shop is None:
        raise base.NotFound(f"no shop with id {shop_id}")
    if found is None:
        raise base.NotFound(f"no such customer in shop {shop_id}")
    if found.redacted_hash is not None:
        raise base.UsageProblem(f"customer {found.id} was redacted; no link can be made")
    token = make_link_token(
        secret_key=settings.secret_key.get_secret_value(),
        shop_id=shop_id,
        customer_id=found.id,
        now=now,
    )
    record = {
        "shop_id": shop_id,
        "customer_id": found.id,
        "token": token,
        "deep_link": deep_link(shop.bot_username, token),
    }
    base.emit(as_json, record, lambda: click.echo(record["deep_link"]))


def register_ingest_commands(cli: click.Group) -> None:
    """Add the shop-connection commands to the `nudge` group."""
    cli.add_command(inbox)
    cli.add_command(customer)
    cli.add_command(link)
    shop_group = cli.commands.get("shop")
    if isinstance(shop_group, click.Group):
        shop_group.add_command(shop_check)

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
@click.option(
    "--backlog-age",
    default="5m",
    show_default=True,
    help="Warn when a delivery has waited this long to be applied.",
)
@json_option
@click.pass_context
def shop_check(
    ctx: click.Context, shop_id: int, stale: str, backlog_age: str, as_json: bool
) -> None:
    """Tell whether a shop's deliveries arrive and are applied; exit 3 when something is wrong.

    Checks the last delivery (a WooCommerce ping counts), the backlog and its oldest age,
    deliveries retrying or parked, and deliveries refused for a bad signature.
    """
    from datetime import timedelta

    from bot.shop_settings import parse_duration
    from bot.store.inbox import shop_backlog
    from bot.store.shops import find_shop

    base = _base()
    settings = base.settings_from(ctx)
    try:
        quiet_limit = parse_duration(stale)
    except ValueError as exc:
        raise base.UsageProblem(f"--stale: {exc}") from None
    try:
        lag_limit = parse_duration(backlog_age)
    except ValueError as exc:
        raise base.UsageProblem(f"--backlog-age: {exc}") from None
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
    oldest = backlog.oldest_pending_at
    waited = max(now - oldest, timedelta(0)) if oldest else None
    if waited is not None and waited > lag_limit:
        warnings.append(
            f"{backlog.pending} deliveries pending, the oldest for {_age(waited)} (more than "
            f"{backlog_age}): is the inbox worker (nudge serve) running? "
            f"nudge inbox failed --shop {shop_id}"
        )
    if backlog.retrying:
        warnings.append(
            f"{backlog.retrying} deliveries failing and being retried: "
            f"nudge inbox failed --shop {shop_id}"
        )
    if backlog.parked:
        warnings.append(f"{backlog.parked} parked deliveries: nudge inbox failed --shop {shop_id}")
    failures, failed_at = shop.signature_failures or 0, shop.last_signature_failure_at
    if failures:
        warnings.append(
            f"{failures} deliveries failed the signature check since the last authentic one "
            f"(last at {_iso(failed_at)}): the webhook secret on the platform must be the "
            "shop's webhook_secret"
        )
    elif failed_at is not None and now - failed_at <= quiet_limit:
        warnings.append(
            f"a delivery failed the signature check at {_iso(failed_at)}: another webhook "
            "may use an old secret"
        )
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
        "oldest_pending_at": _iso(oldest),
        "oldest_pending_seconds": int(waited.total_seconds()) if waited is not None else None,
        "signature_failures": failures,
        "last_signature_failure_at": _iso(failed_at),
        "stale_after": stale,
        "backlog_age": backlog_age,
        "ok": not warnings,
        "warnings": warnings,
    }

    def human() -> None:
        click.echo(f"shop {shop_id} ({shop.platform})")
        click.echo(f"last delivery: {_iso(last) or 'never'}")
        click.echo(
            f"inbox: {backlog.pending} pending ({backlog.retrying} retrying), "
            f"{backlog.parked} parked"
            + (f", oldest pending for {_age(waited)}" if waited is not None else "")
        )
        if failures or failed_at:
            click.echo(
                f"bad signatures: {failures} since the last authentic delivery, "
                f"last at {_iso(failed_at)}"
            )
        for warning in warnings:
            click.echo(f"warning: {warning}")
        if not warnings:
            click.echo("ok")

    base.emit(as_json, record, human)
    if warnings:
        ctx.exit(UNHEALTHY)


UNHEALTHY = 3  # `nudge shop check`: the shop needs attention (1: no such shop, 2: usage)


def _age(delta: Any) -> str:
    """Render an age in its largest unit that counts at least two: 601s -> 10m, 30h -> 30h."""
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# ---------------------------------------------------------------------------- customers


@click.group()
def customer() -> None:
    """What Nudge stores about a shop's customers."""


@customer.command("export")
@click.argument("customer_id", type=int)
@click.option("--shop", "shop_id", type=int, default=None, help="The customer's shop.")
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


@customer.command("erase")
@click.option("--shop", "shop_id", type=int, required=True, help="The customer's shop.")
@click.option("--customer", "customer_id", type=int, default=None, help="Nudge's customer id.")
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

    base = _base()
    if sum(value is not None for value in (customer_id, email, phone)) != 1:
        raise base.UsageProblem("give exactly one of --customer, --email, --phone")
    if email is not None and not normalize_email(email):
        raise base.UsageProblem("--email must not be empty")
    settings = base.settings_from(ctx)
    now = _now()

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

    outcome, erasure = base.run(base.with_database(settings, work))
    if outcome == "no_shop":
        raise base.NotFound(f"no shop with id {shop_id}")
    if outcome == "bad_phone":
        raise base.UsageProblem("--phone: not a valid phone number for the shop's country")
    assert erasure is not None
    if not erasure.found:
        given = f"id {customer_id}" if customer_id is not None else f"that {_given(email, phone)}"
        raise base.NotFound(f"no customer with {given} in shop {shop_id}")
    ids = ", ".join(str(i) for i in erasure.customer_ids)
    who = f"customer {ids}" if ids else "what is left of an erased customer"
    if outcome == "plan":
        raise base.UsageProblem(
            f"this would erase {who} in shop {shop_id}: {erasure.summary()}; "
            "run again with --yes to erase"
        )
    summary = f"erased {who} in shop {shop_id}: {erasure.summary()}"
    base.emit(as_json, erasure.as_dict(), lambda: click.echo(summary))


def _given(email: str | None, phone: str | None) -> str:
    if email is not None:
        return "e-mail"
    return "phone" if phone is not None else ""


async def _checkpoint(sessions: Any) -> None:
    """Move SQLite's write-ahead log into the database and empty it: no erased bytes stay."""
    from sqlalchemy import text

    async with sessions() as session:
        await session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


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

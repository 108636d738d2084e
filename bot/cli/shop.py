"""`nudge shop …`: connect shops, read and tune them, check their deliveries."""

from __future__ import annotations

from typing import Any

import click

from bot import shops as shops_service
from bot.cli.common import (
    RECORD_ID,
    NotFound,
    UsageProblem,
    emit,
    iso,
    json_option,
    run,
    settings_from,
    utc_now,
    with_database,
)
from bot.models import Platform, Shop


@click.group()
def shop() -> None:
    """Connect and tune shops."""


shop_record = shops_service.shop_record


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "-"
    return str(value)


HIDDEN = ("uninstalled_at", "chosen", "notes", "next_steps", "topics", "webhook_secret_source")


def _print_shop(record: dict[str, Any]) -> None:
    for key, value in record.items():
        if key == "settings":
            click.echo("settings:")
            for name, setting in value.items():
                click.echo(f"  {name} = {_shown(setting)}")
        elif key not in HIDDEN:
            click.echo(f"{key}: {_shown(value)}")
    if record.get("uninstalled_at"):
        click.echo(f"disconnected: {record['uninstalled_at']} (nothing is sent for this shop)")


# How `shop add` names each field in its errors: the flag the owner typed.
FLAGS = {
    "name": "--name",
    "platform": "--platform",
    "currency": "--currency",
    "country": "--country",
    "locale": "--locale",
    "timezone": "--timezone",
    "bot_token": "--bot-token",
    "bot_username": "--bot-username",
    "webhook_secret": "--webhook-secret",
}


def _as_flag(message: str) -> str:
    field, sep, rest = message.partition(":")
    return f"{FLAGS[field]}:{rest}" if sep and field in FLAGS else message


def _interactive() -> bool:
    """Tell whether a person is at the keyboard (stdin is a terminal) to answer a prompt."""
    import sys

    stdin = sys.stdin
    return stdin is not None and stdin.isatty()


def _ask_shopify_secret() -> str | None:
    """Ask for the Shopify app's client secret (hidden); Enter leaves it for later."""
    from bot.shop_settings import SettingError, check_webhook_secret

    def check(value: str) -> str | None:
        if not value:
            return None
        try:
            return check_webhook_secret(value)
        except SettingError as exc:
            raise click.UsageError(str(exc)) from None

    return click.prompt(
        "Shopify signs webhooks with your app's client secret (Partners → Apps → your app → "
        "Client credentials; a store-admin webhook: Settings → Notifications → Webhooks).\n"
        "Paste it (hidden; Enter to set it later)",
        default="",
        show_default=False,
        hide_input=True,
        value_proc=check,
    )


@shop.command("add")
@click.option("--platform", type=click.Choice([p.value for p in Platform]), required=True)
@click.option("--name", required=True)
@click.option(
    "--bot-token",
    default=None,
    help="The shop's Telegram bot token from @BotFather (checked with Telegram's getMe).",
)
@click.option("--bot-username", default=None, help="Default: what Telegram says (getMe).")
@click.option("--currency", default=None, help="ISO 4217 code; default: the country's, else USD.")
@click.option("--country", default=None, help="ISO 3166 code; currency, locale, time zone follow.")
@click.option("--locale", default=None, help="en, ru, uk or pl; default: the country's, else en.")
@click.option("--timezone", default=None, help="IANA zone; default: the country's, else UTC.")
@click.option(
    "--webhook-secret",
    default=None,
    help="The key the platform signs with (Shopify: the app's client secret); default: new.",
)
@json_option
@click.pass_context
def shop_add(
    ctx: click.Context,
    platform: str,
    name: str,
    bot_token: str | None,
    bot_username: str | None,
    currency: str | None,
    country: str | None,
    locale: str | None,
    timezone: str | None,
    webhook_secret: str | None,
    as_json: bool,
) -> None:
    """Connect a shop; print its webhook URL and secret, the topics, and what to do next.

    Currency, locale and time zone follow --country where the country has one (UA: UAH, uk,
    Europe/Kyiv); the flags win.
    """
    from bot.shops import ShopProblem, ShopRequest, connect_shop, next_steps

    settings = settings_from(ctx)
    if platform == Platform.SHOPIFY and webhook_secret is None and not as_json and _interactive():
        webhook_secret = _ask_shopify_secret()
    request = ShopRequest(
        platform=platform,
        name=name,
        bot_token=bot_token,
        bot_username=bot_username,
        currency=currency,
        country=country,
        locale=locale,
        timezone=timezone,
        webhook_secret=webhook_secret,
    )

    async def work(sessions: Any) -> dict[str, Any]:
        connected = await connect_shop(
            sessions, request, api_base=settings.telegram_base, now=utc_now()
        )
        topics = _subscribe_topics(platform)
        record = shop_record(settings, connected.shop)
        record["topics"] = topics
        record["webhook_secret_source"] = "given" if connected.secret_given else "generated"
        record["chosen"] = connected.chosen
        record["notes"] = connected.notes
        record["next_steps"] = next_steps(
            connected.shop,
            public_base=settings.public_base,
            secret_given=connected.secret_given,
            topics=topics,
        )
        return record

    try:
        record = run(with_database(settings, work))
    except ShopProblem as exc:
        raise UsageProblem(_as_flag(str(exc))) from None
    emit(as_json, record, lambda: _print_added(record))


def _subscribe_topics(platform: str) -> list[str]:
    from integrations import ADAPTERS

    adapter = ADAPTERS[platform]
    return [*adapter.subscribe_topics, *getattr(adapter, "compliance_topics", ())]


def _print_added(record: dict[str, Any]) -> None:
    shown = dict(record)
    if record["platform"] == Platform.SHOPIFY and record["webhook_secret_source"] != "given":
        shown["webhook_secret"] = "(not set: Shopify's app client secret goes here, see next)"
    _print_shop(shown)
    if record["chosen"]:
        chosen = ", ".join(f"{key} {value}" for key, value in record["chosen"].items())
        click.echo(f"from the country {record['country']}: {chosen} (flags override)")
    for note in record["notes"]:
        click.echo(f"note: {note}")
    click.echo(f"subscribe these webhook topics (to {record['webhook_url']}):")
    for topic in record["topics"]:
        click.echo(f"  {topic}")
    click.echo("next:")
    for number, step in enumerate(record["next_steps"], 1):
        click.echo(f"  {number}. {step}")


@shop.command("list")
@json_option
@click.pass_context
def shop_list(ctx: click.Context, as_json: bool) -> None:
    """List connected shops."""
    from bot.store.shops import list_shops

    settings = settings_from(ctx)

    async def work(sessions: Any) -> list[dict[str, Any]]:
        async with sessions() as session:
            return [shop_record(settings, s) for s in await list_shops(session=session)]

    records = run(with_database(settings, work))

    def human() -> None:
        if not records:
            click.echo("no shops yet: nudge shop add --platform shopify --name 'My shop'")
        for r in records:
            gone = "  (disconnected)" if r["uninstalled_at"] else ""
            click.echo(
                f"{r['id']:>4}  {r['platform']:<12} {r['name']}  ({r['webhook_url']}){gone}"
            )

    emit(as_json, records, human)


@shop.command("show")
@click.argument("shop_id", type=RECORD_ID)
@json_option
@click.pass_context
def shop_show(ctx: click.Context, shop_id: int, as_json: bool) -> None:
    """Show one shop with its settings."""
    from bot.store.shops import find_shop

    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any] | None:
        async with sessions() as session:
            item = await find_shop(session=session, shop_id=shop_id)
            return shop_record(settings, item) if item else None

    record = run(with_database(settings, work))
    if record is None:
        raise NotFound(f"no shop with id {shop_id}")
    emit(as_json, record, lambda: _print_shop(record))


@shop.command("set")
@click.argument("shop_id", type=RECORD_ID)
@click.argument("assignments", nargs=-1, required=True)
@json_option
@click.pass_context
def shop_set(
    ctx: click.Context, shop_id: int, assignments: tuple[str, ...], as_json: bool
) -> None:
    """Change a shop: key=value … (all or nothing; durations accept 90s, 1h30m, 3d).

    Keys: name, currency, country, locale, timezone, bot_token (checked with Telegram; sets
    bot_username), bot_username, webhook_secret (rotates the signing key; a running service
    uses it within seconds), and every setting `nudge shop show` lists. An empty value puts a
    setting back to its default. A running service picks up a new bot within seconds.
    """
    from bot.shop_settings import SettingError
    from bot.shops import ShopProblem, change_shop
    from bot.store.shops import ShopNotFound

    settings = settings_from(ctx)
    pairs = []
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise UsageProblem(f"expected key=value, got {assignment[:60]!r}")
        pairs.append((key.strip(), value))

    async def work(sessions: Any) -> dict[str, Any]:
        changed = await change_shop(
            sessions, shop_id=shop_id, changes=pairs, api_base=settings.telegram_base
        )
        record = shop_record(settings, changed.shop)
        record["notes"] = changed.notes
        return record

    try:
        record = run(with_database(settings, work))
    except ShopNotFound as exc:
        raise NotFound(str(exc)) from None
    except (SettingError, ShopProblem) as exc:
        raise UsageProblem(str(exc)) from None

    def human() -> None:
        _print_shop(record)
        for note in record["notes"]:
            click.echo(f"note: {note}")

    emit(as_json, record, human)


@shop.command("remove")
@click.argument("shop_id", type=RECORD_ID)
@click.option("--yes", is_flag=True, help="Disconnect for real (without it, say what happens).")
@json_option
@click.pass_context
def shop_remove(ctx: click.Context, shop_id: int, yes: bool, as_json: bool) -> None:
    """Disconnect a shop: its bot's webhook is deleted and nothing more is sent.

    Messages not sent yet are cancelled. Customers, orders, events, the message history, promo
    codes and stored deliveries are kept (for reports and erasure requests: nudge customer
    erase). Without --yes nothing changes.
    """
    from bot.shops import disconnect
    from bot.store.shops import ShopNotFound, find_shop

    settings = settings_from(ctx)

    async def look(sessions: Any) -> Shop | None:
        async with sessions() as session:
            return await find_shop(session=session, shop_id=shop_id)

    async def work(sessions: Any) -> dict[str, Any]:
        result = await disconnect(
            sessions, shop_id=shop_id, api_base=settings.telegram_base, now=utc_now()
        )
        return result.as_dict()

    if not yes:
        found = run(with_database(settings, look))
        if found is None:
            raise NotFound(f"no shop with id {shop_id}")
        bot = f"@{found.bot_username}" if found.bot_username else "its bot"
        raise UsageProblem(
            f"this would disconnect shop {shop_id} ({found.name}): delete the webhook of {bot} "
            "and cancel every message not sent yet, keeping its customers, orders and history; "
            "run again with --yes"
        )
    try:
        result = run(with_database(settings, work))
    except ShopNotFound as exc:
        raise NotFound(str(exc)) from None

    def human() -> None:
        if result["already_disconnected"]:
            click.echo(f"shop {shop_id} was already disconnected")
        else:
            click.echo(f"shop {shop_id} disconnected: nothing more is sent for it")
        if result["webhook_deleted"]:
            click.echo("the bot's Telegram webhook is deleted")
        elif result["webhook_error"]:
            click.echo(
                "warning: could not delete the bot's Telegram webhook "
                f"({result['webhook_error']}); Nudge answers its updates 404 (a running "
                "service deletes it within seconds)"
            )
        click.echo(f"cancelled {result['cancelled_messages']} message(s) not sent yet")
        kept = ", ".join(
            f"{count} {name.replace('_', ' ')}" for name, count in result["kept"].items()
        )
        click.echo(f"kept: {kept} (erase a customer with nudge customer erase)")
        click.echo(
            "remove the shop's webhooks on its platform too: what they still send is stored, "
            "but nothing is sent to customers"
        )

    emit(as_json, result, human)


@shop.command("check")
@click.argument("shop_id", type=RECORD_ID)
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

    settings = settings_from(ctx)
    try:
        quiet_limit = parse_duration(stale)
    except ValueError as exc:
        raise UsageProblem(f"--stale: {exc}") from None
    try:
        lag_limit = parse_duration(backlog_age)
    except ValueError as exc:
        raise UsageProblem(f"--backlog-age: {exc}") from None
    now = utc_now()

    async def work(sessions: Any) -> dict[str, Any] | None:
        async with sessions() as session:
            shop = await find_shop(session=session, shop_id=shop_id)
            if shop is None:
                return None
            backlog = await shop_backlog(session=session, shop_id=shop_id)
            return {"shop": shop, "backlog": backlog}

    found = run(with_database(settings, work))
    if found is None:
        raise NotFound(f"no shop with id {shop_id}")
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
        fix = (
            "Shopify signs with the app's client secret: give it to Nudge with "
            f"nudge shop set {shop_id} webhook_secret=KEY"
            if shop.platform == Platform.SHOPIFY
            else "the webhook secret on the platform must be the shop's webhook_secret"
        )
        warnings.append(
            f"{failures} deliveries failed the signature check since the last authentic one "
            f"(last at {iso(failed_at)}): {fix}"
        )
    elif failed_at is not None and now - failed_at <= quiet_limit:
        warnings.append(
            f"a delivery failed the signature check at {iso(failed_at)}: another webhook "
            "may use an old secret"
        )
    if shop.uninstalled_at is not None:
        warnings.append(f"the app was uninstalled at {shop.uninstalled_at.isoformat()}")
    record = {
        "shop_id": shop_id,
        "platform": shop.platform,
        "last_delivery_at": iso(last),
        "seconds_since_last_delivery": int((now - last).total_seconds()) if last else None,
        "pending": backlog.pending,
        "retrying": backlog.retrying,
        "parked": backlog.parked,
        "oldest_pending_at": iso(oldest),
        "oldest_pending_seconds": int(waited.total_seconds()) if waited is not None else None,
        "signature_failures": failures,
        "last_signature_failure_at": iso(failed_at),
        "stale_after": stale,
        "backlog_age": backlog_age,
        "ok": not warnings,
        "warnings": warnings,
    }

    def human() -> None:
        click.echo(f"shop {shop_id} ({shop.platform})")
        click.echo(f"last delivery: {iso(last) or 'never'}")
        click.echo(
            f"inbox: {backlog.pending} pending ({backlog.retrying} retrying), "
            f"{backlog.parked} parked"
            + (f", oldest pending for {_age(waited)}" if waited is not None else "")
        )
        if failures or failed_at:
            click.echo(
                f"bad signatures: {failures} since the last authentic delivery, "
                f"last at {iso(failed_at)}"
            )
        for warning in warnings:
            click.echo(f"warning: {warning}")
        if not warnings:
            click.echo("ok")

    emit(as_json, record, human)
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

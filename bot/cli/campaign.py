"""`nudge campaign …`: create, preview, send, pause, resume, cancel, list and report campaigns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from bot import campaign_service as service
from bot.cli.common import (
    RECORD_ID,
    NotFound,
    UsageProblem,
    emit,
    json_option,
    read_json_file,
    run,
    settings_from,
    shop_or_fail,
    utc_now,
    with_database,
)

id_argument = click.argument("campaign_id", metavar="ID", type=RECORD_ID)


def _errors(work: Any) -> Any:
    from bot.campaigns import CampaignError

    try:
        return work()
    except CampaignError as exc:
        message = str(exc)
        if message.startswith("no campaign "):
            raise NotFound(message) from None
        raise UsageProblem(message) from None


@click.group()
def campaign() -> None:
    """Promo campaigns to a segment (see the README's "Promo campaigns")."""


@campaign.command("create")
@click.option("--shop", "shop_id", type=RECORD_ID, required=True, help="The shop's id.")
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The campaign file (JSON).",
)
@json_option
@click.pass_context
def campaign_create(ctx: click.Context, shop_id: int, file: Path, as_json: bool) -> None:
    """Check a campaign file and store it as a draft; print its id."""
    settings = settings_from(ctx)
    raw = read_json_file(file)

    async def work(sessions: Any) -> dict[str, Any]:
        async with sessions() as session:
            await shop_or_fail(session, shop_id)
        return await service.create(sessions, shop_id=shop_id, raw=raw, now=utc_now())

    record = _errors(lambda: run(with_database(settings, work)))
    emit(as_json, record, lambda: click.echo(record["id"]))


@campaign.command("list")
@click.option("--shop", "shop_id", type=RECORD_ID, required=True, help="The shop's id.")
@json_option
@click.pass_context
def campaign_list(ctx: click.Context, shop_id: int, as_json: bool) -> None:
    """List the shop's campaigns, newest first."""
    settings = settings_from(ctx)

    async def work(sessions: Any) -> list[dict[str, Any]]:
        async with sessions() as session:
            await shop_or_fail(session, shop_id)
        return await service.listing(sessions, shop_id=shop_id)

    records = run(with_database(settings, work))

    def human() -> None:
        if not records:
            click.echo("no campaigns yet: nudge campaign create --shop ID --file campaign.json")
        for r in records:
            when = r["send_at"] or (f"{r['local_time']} local" if r["local_time"] else "")
            click.echo(f"{r['id']}  {r['status']:<9}  {r['name']}  {when}".rstrip())

    emit(as_json, records, human)


@campaign.command("preview")
@id_argument
@json_option
@click.pass_context
def campaign_preview(ctx: click.Context, campaign_id: int, as_json: bool) -> None:
    """Show each locale and variant as the customer will see it, missing texts and the audience."""
    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        return await service.preview(sessions, campaign_id=campaign_id, now=utc_now())

    result = _errors(lambda: run(with_database(settings, work)))

    def human() -> None:
        a = result["audience"]
        click.echo(f"campaign {result['id']}: {result['name']} ({result['status']})")
        click.echo(f"audience: {a['total']} (holdout {a['holdout']})")
        for variant, count in sorted(a["variants"].items()):
            per = a["by_variant_and_locale"].get(variant, {})
            split = ", ".join(f"{k} {v}" for k, v in sorted(per.items()))
            click.echo(f"  variant {variant}: {count}" + (f" ({split})" if split else ""))
        for where, locales in result["missing_translations"].items():
            click.echo(
                f"missing translation in {where}: {', '.join(locales)} "
                f"(they get the {result['default_locale']} text)"
            )
        for m in result["messages"]:
            head = f"--- {m['variant']} · step {m['step']} · {m['locale']}"
            if m["text_locale"] != m["locale"]:
                head += f" (shows the {m['text_locale']} text)"
            click.echo(head)
            if m["image_url"]:
                click.echo(f"[photo] {m['image_url']}")
            click.echo(m["text"])
            for row in m["buttons"]:
                click.echo("  " + "  ".join(f"[{b['text']}]" for b in row))

    emit(as_json, result, human)


@campaign.command("send")
@id_argument
@click.option("--at", "at", default=None, help="Send at this moment (ISO 8601 with offset).")
@click.option(
    "--local-time",
    "local_time",
    default=None,
    help="Send at this time of day (HH:MM) in each customer's own time zone.",
)
@json_option
@click.pass_context
def campaign_send(
    ctx: click.Context, campaign_id: int, at: str | None, local_time: str | None, as_json: bool
) -> None:
    """Start a campaign: fan it out into the outbox (a re-run goes on where it stopped)."""
    from bot.campaigns import parse_local_time, parse_moment

    if at is not None and local_time is not None:
        raise UsageProblem("give either --at or --local-time, not both")
    moment = _errors(lambda: parse_moment(at, "--at")) if at is not None else None
    if local_time is not None:
        local_time = _errors(lambda: parse_local_time(local_time, "--local-time")).strftime(
            "%H:%M"
        )
    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        bar: Any = None

        def started(total: int) -> None:
            nonlocal bar
            if not as_json:
                bar = click.progressbar(length=max(total, 1), label="fanning out")
                bar.__enter__()

        try:
            return await service.send(
                sessions,
                campaign_id=campaign_id,
                now=utc_now,
                at=moment,
                local_time=local_time,
                started=started,
                progress=lambda n: bar.update(n) if bar is not None else None,
            )
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)

    record = _errors(lambda: run(with_database(settings, work)))

    def human() -> None:
        if record["stopped"]:
            click.echo(f"campaign {campaign_id} is {record['stopped']}; fan-out stopped")
            return
        if record["already_sent"]:
            click.echo(f"campaign {campaign_id} was already sent; nothing is scheduled twice")
            return
        when = record["send_at"] or (
            f"at {record['local_time']} in each customer's time zone"
            if record["local_time"]
            else "now"
        )
        click.echo(
            f"campaign {campaign_id}: {record['scheduled']} messages scheduled ({when}), "
            f"{record['holdout']} held out"
        )

    emit(as_json, record, human)


def _state_command(name: str, verb: str) -> None:
    @campaign.command(name)
    @id_argument
    @json_option
    @click.pass_context
    def command(ctx: click.Context, campaign_id: int, as_json: bool) -> None:
        settings = settings_from(ctx)

        async def work(sessions: Any) -> dict[str, Any]:
            return await service.act(sessions, campaign_id=campaign_id, action=name, now=utc_now)

        record = _errors(lambda: run(with_database(settings, work)))
        emit(
            as_json,
            record,
            lambda: click.echo(f"campaign {campaign_id} {verb} ({record['rows']} messages)"),
        )

    command.__doc__ = {
        "pause": "Pause a campaign: nothing more goes out until it is resumed.",
        "resume": "Resume a paused campaign (due times move by the paused time).",
        "cancel": "Cancel a campaign: nothing more of it goes out.",
    }[name]


for _name, _verb in (("pause", "paused"), ("resume", "resumed"), ("cancel", "cancelled")):
    _state_command(_name, _verb)


@campaign.command("report")
@id_argument
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also draw the funnel per variant to FILE.svg or FILE.png.",
)
@json_option
@click.pass_context
def campaign_report(
    ctx: click.Context, campaign_id: int, chart: Path | None, as_json: bool
) -> None:
    """Report sends, clicks, orders and revenue, per variant, locale and step, and the uplift."""
    from bot.campaigns import funnel_chart

    if chart is not None and chart.suffix.lower() not in (".svg", ".png"):
        raise UsageProblem(f"{chart}: name the chart file *.svg or *.png")
    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        return await service.report(sessions, campaign_id=campaign_id, now=utc_now())

    result = _errors(lambda: run(with_database(settings, work)))
    if chart is not None:
        funnel_chart(result, chart)

    def human() -> None:
        click.echo(f"campaign {result['id']}: {result['name']} ({result['status']})")
        _tally("all", result)
        for name, tally in result["variants"].items():
            _tally(f"variant {name}", tally)
        for name, tally in result["locales"].items():
            _tally(f"locale {name}", tally)
        if "2" in result["steps"]:
            _tally("follow-up", result["steps"]["2"])
        up = result["uplift"]
        if up:
            rate, money = up["order_rate"], up["revenue_per_customer"]
            click.echo(
                f"uplift vs holdout: order rate {rate['difference'] * 100:+.2f} pp "
                f"(95% CI {rate['ci95'][0] * 100:+.2f} to {rate['ci95'][1] * 100:+.2f}), "
                f"revenue per customer {money['difference']:+.2f} {result['currency']} "
                f"(95% CI {money['ci95'][0]:+.2f} to {money['ci95'][1]:+.2f})"
                + ("" if rate["significant"] or money["significant"] else "; not significant yet")
            )
        if result["winner"]:
            w = result["winner"]
            click.echo(f"winner: variant {w['variant']} by {w['by'].replace('_', ' ')}")
        if chart is not None:
            click.echo(f"chart: {chart}")

    emit(as_json, result, human)


def _tally(label: str, t: dict[str, Any]) -> None:
    skipped = ", ".join(f"{k} {v}" for k, v in t["skipped_by_reason"].items())
    click.echo(
        f"  {label}: audience {t['audience']}, holdout {t['holdout']}, sent {t['sent']}, "
        f"blocked {t['blocked']}, failed {t['failed']}, skipped {t['skipped']}"
        + (f" ({skipped})" if skipped else "")
        + f", pending {t['pending']}, clicked {t['clicked']}, not interested "
        f"{t['not_interested']}, orders {t['orders']}, revenue {t['revenue']}"
    )

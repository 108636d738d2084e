"""`nudge report` (what the flows earned), `nudge report nps` and `nudge report lifecycle`."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from bot.cli.common import (
    RECORD_ID,
    UsageProblem,
    emit,
    json_option,
    run,
    settings_from,
    shop_or_fail,
    utc_now,
    with_database,
)
from bot.lifecycle import lifecycle_report, lifecycle_svg
from bot.store.reports import UnknownFlow, check_flow, flow_report


@click.group(invoke_without_command=True)
@click.option("--shop", "shop_id", type=RECORD_ID, help="The shop to report on.")
@click.option("--flow", default=None, help="Only one flow's messages, e.g. cart.")
@json_option
@click.pass_context
def report(ctx: click.Context, shop_id: int | None, flow: str | None, as_json: bool) -> None:
    """What the shop's messages achieved: sent, blocked, skipped, clicks, orders, revenue."""
    if ctx.invoked_subcommand is not None:
        return
    if shop_id is None:
        raise UsageProblem("--shop is required")
    try:
        check_flow(flow)
    except UnknownFlow as exc:
        raise UsageProblem(f"--flow: {exc}") from None
    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        async with sessions() as session:
            shop = await shop_or_fail(session, shop_id)
            data = (await flow_report(session=session, shop_id=shop_id, flow=flow)).as_dict()
        data["currency"] = shop.currency
        return data

    data = run(with_database(settings, work))
    emit(as_json, data, lambda: print_report(data))


def print_report(data: dict[str, Any]) -> None:
    """Print a flow report as an aligned table."""
    rows: list[tuple[str, object]] = [
        ("sent", data["sent"]),
        ("blocked", data["blocked"]),
        ("failed", data["failed"]),
        ("unknown (crash in flight)", data["unknown"]),
        ("cancelled", data["cancelled"]),
        ("scheduled", data["scheduled"]),
    ]
    rows += [(f"skipped: {reason}", n) for reason, n in data["skipped"].items()]
    rows += [
        ("clicked", data["clicked"]),
        ("not interested", data["not_interested"]),
        ("orders", data["orders"]),
        ("revenue", f"{data['revenue']} {data['currency']}"),
        ("conversion", f"{data['conversion']:.1%}"),
    ]
    click.echo(f"shop {data['shop_id']}, flow: {data['flow']}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"  {name:<{width}}  {value}")


@report.command("nps")
@click.option("--shop", "shop_id", type=RECORD_ID, default=None, help="The shop to report on.")
@json_option
@click.pass_context
def report_nps(ctx: click.Context, shop_id: int | None, as_json: bool) -> None:
    """Show the shop's NPS, the distribution of scores and the trend by month.

    `--shop` (and `--json`) may come before or after `nps`.
    """
    parent = ctx.parent.params if ctx.parent is not None else {}
    shop_id = shop_id if shop_id is not None else parent.get("shop_id")
    as_json = as_json or bool(parent.get("as_json"))
    if parent.get("flow") is not None:
        raise UsageProblem("--flow does not apply to report nps")
    if shop_id is None:
        raise UsageProblem("--shop is required (nudge report nps --shop ID)")
    from bot.store.surveys import nps_scores
    from bot.surveys import nps_summary

    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        async with sessions() as session:
            shop = await shop_or_fail(session, shop_id)
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


@report.command("lifecycle")
@click.option("--shop", "shop_id", type=RECORD_ID, required=True, help="The shop.")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3650))
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also draw the stages to FILE.svg or FILE.png.",
)
@json_option
@click.pass_context
def report_lifecycle(
    ctx: click.Context, shop_id: int, days: int, chart: Path | None, as_json: bool
) -> None:
    """Customers in each stage (how many cannot be reached, how many blocked the bot), and
    moves in the last days."""
    if chart is not None and chart.suffix.lower() not in (".svg", ".png"):
        raise UsageProblem(
            f"{chart}: charts are drawn as SVG or PNG; name the file *.svg or *.png"
        )
    settings = settings_from(ctx)

    async def work(sessions: Any) -> Any:
        async with sessions() as session:
            await shop_or_fail(session, shop_id)
            return await lifecycle_report(
                session=session, shop_id=shop_id, now=utc_now(), days=days
            )

    found = run(with_database(settings, work))
    if chart is not None:
        try:
            if chart.suffix.lower() == ".png":
                from bot.charts import lifecycle_png

                chart.write_bytes(lifecycle_png(found))
            else:
                chart.write_text(lifecycle_svg(found), encoding="utf-8")
        except OSError as exc:
            raise UsageProblem(f"{chart}: cannot write the chart ({exc.strerror})") from None
    data = found.as_dict()

    def human() -> None:
        click.echo(f"shop {shop_id}: customers by stage")
        for stage, count in found.stages.items():
            cannot = found.unreachable.get(stage, 0)
            gone = found.blocked.get(stage, 0)
            click.echo(f"  {stage:9} {count:8}   unreachable {cannot} (blocked the bot {gone})")
        click.echo(f"moves in the last {days} days (first -> last stage of each customer):")
        if not found.moves:
            click.echo("  none")
        for start, ends in found.moves.items():
            for end, count in ends.items():
                click.echo(f"  {start} -> {end}: {count}")
        if chart is not None:
            click.echo(f"chart: {chart}")

    emit(as_json, data, human)


# ---------------------------------------------------------------- support (#15)


@report.command("support")
@click.option("--shop", "shop_id", type=RECORD_ID, required=True, help="The shop.")
@click.option("--days", default=None, type=click.IntRange(1, 3650), help="Only the last N days.")
@json_option
@click.pass_context
def report_support(ctx: click.Context, shop_id: int, days: int | None, as_json: bool) -> None:
    """Support conversations: opened, answered, median first response, open now."""
    from datetime import timedelta

    from bot.store.support_desk import support_figures

    settings = settings_from(ctx)
    since = utc_now() - timedelta(days=days) if days else None

    async def work(sessions: Any) -> dict[str, Any]:
        async with sessions() as session:
            await shop_or_fail(session, shop_id)
            figures = await support_figures(session=session, shop_id=shop_id, since=since)
        return {"shop_id": shop_id, "days": days, **figures.as_dict()}

    data = run(with_database(settings, work))

    def human() -> None:
        median = data["median_first_response_seconds"]
        shown = "-" if median is None else _seconds(median)
        for label, value in (
            ("conversations opened", data["opened"]),
            ("answered", data["answered"]),
            ("median first response", shown),
            ("open now", data["open_now"]),
            ("answers not delivered", data["undelivered"]),
        ):
            click.echo(f"{label:<24}{value}")

    emit(as_json, data, human)


def _seconds(value: float) -> str:
    minutes, seconds = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"

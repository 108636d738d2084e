"""`nudge dispatch` (run the Courier alone) and `nudge outbox stats` (what the outbox holds)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import timedelta
from typing import Any

import click

from bot.cli.common import (
    RECORD_ID,
    emit,
    json_option,
    run,
    settings_from,
    shop_or_fail,
    with_database,
)


@click.command("dispatch")
@click.option("--once", is_flag=True, help="Send what is due now, then exit.")
@click.option(
    "--lease",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds after which a row left in `sending` by a stopped dispatcher becomes unknown.",
)
@json_option
@click.pass_context
def dispatch(ctx: click.Context, once: bool, lease: float, as_json: bool) -> None:
    """Deliver the outbox to Telegram until SIGTERM (or, with --once, until nothing is due)."""
    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        from bot.clock import SystemClock
        from bot.delivery.channels.telegram import channel_for
        from bot.delivery.courier import Courier
        from bot.delivery.redis_limiter import RedisLimiter, build_limiter
        from bot.telegram import BotPool

        limiter = build_limiter(settings)  # shared through Redis when NUDGE_REDIS_URL is set
        bots = BotPool(settings.telegram_base, connections=settings.dispatch.max_in_flight + 128)
        channel = channel_for(bots, limiter, settings, owns_bots=True)
        courier = Courier(
            sessions=sessions,
            channel=channel,
            clock=SystemClock(),
            settings=settings,
            lease=timedelta(seconds=lease),
        )
        try:
            if once:
                recovered = await courier.recover()
                counts = await courier.drain()
                return {"recovered_unknown": recovered.unknown, **counts.as_dict()}
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, stop.set)
            await courier.run_forever(stop)
            return {"stopped": True}
        finally:
            await channel.close()
            if isinstance(limiter, RedisLimiter):
                await limiter.close()

    result = run(with_database(settings, work))
    emit(as_json, result, lambda: click.echo(_describe(result)))


def _describe(result: dict[str, Any]) -> str:
    if result.get("stopped"):
        return "dispatcher stopped"
    parts = [f"{key}={value}" for key, value in result.items() if key != "skip_reasons"]
    reasons = result.get("skip_reasons") or {}
    if reasons:
        parts.append("skipped: " + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())))
    return " ".join(parts)


@click.group("outbox")
def outbox() -> None:
    """Messages waiting to be sent and what became of them."""


@outbox.command("stats")
@click.option("--shop", "shop_id", type=RECORD_ID, default=None, help="Only this shop.")
@json_option
@click.pass_context
def outbox_stats(ctx: click.Context, shop_id: int | None, as_json: bool) -> None:
    """Print counts by state and skip reason, the queue depth and the oldest due lag."""
    from bot.clock import SystemClock
    from bot.store.outbox import outbox_stats as read_stats

    settings = settings_from(ctx)

    async def work(sessions: Any) -> dict[str, Any]:
        async with sessions() as session:
            if shop_id is not None:
                await shop_or_fail(session, shop_id)
            return await read_stats(session=session, now=SystemClock().now(), shop_id=shop_id)

    stats = run(with_database(settings, work))

    def human() -> None:
        click.echo(f"shop: {shop_id if shop_id is not None else 'all'}")
        for state, count in stats["states"].items():
            click.echo(f"  {state:<10} {count}")
        for reason, count in stats["skipped"].items():
            click.echo(f"  skipped/{reason}: {count}")
        click.echo(f"queue depth: {stats['queue_depth']}")
        click.echo(f"oldest due lag: {stats['oldest_due_lag_seconds']} s")

    emit(as_json, stats, human)

"""`nudge sandbox`: run the Telegram Bot API sandbox until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from typing import Any

import click

from bot.sandbox.limits import Limits
from bot.sandbox.server import CONTROL, Sandbox


def parse_bot(spec: str) -> tuple[str, str | None]:
    """Split `TOKEN[:username]` (a token is `<digits>:<secret>`) into token and username."""
    parts = spec.split(":")
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1]:
        raise click.BadParameter(f"{spec!r} is not TOKEN[:username], e.g. 123456:ABC:shop_bot")
    if len(parts) == 2:
        return spec, None
    return ":".join(parts[:2]), ":".join(parts[2:]) or None


async def serve(host: str, port: int, sandbox: Sandbox) -> None:
    """Serve the sandbox until SIGINT/SIGTERM."""
    base_url = await sandbox.start(host, port)
    click.echo(f"Telegram Bot API sandbox at {base_url}", err=False)
    for world in sandbox.bots.values():
        click.echo(f"  bot @{world.username}: {base_url}/bot<token>/getMe")
    if sandbox.auto_register:
        click.echo("  any token shaped 123456:ABC… is a bot here (--auto-register)")
    elif not sandbox.bots:
        click.echo("  no bots yet: add one with --bot TOKEN[:username] or POST /_sandbox/bots")
    click.echo("Point Nudge at it (in the shell that runs nudge serve and nudge shop …):")
    click.echo(f"  export NUDGE_TELEGRAM_API_BASE={base_url}")
    click.echo("  export NUDGE_TELEGRAM_MODE=polling   # or keep webhook with a reachable")
    click.echo("                                       # NUDGE_PUBLIC_URL (http is fine here)")
    click.echo(
        f"Play a customer through the control API at {base_url}{CONTROL}/ (README: sandbox)"
    )
    click.echo(f'  POST {base_url}{CONTROL}/bots/<token>/customers {{"user_id": 1001}}')
    click.echo(f'  POST {base_url}{CONTROL}/bots/<token>/customers/1001/send {{"text": "hi"}}')
    click.echo(f"  GET  {base_url}{CONTROL}/bots/<token>/customers/1001/transcript")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sandbox.stop()


class Latency(click.ParamType):
    """A short time such as 50ms, 0.05s or 0; at most 10 s."""

    name = "latency"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", str(value))
        if not match:
            self.fail(f"{str(value)[:40]!r} is not a latency (e.g. 50ms, 0.05s)", param, ctx)
        seconds = float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
        if seconds > 10:
            self.fail(f"{value} is more than 10 s", param, ctx)
        return seconds


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8081, show_default=True, type=int, help="Port (0 = any free).")
@click.option("--no-limits", is_flag=True, help="Switch flood control off (for benchmarks).")
@click.option(
    "--bot",
    "bots",
    multiple=True,
    metavar="TOKEN[:username]",
    help="Register a bot token; repeatable. Unknown tokens get 401 unless --auto-register.",
)
@click.option(
    "--auto-register",
    is_flag=True,
    help="Accept any token shaped <digits>:<chars> and register it on first use.",
)
@click.option(
    "--latency",
    type=Latency(),
    default="0",
    help="Answer every call this long after it arrives, as Telegram does (e.g. 50ms).",
)
@click.option("--jitter", type=Latency(), default="0", help="Vary the latency by up to this.")
def sandbox(
    host: str,
    port: int,
    no_limits: bool,
    bots: tuple[str, ...],
    auto_register: bool,
    latency: float,
    jitter: float,
) -> None:
    """Run the Telegram Bot API sandbox and print its base URL."""
    if jitter > latency:
        raise click.BadParameter("the jitter cannot exceed the latency", param_hint="--jitter")
    instance = Sandbox(
        limits=Limits.off() if no_limits else None,
        auto_register=auto_register,
        latency=latency,
        jitter=jitter,
    )
    for spec in bots:
        token, username = parse_bot(spec)
        instance.add_bot(token, username=username)
    asyncio.run(serve(host, port, instance))

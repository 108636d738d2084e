"""`nudge serve`: the web app, Telegram updates and the workers, until SIGTERM."""

from __future__ import annotations

import socket

import click

from bot.cli.common import UsageProblem, log, noop, run, settings_from, with_database
from bot.config import safe_url


def listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket now, so a busy port is one clear line, not a traceback."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        raise UsageProblem(f"cannot listen on {host}:{port}: {exc}") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)  # aiohttp listens once the app is ready
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        hint = " (is another nudge serve running? pass --port)" if port else ""
        raise UsageProblem(f"cannot listen on {host}:{port}: {reason}{hint}") from None
    sock.setblocking(False)
    return sock


@click.command()
@click.option("--migrate", is_flag=True, help="Run database migrations before serving.")
@click.option("--host", default=None, help="Listen address (default NUDGE_HTTP_HOST).")
@click.option("--port", type=int, default=None, help="Listen port (default NUDGE_HTTP_PORT).")
@click.pass_context
def serve(ctx: click.Context, migrate: bool, host: str | None, port: int | None) -> None:
    """Serve webhooks, Telegram, /healthz, /readyz and /metrics; run the workers until SIGTERM."""
    from aiohttp import web

    from bot.app import build_app
    from bot.migrate import upgrade

    settings = settings_from(ctx)
    host = host or settings.http_host
    port = settings.http_port if port is None else port
    if not 0 <= port <= 65535:
        raise UsageProblem(f"--port: {port} is not a port (0-65535)")
    sock = listen(host, port)
    try:
        run(with_database(settings, noop, migrated=False))
        if migrate:
            upgrade(settings.database_url)
        else:
            run(with_database(settings, noop))
        app = build_app(settings)
    except BaseException:
        sock.close()
        raise
    bound = sock.getsockname()[1]
    log.info("serving on http://%s:%s (database %s)", host, bound, safe_url(settings.database_url))
    web.run_app(app, sock=sock, print=None, shutdown_timeout=10)

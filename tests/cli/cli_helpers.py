"""What the CLI tests share: a database the CLI accepts, a Telegram sandbox, running commands."""

from __future__ import annotations

import asyncio

from click.testing import CliRunner

from bot.cli import cli

SECRET_KEY = "cli-tests-secret-key-0123456789"


def nudge(*args: str, input: str | None = None) -> tuple[int, str]:
    """Run `nudge ARGS…` in-process; return the exit code and everything it printed."""
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    return result.exit_code, result.output


async def anudge(*args: str, input: str | None = None) -> tuple[int, str]:
    """Run `nudge ARGS…` in a thread, so this test's event loop (a sandbox, an app) runs on."""
    return await asyncio.to_thread(nudge, *args, input=input)


def one_line_error(out: str) -> str:
    """Return the single `nudge: …` line of a failed command (and check it is one line)."""
    lines = [line for line in out.strip().splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert lines[0].startswith("nudge: "), out
    assert "Traceback" not in out and "Value error" not in out and "Input should" not in out
    return lines[0]

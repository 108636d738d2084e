"""`nudge demo`: the abandoned-cart story against the Telegram sandbox, as a transcript."""

from __future__ import annotations

import asyncio
import logging

import click


@click.command()
@click.option("--locale", type=click.Choice(["en", "ru", "uk", "pl"]), default="ru")
def demo(locale: str) -> None:
    """Play the abandoned-cart story against the Telegram sandbox and print the transcript."""
    from bot.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run_demo(locale))

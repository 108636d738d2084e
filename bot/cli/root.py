"""The root `nudge` group: every command group is added here; nothing imports this module."""

from __future__ import annotations

import sys

import click

from bot.cli.campaign import campaign
from bot.cli.codes import codes
from bot.cli.customer import customer
from bot.cli.db import db
from bot.cli.delivery import dispatch, outbox
from bot.cli.demo import demo
from bot.cli.inbox import inbox
from bot.cli.link import link
from bot.cli.report import report
from bot.cli.sandbox import sandbox
from bot.cli.segment import segment
from bot.cli.serve import serve
from bot.cli.shop import shop
from bot.cli.support import support
from bot.cli.survey import survey
from bot.cli.token import token


@click.group()
@click.version_option(package_name="nudge")
def cli() -> None:
    """Nudge: abandoned carts, offers, surveys and support for shops, in Telegram."""


for command in (
    db,
    serve,
    demo,
    shop,
    sandbox,
    codes,
    report,
    dispatch,
    outbox,
    inbox,
    customer,
    segment,
    campaign,
    link,
    survey,
    support,
    token,
):
    cli.add_command(command)


def main() -> None:
    """Entry point of the `nudge` console script."""
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)

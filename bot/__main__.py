"""`python -m bot` runs the `nudge` command."""

from bot.cli import main

main()

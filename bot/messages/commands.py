"""The bot's command menu (/start, /settings, /help, /stop), described in a customer's locale."""

from __future__ import annotations

from aiogram.types import BotCommand

from bot.i18n import _, locale_scope


def bot_commands(locale: str) -> list[BotCommand]:
    """Return the command menu Telegram shows, with its descriptions in `locale`."""
    with locale_scope(locale):
        return [
            BotCommand(command="start", description=_("Subscribe and link your shop account")),
            BotCommand(
                command="settings", description=_("Language, reminders and pausing offers")
            ),
            BotCommand(command="help", description=_("What this bot does and how to reach us")),
            BotCommand(command="stop", description=_("Unsubscribe from all messages")),
        ]

"""aiogram routers, in the order they see updates.

Each handler module exposes `build_router()`, so every Dispatcher (the service has one; tests
and the demo build several in one process) gets its own Router objects.
"""

from __future__ import annotations

from aiogram import Router


def routers() -> list[Router]:
    """Return fresh routers for one dispatcher, in order; earlier ones win."""
    from bot.handlers import offers, replies, settings, start, support, surveys

    return [
        support.build_router(),  # group chats only: the support desk
        start.build_router(),
        offers.build_router(),
        settings.build_router(),
        surveys.build_router(),
        replies.build_router(),  # free text goes to support: always last
    ]

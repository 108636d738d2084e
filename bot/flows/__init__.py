"""Automation rules. A flow never sends: it schedules or cancels outbox rows.

Flows subscribe to normalized shop events with `@on(EventType)`; the inbox worker calls
`run_flows` inside the same transaction that applied the event, so a flow's outbox rows are
written or not together with the profile change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.models import Shop


@dataclass(frozen=True, slots=True)
class FlowContext:
    """What a flow gets: the open session, the shop, the clock, and what applying produced."""

    session: AsyncSession
    shop: Shop
    clock: Clock
    applied: Any = None


FlowHandler = Callable[[FlowContext, Any], Awaitable[None]]
_HANDLERS: dict[type, list[FlowHandler]] = {}


def on(*event_types: type) -> Callable[[FlowHandler], FlowHandler]:
    """Register a flow handler for one or more ShopEvent types."""

    def register(handler: FlowHandler) -> FlowHandler:
        for event_type in event_types:
            _HANDLERS.setdefault(event_type, []).append(handler)
        return handler

    return register


async def run_flows(context: FlowContext, event: Any) -> None:
    """Run every flow registered for the event's type, in registration order."""
    from bot import features

    features.load()  # idempotent; the inbox worker may run without the web app
    for handler in _HANDLERS.get(type(event), ()):
        await handler(context, event)

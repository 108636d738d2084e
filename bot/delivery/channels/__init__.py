"""Channels: how a rendered message reaches a messenger. Telegram today; Viber or WhatsApp later.

A channel sends one message and answers with a `Delivery` in messenger-neutral terms; the
dispatcher decides what each answer means for the outbox row and the customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bot.messages.render import Rendered


class DeliveryStatus(StrEnum):
    """What a send attempt came to."""

    SENT = "sent"
    UNREACHABLE = "unreachable"  # blocked the bot, account deleted, chat gone
    RETRY = "retry"  # transient: server error, timeout, network; try again later
    FAILED = "failed"  # permanent for this message: bad request, too large, …
    UNKNOWN = "unknown"  # no answer in time after the request left: it may have arrived


@dataclass(frozen=True, slots=True)
class Delivery:
    """The answer of one send: the messenger's message id when sent, the error otherwise."""

    status: DeliveryStatus
    message_id: int | None = None
    error: str | None = None
    seconds: float = 0.0


class Channel(Protocol):
    """Sends rendered messages from a shop's sender (bot token) to a recipient (chat id)."""

    name: str

    async def send(self, *, sender: str, recipient: int, message: Rendered) -> Delivery:
        """Send one message, waiting for rate limits; never raise for messenger errors."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


__all__ = ["Channel", "Delivery", "DeliveryStatus"]

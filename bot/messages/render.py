"""The registry of message kinds: how an outbox row becomes localized text, photo and buttons.

A flow schedules a row with a `kind`; the dispatcher looks the kind up here, runs its guard (a
last check that can skip the row, e.g. "the cart is no longer open"), then its render inside
the customer's locale:

    @register_kind("cart_reminder", guard=cart_still_open)
    async def cart_reminder(ctx: RenderContext) -> Rendered:
        return Rendered(_("You left {count} items in your cart").format(...), buttons=[...])

A render may raise `SkipMessage("no_codes")` to skip the row with that reason.
"""

from __future__ import annotations

import html
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.config import Settings
from bot.i18n import locale_scope
from bot.models import Customer, Outbox, Shop
from bot.shop_settings import ShopSettings


class SkipMessage(Exception):
    """Raised by a render or guard: do not send this row; record `reason` instead."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownKind(LookupError):
    """No message kind is registered under this name."""


@dataclass(frozen=True, slots=True)
class Button:
    """An inline keyboard button: a URL to open or callback data (at most 64 bytes)."""

    text: str
    url: str | None = None
    callback_data: str | None = None


class ButtonLike(Protocol):
    """Anything with a button's fields, e.g. aiogram's InlineKeyboardButton."""

    text: str
    url: str | None
    callback_data: str | None


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message ready to send: HTML text (a caption when there is a photo) and buttons."""

    text: str
    photo_url: str | None = None
    buttons: Sequence[Sequence[Button | ButtonLike]] = field(default_factory=tuple)


@dataclass(slots=True)
class RenderContext:
    """What a render and a guard can see; `outbox.id` is what callback data refers to."""

    session: AsyncSession
    shop: Shop
    customer: Customer
    outbox: Outbox
    locale: str
    clock: Clock
    settings: Settings
    shop_settings: ShopSettings

    @property
    def payload(self) -> dict[str, Any]:
        """Return the row's payload."""
        return self.outbox.payload or {}

    @property
    def secret_key(self) -> str:
        """Return the service's secret key (for signed links and callback data)."""
        key = self.settings.secret_key
        if key is None:
            raise RuntimeError("settings have no secret key; load them with load_settings()")
        return key.get_secret_value()

    @property
    def public_url(self) -> str:
        """Return the service's public base URL (for tracked links), without a trailing slash."""
        return self.settings.public_base


Render = Callable[[RenderContext], "Rendered | Awaitable[Rendered]"]
Guard = Callable[[RenderContext], "str | Awaitable[str | None] | None"]


@dataclass(frozen=True, slots=True)
class MessageKind:
    """A registered kind: its render and its optional guard."""

    name: str
    render: Render
    guard: Guard | None = None


_KINDS: dict[str, MessageKind] = {}


def register_kind(
    name: str, *, render: Render | None = None, guard: Guard | None = None, replace: bool = False
) -> Any:
    """Register a message kind; without `render`, return a decorator for the render function."""

    def add(function: Render) -> Render:
        existing = _KINDS.get(name)
        if existing is not None and not replace and existing.render is not function:
            raise ValueError(f"message kind {name!r} is already registered")
        _KINDS[name] = MessageKind(name=name, render=function, guard=guard)
        return function

    if render is None:
        return add
    add(render)
    return render


def get_kind(name: str) -> MessageKind:
    """Return the registered kind or raise UnknownKind (loading the feature modules once)."""
    if name not in _KINDS:
        from bot import features

        features.load()  # a bare `nudge dispatch` process has not imported the flows yet
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownKind(f"no message kind {name!r} is registered") from None


def registered_kinds() -> list[str]:
    """Return the names of every registered kind."""
    return sorted(_KINDS)


async def _call(function: Callable[[RenderContext], Any], ctx: RenderContext) -> Any:
    result = function(ctx)
    if inspect.isawaitable(result):
        result = await result
    return result


async def render_message(ctx: RenderContext) -> Rendered:
    """Run the kind's guard and render in the customer's locale; raise SkipMessage to skip."""
    kind = get_kind(ctx.outbox.kind)
    with locale_scope(ctx.locale):
        if kind.guard is not None:
            reason = await _call(kind.guard, ctx)
            if reason:
                raise SkipMessage(reason)
        rendered = await _call(kind.render, ctx)
    if not isinstance(rendered, Rendered):
        raise TypeError(f"render of {kind.name!r} returned {type(rendered).__name__}")
    return rendered


def _text_kind(ctx: RenderContext) -> Rendered:
    """Send the payload's text as is: {"text", "html"?, "photo_url"?, "buttons"?}."""
    payload = ctx.payload
    text = str(payload.get("text") or "")
    if not payload.get("html"):
        text = html.escape(text, quote=False)
    buttons = [
        [
            Button(text=str(b["text"]), url=b.get("url"), callback_data=b.get("callback_data"))
            for b in row
        ]
        for row in payload.get("buttons") or []
    ]
    return Rendered(text=text, photo_url=payload.get("photo_url"), buttons=buttons)


register_kind("text", render=_text_kind)


__all__ = [
    "Button",
    "Guard",
    "MessageKind",
    "Render",
    "RenderContext",
    "Rendered",
    "SkipMessage",
    "UnknownKind",
    "get_kind",
    "register_kind",
    "registered_kinds",
    "render_message",
]

"""Everything else a customer sends, linked or not: a support conversation (bot/support.py).

Registered last, so commands, survey answers and buttons are handled first; a tap on a button
nobody understood (stale, foreign or tampered) is refused politely here.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message

from bot import preferences
from bot.handlers.settings import show_help
from bot.i18n import format_datetime
from bot.messages import replies as texts
from bot.messages import settings as settings_texts
from bot.messages import support as support_texts
from bot.models import Customer, Shop
from bot.services import Services
from bot.support import receive
from bot.surveys import is_stop_word


def build_router() -> Router:
    """Return a fresh router for free text, photos, voice notes and unknown taps."""
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.message.register(customer_message)
    router.callback_query.register(unknown_tap)
    return router


async def customer_message(
    message: Message,
    shop: Shop,
    customer: Customer | None,
    services: Services,
    locale: str | None = None,
) -> None:
    """Store the message in the customer's conversation (linked or not), then acknowledge.

    The first message of a conversation is acknowledged (with when to expect an answer outside
    working hours); the ones after it are simply passed on. A linked customer's stop word
    unsubscribes them from promotions instead.
    """
    if customer is not None and is_stop_word(message.text):
        await preferences.unsubscribe(services, customer=customer, source="stop_word")
        await message.answer(settings_texts.unsubscribed(shop.name))
        return
    if (message.text or "").startswith("/"):  # a command no handler knows: not a question
        await show_help(message, shop)
        return
    received = await receive(
        services, shop=shop, customer=customer, message=message, locale=locale
    )
    if received.message is None or not received.opened:
        return
    text = texts.received()
    if received.answer_after is not None:
        when = format_datetime(
            received.answer_after, locale or shop.default_locale, shop.timezone, "short"
        )
        text = f"{text}\n\n{support_texts.offline(when)}"
    await message.answer(text)


async def unknown_tap(callback: CallbackQuery) -> None:
    """Refuse a tap no handler understood."""
    await callback.answer(settings_texts.button_refused())

"""Everything else a customer sends: written to the profile for support, and acknowledged.

Registered last, so commands, survey answers and buttons are handled first; a tap on a button
nobody understood (stale, foreign or tampered) is refused politely here.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message

from bot import preferences
from bot.messages import linking
from bot.messages import replies as texts
from bot.messages import settings as settings_texts
from bot.models import Customer, Shop
from bot.services import Services
from bot.support import record_customer_message
from bot.surveys import is_stop_word


def build_router() -> Router:
    """Return a fresh router for free text, photos, voice notes and unknown taps."""
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.message.register(customer_message)
    router.callback_query.register(unknown_tap)
    return router


def _content(message: Message) -> tuple[str, str | None, str | None]:
    if message.text is not None:
        return "text", message.text, None
    if message.photo:
        return "photo", message.caption, message.photo[-1].file_id
    if message.voice is not None:
        return "voice", message.caption, message.voice.file_id
    if message.video is not None:
        return "video", message.caption, message.video.file_id
    if message.document is not None:
        return "document", message.caption, message.document.file_id
    return "other", message.caption, None


async def customer_message(
    message: Message, shop: Shop, customer: Customer | None, services: Services
) -> None:
    """Write the message to the profile as a reply (linked to what it answers) and thank."""
    if customer is None:
        await message.answer(
            linking.ask_for_phone(shop.name), reply_markup=linking.share_phone_keyboard()
        )
        return
    if is_stop_word(message.text):
        await preferences.unsubscribe(services, customer=customer, source="stop_word")
        await message.answer(settings_texts.unsubscribed(shop.name))
        return
    content, text, file_id = _content(message)
    replied = message.reply_to_message
    await record_customer_message(
        services,
        customer=customer,
        content=content,
        text=text,
        file_id=file_id,
        message_id=message.message_id,
        reply_to_message_id=replied.message_id if replied else None,
    )
    await message.answer(texts.received())


async def unknown_tap(callback: CallbackQuery) -> None:
    """Refuse a tap no handler understood."""
    await callback.answer(settings_texts.button_refused())

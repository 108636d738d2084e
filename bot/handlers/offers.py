"""Offer buttons: Not interested, the acknowledgement, and Undo."""

from __future__ import annotations

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup

from bot.callbacks import OfferAction, OfferCallback, offer_callback, read_ref
from bot.messages import cart as texts
from bot.messages.render import Button
from bot.models import Shop
from bot.offers import (
    Tap,
    TapOutcome,
    not_interested,
    offer_buttons_again,
    offer_topic,
    sent_offer,
    undo,
)
from bot.services import Services


def build_router() -> Router:
    """Return a fresh router for offer buttons."""
    router = Router(name=__name__)
    router.callback_query.register(on_offer_tap, OfferCallback.filter())
    return router


def _markup(rows: list[list[Button]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text=b.text, url=b.url, callback_data=b.callback_data)
                for b in row
            ]
            for row in rows
        ]
    )


async def on_offer_tap(
    callback: CallbackQuery, callback_data: OfferCallback, shop: Shop, services: Services
) -> None:
    """Apply the tap (verified against the outbox row), answer at once, then fix the keyboard."""
    outbox_id = read_ref(services.secret_key, callback_data.ref)
    chat_id = callback.from_user.id
    if callback_data.action is OfferAction.ACK:
        row = await sent_offer(services, shop=shop, outbox_id=outbox_id, chat_id=chat_id)
        if row is None:
            await callback.answer(texts.inactive_button_toast())
        else:
            await callback.answer(texts.not_interested_toast(offer_topic(row)))
        return
    if callback_data.action is OfferAction.NOT_INTERESTED:
        tap = await not_interested(services, shop=shop, outbox_id=outbox_id, chat_id=chat_id)
    else:
        tap = await undo(services, shop=shop, outbox_id=outbox_id, chat_id=chat_id)
    if tap.outcome is TapOutcome.INVALID or tap.outbox is None:
        await callback.answer(texts.inactive_button_toast())
        return
    topic = offer_topic(tap.outbox)
    if callback_data.action is OfferAction.NOT_INTERESTED:
        await callback.answer(texts.not_interested_toast(topic))
    else:
        await callback.answer(texts.undo_toast(topic))
    await _update_keyboard(callback, services, shop, tap, callback_data.action)


async def _update_keyboard(
    callback: CallbackQuery, services: Services, shop: Shop, tap: Tap, action: OfferAction
) -> None:
    assert tap.outbox is not None and tap.outbox.id is not None
    message = callback.message
    if message is None or not hasattr(message, "edit_reply_markup"):
        return
    key = services.secret_key
    if action is OfferAction.NOT_INTERESTED:
        rows = texts.acknowledged_buttons(
            topic=offer_topic(tap.outbox),
            ack=offer_callback(key, OfferAction.ACK, tap.outbox.id),
            undo=offer_callback(key, OfferAction.UNDO, tap.outbox.id),
        )
    else:
        rows = await offer_buttons_again(services, shop=shop, outbox=tap.outbox)
    try:
        await message.edit_reply_markup(reply_markup=_markup(rows))
    except TelegramBadRequest:
        pass  # the keyboard already shows this state (a second tap): nothing to change

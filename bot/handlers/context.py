"""The outer middleware that gives every handler its shop, customer and locale.

A linked customer is always answered in the profile's language (the one scheduled messages
use too); Telegram's language_code only chooses for a chat that is not linked yet, and, once,
for a profile linked before languages were stored on profiles.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.types import Chat, TelegramObject, User

from bot.i18n import customer_locale, get_i18n
from bot.linking import settle_chat_locale
from bot.models import Shop
from bot.services import Services
from bot.store.customers import find_by_chat
from bot.store.shops import find_shop_by_bot_token
from bot.telegram import replying


class ProfileContext(BaseMiddleware):
    """Resolve the shop (from the webhook route or the bot token), the linked customer, locale."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        services: Services = data["services"]
        bot: Bot = data["bot"]
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        async with services.sessions() as session:
            shop: Shop | None = data.get("shop") or await find_shop_by_bot_token(
                session=session, token=bot.token
            )
            if shop is None:
                return None
            customer = None
            if chat is not None and chat.type == "private":
                customer = await find_by_chat(session=session, shop_id=shop.id, chat_id=chat.id)
        language = user.language_code if user else None
        if customer is None:
            locale = customer_locale(shop, None, language)
        elif customer.locale is None:
            locale = await settle_chat_locale(
                services, shop=shop, customer=customer, telegram_language=language
            )
        else:
            locale = customer_locale(shop, customer.locale)
        data.update(shop=shop, customer=customer, locale=locale)
        i18n = get_i18n()
        with i18n.context(), i18n.use_locale(locale), replying():
            return await handler(event, data)

"""/start with a deep-link token, /start alone, and a shared phone contact: link the chat.

A profile bound to another chat is refused politely; an unsubscribed customer is asked before
being subscribed again (bot/linking.py has the rules).
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import Message

from bot.handlers.settings import ask_to_resubscribe
from bot.i18n import customer_locale, get_i18n
from bot.linking import LinkOutcome, link_by_phone, link_by_token
from bot.messages import linking as texts
from bot.models import Customer, Shop
from bot.preferences import is_opted_out
from bot.services import Services


def build_router() -> Router:
    """Return a fresh router with the linking handlers (private chats only)."""
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.message.register(start_with_token, CommandStart(deep_link=True))
    router.message.register(start_plain, CommandStart())
    router.message.register(shared_contact, F.contact)
    return router


async def start_with_token(
    message: Message,
    command: CommandObject,
    shop: Shop,
    services: Services,
    customer: Customer | None = None,
) -> None:
    """Link the chat to the customer the token names (an unsubscribed chat confirms first)."""
    assert message.from_user is not None
    if is_opted_out(customer):
        await ask_to_resubscribe(message, shop)
        return
    result = await link_by_token(
        services,
        shop=shop,
        chat_id=message.chat.id,
        username=message.from_user.username,
        token=command.args or "",
        language=message.from_user.language_code,
    )
    await _answer(message, shop, result.outcome, result.customer)


async def start_plain(message: Message, shop: Shop, customer: Customer | None) -> None:
    """Greet; ask an unknown chat for its phone number, an unsubscribed one to confirm."""
    if is_opted_out(customer):
        await ask_to_resubscribe(message, shop)
        return
    if customer is not None and customer.consent == "opted_in":
        await message.answer(texts.already_linked(shop.name))
        return
    await message.answer(texts.ask_for_phone(shop.name), reply_markup=texts.share_phone_keyboard())


async def shared_contact(message: Message, shop: Shop, services: Services) -> None:
    """Link the chat by the customer's own shared phone number (never taking over a profile)."""
    assert message.contact is not None and message.from_user is not None
    if message.contact.user_id != message.from_user.id:
        await message.answer(texts.not_own_contact(), reply_markup=texts.share_phone_keyboard())
        return
    result = await link_by_phone(
        services,
        shop=shop,
        chat_id=message.chat.id,
        username=message.from_user.username,
        phone=message.contact.phone_number,
        first_name=message.contact.first_name,
        last_name=message.contact.last_name,
        language=message.from_user.language_code,
    )
    if result.outcome is LinkOutcome.NOT_FOUND:
        await message.answer(texts.unreadable_phone(), reply_markup=texts.share_phone_keyboard())
        return
    if result.outcome is LinkOutcome.TAKEN:
        await message.answer(texts.phone_taken(shop.name), reply_markup=texts.no_keyboard())
        return
    await _answer(message, shop, result.outcome, result.customer)


async def _answer(
    message: Message, shop: Shop, outcome: LinkOutcome, customer: Customer | None
) -> None:
    """Answer a link attempt; once a profile is linked, in the language settled on it."""
    if customer is not None and outcome in (
        LinkOutcome.LINKED,
        LinkOutcome.ALREADY,
        LinkOutcome.CONFIRM,
    ):
        with get_i18n().use_locale(customer_locale(shop, customer.locale)):
            await _answer_in_locale(message, shop, outcome, customer)
    else:
        await _answer_in_locale(message, shop, outcome, customer)


async def _answer_in_locale(
    message: Message, shop: Shop, outcome: LinkOutcome, customer: Customer | None
) -> None:
    if outcome is LinkOutcome.LINKED:
        name = (customer.first_name if customer else None) or (
            message.from_user.first_name if message.from_user else None
        )
        await message.answer(texts.welcome(name, shop.name), reply_markup=texts.no_keyboard())
    elif outcome is LinkOutcome.ALREADY:
        await message.answer(texts.already_linked(shop.name), reply_markup=texts.no_keyboard())
    elif outcome is LinkOutcome.CONFIRM:
        await ask_to_resubscribe(message, shop)
    elif outcome is LinkOutcome.TAKEN:
        await message.answer(texts.link_taken(shop.name), reply_markup=texts.no_keyboard())
    elif outcome is LinkOutcome.EXPIRED:
        await message.answer(texts.expired_link(), reply_markup=texts.share_phone_keyboard())
    elif outcome is LinkOutcome.REFUSED:
        await message.answer(texts.refused(), reply_markup=texts.no_keyboard())
    else:
        await message.answer(texts.invalid_link(), reply_markup=texts.share_phone_keyboard())

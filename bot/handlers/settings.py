"""/settings, /stop, /help, and subscribing again after /stop: the customer's own choices."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InaccessibleMessage, Message

from bot import preferences
from bot.callbacks import SettingsAction, SettingsCallback
from bot.i18n import get_i18n, shop_locales
from bot.messages import linking
from bot.messages import settings as texts
from bot.models import Customer, Shop
from bot.services import Services


def build_router() -> Router:
    """Return a fresh router with the settings commands and buttons (private chats only)."""
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.message.register(show_settings, Command("settings"))
    router.message.register(stop, Command("stop"))
    router.message.register(show_help, Command("help"))
    router.callback_query.register(settings_tap, SettingsCallback.filter())
    return router


async def ask_to_resubscribe(message: Message, shop: Shop) -> None:
    """Ask an unsubscribed customer who sent /start whether to subscribe again."""
    await message.answer(
        texts.resubscribe_question(shop.name), reply_markup=texts.resubscribe_keyboard()
    )


def _menu(services: Services, customer: Customer, locale: str, shop: Shop) -> tuple[str, object]:
    until = preferences.paused_until(services, customer)
    subscribed = not preferences.is_opted_out(customer)
    text = texts.menu(
        locale=locale,
        subscribed=subscribed,
        paused_until=until,
        timezone=customer.timezone or shop.timezone,
    )
    return text, texts.menu_keyboard(subscribed=subscribed, paused=until is not None)


async def show_settings(
    message: Message, shop: Shop, customer: Customer | None, services: Services, locale: str
) -> None:
    """Show the settings menu; ask an unknown chat to link first."""
    if customer is None:
        await message.answer(
            linking.ask_for_phone(shop.name), reply_markup=linking.share_phone_keyboard()
        )
        return
    text, keyboard = _menu(services, customer, locale, shop)
    await message.answer(text, reply_markup=keyboard)  # type: ignore[arg-type]


async def stop(
    message: Message,
    shop: Shop,
    customer: Customer | None,
    services: Services,
    state: FSMContext,
) -> None:
    """Unsubscribe at once; any survey in progress ends with it."""
    await state.set_state(None)
    if customer is None or preferences.is_opted_out(customer):
        await message.answer(texts.not_subscribed())
        return
    await preferences.unsubscribe(services, customer=customer, source="stop")
    await message.answer(texts.unsubscribed(shop.name))


async def show_help(message: Message, shop: Shop) -> None:
    """Say what the bot does and how to reach a person."""
    await message.answer(texts.help_text(shop.name), reply_markup=texts.settings_button())


async def settings_tap(
    callback: CallbackQuery,
    callback_data: SettingsCallback,
    shop: Shop,
    customer: Customer | None,
    services: Services,
    locale: str,
) -> None:
    """Apply a tap in the settings and show the result in place."""
    message = callback.message
    if customer is None or message is None or isinstance(message, InaccessibleMessage):
        await callback.answer(texts.button_refused())
        return
    action, arg = callback_data.action, callback_data.arg
    offered = shop_locales(shop)
    if action is SettingsAction.LANGUAGE and arg not in offered:
        await callback.answer(texts.button_refused())
        return
    await callback.answer()
    if action is SettingsAction.MENU:
        text, keyboard = _menu(services, customer, locale, shop)
        await message.edit_text(text, reply_markup=keyboard)  # type: ignore[arg-type]
    elif action is SettingsAction.LANGUAGES:
        await message.edit_text(
            texts.choose_language(), reply_markup=texts.languages_keyboard(offered)
        )
    elif action is SettingsAction.LANGUAGE:
        await preferences.set_language(services, customer=customer, locale=arg, offered=offered)
        customer.locale = arg
        with get_i18n().use_locale(arg):
            text, keyboard = _menu(services, customer, arg, shop)
            await message.edit_text(
                f"{texts.language_changed()}\n\n{text}",
                reply_markup=keyboard,  # type: ignore[arg-type]
            )
    elif action in (SettingsAction.TOPICS, SettingsAction.UNDO_TOPIC):
        prefix = ""
        if action is SettingsAction.UNDO_TOPIC:
            restored = await preferences.restore_topic(
                services, customer=customer, exclusion_id=int(arg) if arg.isdigit() else 0
            )
            if restored is not None:
                prefix = texts.topic_restored(restored.topic) + "\n\n"
        found = await preferences.topics(services, customer=customer)
        await message.edit_text(
            prefix + texts.topics([e.topic for e in found]),
            reply_markup=texts.topics_keyboard([(e.id, e.topic) for e in found]),  # type: ignore[misc]
        )
    elif action is SettingsAction.PAUSE:
        until = await preferences.pause(services, customer=customer)
        await message.edit_text(
            texts.paused(until, locale, customer.timezone or shop.timezone),
            reply_markup=texts.back_keyboard(),
        )
    elif action is SettingsAction.RESUME:
        await preferences.resume(services, customer=customer)
        await message.edit_text(texts.resumed(), reply_markup=texts.back_keyboard())
    elif action is SettingsAction.UNSUBSCRIBE:
        await preferences.unsubscribe(services, customer=customer, source="settings")
        await message.edit_text(texts.unsubscribed(shop.name))
    elif action is SettingsAction.SUBSCRIBE:
        await preferences.resubscribe(services, customer=customer)
        await message.edit_text(texts.resubscribed(shop.name))
    else:
        await message.edit_text(texts.stays_unsubscribed())

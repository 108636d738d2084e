"""Survey answers: month/day/choice/Skip taps, NPS scores, typed answers and explanations.

A typed message counts as a survey answer only while a survey is open for the customer (see
bot/surveys.py); a reply to another message, a photo or a command is never taken for one.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Filter, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InaccessibleMessage, Message

from bot import preferences
from bot import surveys as service
from bot.callbacks import NpsCallback, SurveyAction, SurveyCallback
from bot.dates import Birthday, days_in_month, parse_birthday
from bot.messages import settings as settings_texts
from bot.messages import surveys as texts
from bot.models import Customer, Outbox, Shop
from bot.services import Services
from bot.surveys import BIRTHDAY_KIND, NPS_KIND, QUESTION_KIND, TYPED_KINDS, NpsClass


class OpenSurvey(Filter):
    """Pass a typed message that answers the customer's open survey, with that survey."""

    async def __call__(
        self,
        message: Message,
        state: FSMContext,
        shop: Shop,
        customer: Customer | None,
        services: Services,
    ) -> bool | dict[str, Any]:
        if customer is None or not message.text or message.text.startswith("/"):
            return False
        data = await state.get_data()
        found = await service.find_open_survey(services, shop=shop, customer=customer, data=data)
        if found is None:
            return False
        replied = message.reply_to_message
        if replied is not None and replied.message_id != found.outbox.telegram_message_id:
            return False
        return {"open_survey": found, "fsm_data": data}


def build_router() -> Router:
    """Return a fresh router with the survey handlers (private chats only)."""
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.callback_query.register(survey_tap, SurveyCallback.filter())
    router.callback_query.register(nps_tap, NpsCallback.filter())
    router.message.register(
        nps_feedback,
        StateFilter(service.SurveyStates.nps_feedback),
        F.text,
        ~F.text.startswith("/"),
    )
    router.message.register(typed_answer, OpenSurvey())
    return router


async def _drop_buttons(message: Message) -> None:
    if message.reply_markup is not None:
        with contextlib.suppress(TelegramBadRequest):  # already edited by a parallel tap
            await message.edit_reply_markup(reply_markup=None)


async def _close(state: FSMContext, data: dict[str, Any], row: Outbox) -> None:
    await state.set_data(service.closed_data(data, row))
    if row.kind != NPS_KIND:
        await state.set_state(None)


async def _stop(
    message: Message, services: Services, shop: Shop, customer: Customer, row: Outbox | None
) -> None:
    if row is not None:
        await service.end_survey(services, customer=customer, row=row, reason="stop")
    await preferences.unsubscribe(services, customer=customer, source="stop_word")
    await message.answer(settings_texts.unsubscribed(shop.name))


async def typed_answer(
    message: Message,
    state: FSMContext,
    shop: Shop,
    customer: Customer,
    services: Services,
    locale: str,
    open_survey: service.OpenSurvey,
    fsm_data: dict[str, Any],
) -> None:
    """Read a typed survey answer: save it, ask again politely, or give up after 3 retries."""
    row, text = open_survey.outbox, message.text or ""
    ref = service.ref_of(services, row.id)  # type: ignore[arg-type]
    if service.is_stop_word(text):
        await _close(state, fsm_data, row)
        await _stop(message, services, shop, customer, row)
        return
    if row.kind == BIRTHDAY_KIND:
        today = services.clock.now().astimezone(service.zone_of(shop, customer)).date()
        birthday = parse_birthday(text, locale, today=today)
        if birthday is not None:
            await service.save_birthday(
                services,
                shop=shop,
                customer=customer,
                birthday=birthday,
                outbox_id=row.id,
                source="survey",
            )
            await _close(state, fsm_data, row)
            await message.answer(texts.birthday_saved(birthday, locale))
            return
        retry, keyboard = texts.birthday_retry(locale), texts.months_keyboard(ref, locale)
    else:
        survey = open_survey.survey
        assert survey is not None
        value = service.match_choice(survey, text) if survey.choices else text.strip()
        if value:
            await service.save_answer(
                services, customer=customer, survey=survey, value=value, outbox_id=row.id
            )
            await _close(state, fsm_data, row)
            await message.answer(texts.answer_saved())
            return
        retry, keyboard = texts.choose_an_option(), texts.choices_keyboard(ref, survey.choices)
    attempts = open_survey.attempts + 1
    if attempts > service.MAX_RETRIES:
        await service.end_survey(services, customer=customer, row=row, reason="retries")
        await _close(state, fsm_data, row)
        await message.answer(texts.gave_up())
        return
    await state.set_state(service.SurveyStates.answering)
    await state.set_data({**fsm_data, "survey": {"ref": row.id, "attempts": attempts}})
    await message.answer(retry, reply_markup=keyboard)


async def survey_tap(
    callback: CallbackQuery,
    callback_data: SurveyCallback,
    state: FSMContext,
    shop: Shop,
    customer: Customer | None,
    services: Services,
    locale: str,
) -> None:
    """Handle a month, day, choice, Back or Skip tap on a survey message."""
    message = callback.message
    row = await service.outbox_of_ref(
        services, shop=shop, customer=customer, ref=callback_data.ref, kinds=TYPED_KINDS
    )
    if row is None or customer is None or not isinstance(message, Message):
        await callback.answer(settings_texts.button_refused())
        return
    data = await state.get_data()
    if not service.is_open(services, shop, row, data):
        await callback.answer(texts.survey_closed())
        await _drop_buttons(message)
        return
    action, value, ref = callback_data.action, callback_data.value, callback_data.ref
    birthday = row.kind == BIRTHDAY_KIND
    if action is SurveyAction.MONTH and birthday and 1 <= value <= 12:
        await callback.answer()
        await message.edit_text(
            texts.choose_day(value, locale), reply_markup=texts.days_keyboard(ref, value)
        )
    elif action is SurveyAction.MONTHS and birthday:
        await callback.answer()
        await message.edit_text(
            texts.birthday_question(locale), reply_markup=texts.months_keyboard(ref, locale)
        )
    elif (
        action is SurveyAction.DAY
        and birthday
        and 1 <= value <= 12
        and 1 <= callback_data.day <= days_in_month(value)
    ):
        await callback.answer()
        chosen = Birthday(month=value, day=callback_data.day)
        await service.save_birthday(
            services,
            shop=shop,
            customer=customer,
            birthday=chosen,
            outbox_id=row.id,
            source="buttons",
        )
        await _close(state, data, row)
        await message.edit_text(texts.birthday_saved(chosen, locale))
    elif action is SurveyAction.CHOICE and row.kind == QUESTION_KIND:
        survey = await service.survey_of(services, shop=shop, row=row)
        if survey is None or not 0 <= value < len(survey.choices):
            await callback.answer(settings_texts.button_refused())
            return
        await callback.answer()
        choice = survey.choices[value]
        await service.save_answer(
            services, customer=customer, survey=survey, value=choice, outbox_id=row.id
        )
        await _close(state, data, row)
        await _drop_buttons(message)
        await message.answer(texts.answer_saved_with(choice))
    elif action is SurveyAction.SKIP:
        await callback.answer()
        await service.end_survey(services, customer=customer, row=row, reason="skip")
        await _close(state, data, row)
        await _drop_buttons(message)
        await message.answer(texts.skipped())
    else:
        await callback.answer(settings_texts.button_refused())


async def nps_tap(
    callback: CallbackQuery,
    callback_data: NpsCallback,
    state: FSMContext,
    shop: Shop,
    customer: Customer | None,
    services: Services,
) -> None:
    """Store an NPS score; thank a passive, ask a detractor what went wrong."""
    message = callback.message
    row = await service.outbox_of_ref(
        services, shop=shop, customer=customer, ref=callback_data.ref, kinds=(NPS_KIND,)
    )
    score = callback_data.score
    if row is None or customer is None or not 0 <= score <= 10:
        await callback.answer(settings_texts.button_refused())
        return
    data = await state.get_data()
    if not service.is_open(services, shop, row, data):
        await callback.answer(texts.survey_closed())
        if isinstance(message, Message):
            await _drop_buttons(message)
        return
    await callback.answer()
    group = await service.save_nps(services, shop=shop, customer=customer, row=row, score=score)
    data = service.closed_data(data, row)
    if group is NpsClass.DETRACTOR:
        data["nps"] = {
            "ref": row.id,
            "score": score,
            "order_id": row.payload.get("order_id"),
            "since": services.clock.now().timestamp(),
        }
        await state.set_state(service.SurveyStates.nps_feedback)
    await state.set_data(data)
    if isinstance(message, Message) and not isinstance(message, InaccessibleMessage):
        await message.edit_text(texts.nps_answered(shop.name, score))
        if group is NpsClass.PASSIVE:
            await message.answer(texts.passive_thanks())
        elif group is NpsClass.DETRACTOR:
            await message.answer(texts.detractor_question())


async def nps_feedback(
    message: Message,
    state: FSMContext,
    shop: Shop,
    customer: Customer | None,
    services: Services,
) -> None:
    """Store a detractor's explanation with the score and order; pass on when it expired."""
    data = await state.get_data()
    nps = data.get("nps")
    if customer is None or not nps or service.feedback_expired(services, shop, nps):
        data.pop("nps", None)
        await state.set_data(data)
        await state.set_state(None)
        raise SkipHandler
    data.pop("nps", None)
    await state.set_data(data)
    await state.set_state(None)
    if service.is_stop_word(message.text):
        await _stop(message, services, shop, customer, None)
        return
    await service.save_nps_feedback(
        services,
        customer=customer,
        nps=nps,
        text=message.text or "",
        message_id=message.message_id,
    )
    await message.answer(texts.detractor_thanks())

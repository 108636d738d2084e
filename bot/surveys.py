"""Surveys in the chat: the birthday question, shop questions and NPS, answered by taps or text.

Invitations are outbox rows (the dispatcher sends them); callback buttons carry a signed
reference to that row. A typed answer belongs to the customer's newest survey message sent
within the shop's `survey_ttl` that is not closed yet; the FSM data (database or Redis, so it
survives restarts) keeps the retry count and which surveys are closed:

    {"survey": {"ref": outbox_id, "attempts": n}, "closed": outbox_id,
     "nps": {"ref": ..., "score": ..., "order_id": ..., "since": epoch}, "nps_closed": outbox_id}
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from aiogram.fsm.state import State, StatesGroup
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import read_ref, sign_ref
from bot.dates import Birthday, _fold
from bot.db import transaction
from bot.messages import surveys as texts
from bot.messages.render import RenderContext, Rendered, SkipMessage, register_kind
from bot.models import Customer, Lane, Outbox, Shop, Survey
from bot.services import Services
from bot.shop_settings import load_shop_settings
from bot.store import surveys as store
from bot.store.outbox import get_outbox, schedule

BIRTHDAY_KIND = "survey.birthday"
QUESTION_KIND = "survey.question"
NPS_KIND = "nps.question"
PROMOTER_KIND = "nps.promoter"
TYPED_KINDS = (BIRTHDAY_KIND, QUESTION_KIND)
MAX_RETRIES = 3
MAX_ANSWER = 1000
STOP_WORDS = frozenset(_fold(w) for w in ("stop", "стоп", "хватит", "досить", "dość"))


class SurveyStates(StatesGroup):
    """Conversation states: answering a survey, explaining a low NPS score."""

    answering = State()
    nps_feedback = State()


class NpsClass(StrEnum):
    """The NPS group a score falls in."""

    PROMOTER = "promoter"
    PASSIVE = "passive"
    DETRACTOR = "detractor"


def nps_class(score: int) -> NpsClass:
    """Return the NPS group of a 0-10 score."""
    if score >= 9:
        return NpsClass.PROMOTER
    if score >= 7:
        return NpsClass.PASSIVE
    return NpsClass.DETRACTOR


def is_stop_word(text: str | None) -> bool:
    """Tell whether a message asks to stop ("stop", "стоп", "хватит", "досить", "dość")."""
    return bool(text) and _fold(text or "").strip(" .!") in STOP_WORDS


def zone_of(shop: Shop, customer: Customer | None) -> ZoneInfo:
    """Return the customer's time zone, else the shop's, else UTC."""
    for name in ((customer.timezone if customer else None), shop.timezone, "UTC"):
        if name:
            try:
                return ZoneInfo(name)
            except (KeyError, ValueError):
                continue
    return ZoneInfo("UTC")


# ---------------------------------------------------------------------------- scheduling


async def schedule_birthday_survey(
    *,
    session: AsyncSession,
    shop_id: int,
    customer_id: int,
    now: datetime,
    due_at: datetime | None = None,
    dedupe_key: str | None = None,
) -> Outbox | None:
    """Schedule the birthday question for a customer (None when already scheduled)."""
    return await schedule(
        session=session,
        shop_id=shop_id,
        customer_id=customer_id,
        kind=BIRTHDAY_KIND,
        dedupe_key=dedupe_key or f"survey:birthday:{customer_id}",
        due_at=due_at or now,
        lane=Lane.REMINDER,
        now=now,
    )


async def schedule_question(
    *, session: AsyncSession, shop_id: int, survey: Survey, customer_id: int, now: datetime
) -> Outbox | None:
    """Schedule a shop question for a customer, once per survey."""
    return await schedule(
        session=session,
        shop_id=shop_id,
        customer_id=customer_id,
        kind=QUESTION_KIND,
        dedupe_key=f"survey:{survey.id}:{customer_id}",
        due_at=now,
        lane=Lane.REMINDER,
        payload={"survey_id": survey.id},
        now=now,
    )


# ------------------------------------------------------------------------------ callbacks


def ref_of(services: Services, outbox_id: int) -> str:
    """Return the signed reference a button carries."""
    return sign_ref(services.secret_key, outbox_id)


async def outbox_of_ref(
    services: Services, *, shop: Shop, customer: Customer | None, ref: str, kinds: tuple[str, ...]
) -> Outbox | None:
    """Return the outbox row a button refers to, only if it is this customer's and of a kind."""
    outbox_id = read_ref(services.secret_key, ref)
    if outbox_id is None or customer is None or shop.id is None:
        return None
    async with services.sessions() as session:
        row = await get_outbox(session=session, shop_id=shop.id, outbox_id=outbox_id)
    if row is None or row.customer_id != customer.id or row.kind not in kinds:
        return None
    return row


def is_open(services: Services, shop: Shop, row: Outbox, data: dict[str, Any]) -> bool:
    """Tell whether a survey message still takes answers (not closed, not expired)."""
    mark = "nps_closed" if row.kind == NPS_KIND else "closed"
    if row.id is None or row.id <= int(data.get(mark) or 0):
        return False
    ttl = load_shop_settings(shop.settings).survey_ttl
    sent = row.sent_at or row.due_at
    return sent + ttl >= services.clock.now()


def closed_data(data: dict[str, Any], row: Outbox) -> dict[str, Any]:
    """Return FSM data with the survey closed (its retry count dropped)."""
    data = dict(data)
    if row.kind == NPS_KIND:
        data["nps_closed"] = max(int(data.get("nps_closed") or 0), row.id or 0)
    else:
        data["closed"] = max(int(data.get("closed") or 0), row.id or 0)
        data.pop("survey", None)
    return data


# -------------------------------------------------------------------------- typed answers


@dataclass(frozen=True, slots=True)
class OpenSurvey:
    """The survey a typed message answers, and how many unreadable answers it already had."""

    outbox: Outbox
    survey: Survey | None
    attempts: int


async def find_open_survey(
    services: Services, *, shop: Shop, customer: Customer, data: dict[str, Any]
) -> OpenSurvey | None:
    """Return the survey a typed message from this customer answers, or None (support)."""
    assert shop.id is not None and customer.id is not None
    ttl = load_shop_settings(shop.settings).survey_ttl
    async with services.sessions() as session:
        row = await store.latest_invitation(
            session=session,
            shop_id=shop.id,
            customer_id=customer.id,
            kinds=TYPED_KINDS,
            sent_since=services.clock.now() - ttl,
        )
        if row is None or not is_open(services, shop, row, data):
            return None
        survey = None
        if row.kind == QUESTION_KIND:
            survey = await store.get_survey(
                session=session, shop_id=shop.id, survey_id=int(row.payload.get("survey_id", 0))
            )
            if survey is None:
                return None
    current = data.get("survey") or {}
    attempts = int(current.get("attempts", 0)) if current.get("ref") == row.id else 0
    return OpenSurvey(outbox=row, survey=survey, attempts=attempts)


def match_choice(survey: Survey, text: str) -> str | None:
    """Return the choice a typed answer names (case and accents ignored), or None."""
    wanted = _fold(text).strip(" .!")
    for choice in survey.choices:
        if _fold(choice).strip(" .!") == wanted:
            return choice
    return None


# -------------------------------------------------------------------------------- answers


async def save_birthday(
    services: Services,
    *,
    shop: Shop,
    customer: Customer,
    birthday: Birthday,
    outbox_id: int | None,
    source: str,
) -> None:
    """Store the birthday on the profile and plan this year's greeting if it is near."""
    from bot.flows.birthday import plan_customer_greeting

    now = services.clock.now()
    async with transaction(services.sessions) as session:
        fresh = await session.get(Customer, customer.id)
        assert fresh is not None
        await store.set_birthday(
            session=session,
            customer=fresh,
            birthday=birthday,
            source=source,
            now=now,
            outbox_id=outbox_id,
        )
        await plan_customer_greeting(session=session, shop=shop, customer=fresh, now=now)


async def save_answer(
    services: Services, *, customer: Customer, survey: Survey, value: str, outbox_id: int | None
) -> None:
    """Write a shop question's answer to the profile attribute."""
    async with transaction(services.sessions) as session:
        fresh = await session.get(Customer, customer.id)
        assert fresh is not None
        await store.set_attribute(
            session=session,
            customer=fresh,
            survey=survey,
            value=value[:MAX_ANSWER],
            now=services.clock.now(),
            outbox_id=outbox_id,
        )


async def end_survey(services: Services, *, customer: Customer, row: Outbox, reason: str) -> None:
    """Log a survey that ended without an answer (skip, retries, stop)."""
    async with transaction(services.sessions) as session:
        await store.record_survey_end(
            session=session,
            customer=customer,
            kind=row.kind,
            reason=reason,
            now=services.clock.now(),
            outbox_id=row.id,
        )


async def survey_of(services: Services, *, shop: Shop, row: Outbox) -> Survey | None:
    """Return the shop question a survey message asked."""
    assert shop.id is not None
    async with services.sessions() as session:
        return await store.get_survey(
            session=session, shop_id=shop.id, survey_id=int(row.payload.get("survey_id") or 0)
        )


# ------------------------------------------------------------------------------------ NPS


async def save_nps(
    services: Services, *, shop: Shop, customer: Customer, row: Outbox, score: int
) -> NpsClass:
    """Store the score; invite a promoter (an outbox row); flag a detractor for follow-up."""
    now = services.clock.now()
    group = nps_class(score)
    async with transaction(services.sessions) as session:
        fresh = await session.get(Customer, customer.id)
        assert fresh is not None and shop.id is not None and row.id is not None
        await store.record_nps(
            session=session,
            customer=fresh,
            score=score,
            order_id=row.payload.get("order_id"),
            outbox_id=row.id,
            now=now,
        )
        if group is NpsClass.PROMOTER:
            await schedule(
                session=session,
                shop_id=shop.id,
                customer_id=fresh.id,  # type: ignore[arg-type]
                kind=PROMOTER_KIND,
                dedupe_key=f"nps:{row.id}:promoter",
                due_at=now,
                lane=Lane.TRANSACTIONAL,
                payload={"nps_outbox_id": row.id},
                now=now,
            )
    return group


async def save_nps_feedback(
    services: Services, *, customer: Customer, nps: dict[str, Any], text: str, message_id: int
) -> None:
    """Store a detractor's explanation with the score and order attached."""
    async with transaction(services.sessions) as session:
        fresh = await session.get(Customer, customer.id)
        assert fresh is not None
        await store.record_nps_feedback(
            session=session,
            customer=fresh,
            text=text[:4000],
            score=int(nps.get("score", 0)),
            order_id=nps.get("order_id"),
            outbox_id=nps.get("ref"),
            message_id=message_id,
            now=services.clock.now(),
        )


def feedback_expired(services: Services, shop: Shop, nps: dict[str, Any]) -> bool:
    """Tell whether the wait for a detractor's explanation is over (the shop's survey_ttl)."""
    ttl: timedelta = load_shop_settings(shop.settings).survey_ttl
    return float(nps.get("since", 0)) + ttl.total_seconds() < services.clock.now().timestamp()


# ------------------------------------------------------------------------------ messages


async def render_shop_question(ctx: RenderContext) -> Rendered:
    """Render a shop question: the shop's words, choice buttons (or free text) and Skip."""
    survey = await store.get_survey(
        session=ctx.session,
        shop_id=ctx.shop.id,  # type: ignore[arg-type]
        survey_id=int(ctx.payload.get("survey_id") or 0),
    )
    if survey is None:
        raise SkipMessage("survey_deleted")
    ref = sign_ref(ctx.secret_key, ctx.outbox.id)  # type: ignore[arg-type]
    keyboard = (
        texts.choices_keyboard(ref, survey.choices) if survey.choices else texts.skip_keyboard(ref)
    )
    return Rendered(
        text=texts.shop_question(survey.question, free_text=not survey.choices),
        buttons=keyboard.inline_keyboard,
    )


register_kind(QUESTION_KIND, render=render_shop_question)


# ---------------------------------------------------------------------------------- report


def nps_summary(answers: list[tuple[datetime, int]], zone: ZoneInfo) -> dict[str, Any]:
    """Return the NPS (% promoters - % detractors), the 0-10 distribution and the monthly trend."""

    def score(scores: list[int]) -> float | None:
        if not scores:
            return None
        promoters = sum(1 for s in scores if s >= 9)
        detractors = sum(1 for s in scores if s <= 6)
        return round(100 * (promoters - detractors) / len(scores), 1)

    by_month: dict[str, list[int]] = {}
    for when, value in answers:
        by_month.setdefault(when.astimezone(zone).strftime("%Y-%m"), []).append(value)
    scores = [value for _, value in answers]
    return {
        "answers": len(scores),
        "nps": score(scores),
        "promoters": sum(1 for s in scores if s >= 9),
        "passives": sum(1 for s in scores if 7 <= s <= 8),
        "detractors": sum(1 for s in scores if s <= 6),
        "distribution": {str(n): scores.count(n) for n in range(11)},
        "by_month": [
            {"month": month, "answers": len(values), "nps": score(values)}
            for month, values in sorted(by_month.items())
        ],
    }

"""Surveys: shop questions, pending invitations, and answers written to the profile."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.dates import Birthday
from bot.models import Customer, CustomerEvent, Outbox, OutboxState, Survey
from bot.store.customers import log_customer_event

# The year kept in `customers.birthday` when the customer did not say it (a leap year, so
# 29 February fits); `customers.birth_year` is None then.
YEAR_UNKNOWN = 1904


async def create_survey(
    *,
    session: AsyncSession,
    shop_id: int,
    question: str,
    attribute: str,
    choices: Iterable[str] = (),
    now: datetime,
) -> Survey:
    """Define a shop question; no choices means a free-text answer."""
    survey = Survey(
        shop_id=shop_id,
        question=question,
        attribute=attribute,
        choices=list(choices),
        created_at=now,
    )
    session.add(survey)
    await session.flush()
    return survey


async def get_survey(*, session: AsyncSession, shop_id: int, survey_id: int) -> Survey | None:
    """Return the shop's survey by id (never another shop's)."""
    survey = await session.get(Survey, survey_id)
    if survey is None or survey.shop_id != shop_id:
        return None
    return survey


async def list_surveys(*, session: AsyncSession, shop_id: int) -> list[Survey]:
    """Return the shop's surveys, oldest first."""
    query = select(Survey).where(Survey.shop_id == shop_id).order_by(Survey.id)  # type: ignore[arg-type]
    return list((await session.scalars(query)).all())


async def latest_invitation(
    *,
    session: AsyncSession,
    shop_id: int,
    customer_id: int,
    kinds: Iterable[str],
    sent_since: datetime,
) -> Outbox | None:
    """Return the customer's newest survey message of these kinds sent after `sent_since`."""
    query = (
        select(Outbox)
        .where(
            Outbox.shop_id == shop_id,
            Outbox.customer_id == customer_id,
            Outbox.state == OutboxState.SENT,
            Outbox.kind.in_(list(kinds)),  # type: ignore[attr-defined]
            Outbox.sent_at >= sent_since,  # type: ignore[operator]
        )
        .order_by(Outbox.sent_at.desc(), Outbox.id.desc())  # type: ignore[union-attr]
        .limit(1)
    )
    return (await session.scalars(query)).first()


async def set_birthday(
    *,
    session: AsyncSession,
    customer: Customer,
    birthday: Birthday,
    source: str,
    now: datetime,
    outbox_id: int | None = None,
) -> CustomerEvent:
    """Store the birthday on the profile and log it."""
    customer.birthday = date(birthday.year or YEAR_UNKNOWN, birthday.month, birthday.day)
    customer.birth_year = birthday.year
    customer.updated_at = now
    session.add(customer)
    return await log_customer_event(
        session=session,
        customer=customer,
        type="birthday_set",
        source=source,
        occurred_at=now,
        payload={
            "month": birthday.month,
            "day": birthday.day,
            "year": birthday.year,
            "outbox_id": outbox_id,
        },
    )


def birthday_of(customer: Customer) -> Birthday | None:
    """Return the profile's birthday with the year only when the customer gave it."""
    if customer.birthday is None:
        return None
    year = customer.birth_year
    if year is None and customer.birthday.year != YEAR_UNKNOWN:
        year = customer.birthday.year  # a birthday the shop platform sent, with its year
    return Birthday(customer.birthday.month, customer.birthday.day, year)


async def set_attribute(
    *,
    session: AsyncSession,
    customer: Customer,
    survey: Survey,
    value: str,
    now: datetime,
    outbox_id: int | None,
) -> CustomerEvent:
    """Write a survey answer to the profile attribute it maps to, and log it."""
    attributes: dict[str, Any] = dict(customer.attributes or {})
    attributes[survey.attribute] = value
    customer.attributes = attributes
    customer.updated_at = now
    session.add(customer)
    return await log_customer_event(
        session=session,
        customer=customer,
        type="survey_answered",
        source="telegram",
        occurred_at=now,
        payload={
            "survey_id": survey.id,
            "attribute": survey.attribute,
            "value": value,
            "outbox_id": outbox_id,
        },
    )


async def record_survey_end(
    *,
    session: AsyncSession,
    customer: Customer,
    kind: str,
    reason: str,
    now: datetime,
    outbox_id: int | None,
) -> CustomerEvent:
    """Log a survey that ended without an answer: skipped, too many retries, or stop."""
    return await log_customer_event(
        session=session,
        customer=customer,
        type="survey_skipped" if reason == "skip" else "survey_abandoned",
        source="telegram",
        occurred_at=now,
        payload={"kind": kind, "reason": reason, "outbox_id": outbox_id},
    )


async def record_nps(
    *,
    session: AsyncSession,
    customer: Customer,
    score: int,
    order_id: str | None,
    outbox_id: int,
    now: datetime,
) -> CustomerEvent:
    """Store an NPS score as an event and the latest on the profile; flag a detractor."""
    customer.nps_score = score
    if score <= 6:
        customer.needs_follow_up = True
    customer.updated_at = now
    session.add(customer)
    return await log_customer_event(
        session=session,
        customer=customer,
        type="nps_answered",
        source="telegram",
        occurred_at=now,
        payload={"score": score, "order_id": order_id, "outbox_id": outbox_id},
    )


async def record_nps_feedback(
    *,
    session: AsyncSession,
    customer: Customer,
    text: str,
    score: int,
    order_id: str | None,
    outbox_id: int | None,
    message_id: int,
    now: datetime,
) -> CustomerEvent:
    """Store a detractor's explanation with the score and order it belongs to."""
    customer.needs_follow_up = True
    customer.updated_at = now
    session.add(customer)
    return await log_customer_event(
        session=session,
        customer=customer,
        type="nps_feedback",
        source="telegram",
        occurred_at=now,
        payload={
            "text": text,
            "score": score,
            "order_id": order_id,
            "outbox_id": outbox_id,
            "message_id": message_id,
        },
    )


async def nps_scores(
    *, session: AsyncSession, shop_id: int, since: datetime | None = None
) -> list[tuple[datetime, int]]:
    """Return every NPS answer of the shop as (when, score), oldest first."""
    query = select(CustomerEvent.occurred_at, CustomerEvent.payload).where(
        CustomerEvent.shop_id == shop_id, CustomerEvent.type == "nps_answered"
    )
    if since is not None:
        query = query.where(CustomerEvent.occurred_at >= since)
    query = query.order_by(CustomerEvent.occurred_at, CustomerEvent.id)  # type: ignore[arg-type]
    return [(when, int(payload["score"])) for when, payload in await session.execute(query)]

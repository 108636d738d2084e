"""A customer's own choices: consent, a promo pause, language, and the follow-up flag."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Consent, Customer, CustomerEvent
from bot.store.customers import log_customer_event, record_opt_in


async def _log(
    session: AsyncSession,
    customer: Customer,
    type: str,
    source: str,
    now: datetime,
    **payload: object,
) -> CustomerEvent:
    return await log_customer_event(
        session=session,
        customer=customer,
        type=type,
        source=source,
        occurred_at=now,
        payload=dict(payload),
    )


async def unsubscribe(
    *, session: AsyncSession, customer: Customer, source: str, now: datetime
) -> bool:
    """Record opt-out consent with its time and source; False when already opted out."""
    if customer.consent == Consent.OPTED_OUT:
        return False
    customer.consent = Consent.OPTED_OUT
    customer.consent_source = source
    customer.consent_at = now
    customer.updated_at = now
    session.add(customer)
    await _log(session, customer, "unsubscribed", source, now)
    return True


async def resubscribe(
    *, session: AsyncSession, customer: Customer, source: str, now: datetime
) -> bool:
    """Record opt-in consent again; False when already opted in."""
    if not await record_opt_in(session=session, customer=customer, source=source, now=now):
        return False
    await _log(session, customer, "resubscribed", source, now)
    return True


async def pause_promos(
    *, session: AsyncSession, customer: Customer, until: datetime | None, now: datetime
) -> None:
    """Pause promo messages until a moment (None resumes them)."""
    customer.promos_paused_until = until
    customer.updated_at = now
    session.add(customer)
    if until is None:
        await _log(session, customer, "promos_resumed", "telegram", now)
    else:
        await _log(session, customer, "promos_paused", "telegram", now, until=until.isoformat())


async def set_locale(
    *, session: AsyncSession, customer: Customer, locale: str, now: datetime
) -> None:
    """Remember the language the customer chose."""
    customer.locale = locale
    customer.updated_at = now
    session.add(customer)
    await _log(session, customer, "locale_changed", "telegram", now, locale=locale)


async def resolve_follow_up(
    *, session: AsyncSession, customer: Customer, now: datetime, source: str = "cli"
) -> bool:
    """Clear the follow-up flag (promos resume); False when it was not set."""
    was_set = customer.needs_follow_up
    customer.needs_follow_up = False
    customer.updated_at = now
    session.add(customer)
    await _log(session, customer, "follow_up_resolved", source, now, was_flagged=was_set)
    return was_set

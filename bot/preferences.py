"""The customer's own settings: language, topics turned off, a promo pause, subscription.

Handlers call these; each change is one transaction and leaves an event on the profile. The
dispatcher reads the profile at send time, so a change applies to messages already scheduled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from bot.db import transaction
from bot.i18n import SUPPORTED_LOCALES
from bot.models import Consent, Customer, Exclusion
from bot.services import Services
from bot.store import preferences as store
from bot.store.customers import log_customer_event
from bot.store.offers import list_exclusions, remove_exclusion

PAUSE = timedelta(days=30)


def is_opted_out(customer: Customer | None) -> bool:
    """Tell whether a linked customer unsubscribed."""
    return customer is not None and customer.consent == Consent.OPTED_OUT


@asynccontextmanager
async def _profile(services: Services, customer: Customer) -> AsyncIterator[tuple[Any, Customer]]:
    """Open one transaction with a fresh copy of the customer's profile."""
    async with transaction(services.sessions) as session:
        fresh = await session.get(Customer, customer.id)
        assert fresh is not None
        yield session, fresh


async def set_language(
    services: Services,
    *,
    customer: Customer,
    locale: str,
    offered: Sequence[str] = SUPPORTED_LOCALES,
) -> None:
    """Remember the customer's language (one of the languages the shop offers)."""
    if locale not in SUPPORTED_LOCALES or locale not in offered:
        raise ValueError(f"unsupported locale {locale!r}")
    async with _profile(services, customer) as (session, fresh):
        await store.set_locale(
            session=session, customer=fresh, locale=locale, now=services.clock.now()
        )


async def pause(services: Services, *, customer: Customer) -> datetime:
    """Pause promo messages for 30 days; return until when."""
    until = services.clock.now() + PAUSE
    async with _profile(services, customer) as (session, fresh):
        await store.pause_promos(
            session=session, customer=fresh, until=until, now=services.clock.now()
        )
    return until


async def resume(services: Services, *, customer: Customer) -> None:
    """End a promo pause now."""
    async with _profile(services, customer) as (session, fresh):
        await store.pause_promos(
            session=session, customer=fresh, until=None, now=services.clock.now()
        )


def paused_until(services: Services, customer: Customer) -> datetime | None:
    """Return until when promos are paused, or None when they are not."""
    until = customer.promos_paused_until
    return until if until is not None and until > services.clock.now() else None


async def unsubscribe(services: Services, *, customer: Customer, source: str) -> bool:
    """Opt the customer out at once (recorded with time and source); False if already out."""
    async with _profile(services, customer) as (session, fresh):
        return await store.unsubscribe(
            session=session, customer=fresh, source=source, now=services.clock.now()
        )


async def resubscribe(services: Services, *, customer: Customer) -> bool:
    """Opt the customer back in after they confirmed; False if already in."""
    async with _profile(services, customer) as (session, fresh):
        return await store.resubscribe(
            session=session, customer=fresh, source="resubscribe", now=services.clock.now()
        )


async def topics(services: Services, *, customer: Customer) -> list[Exclusion]:
    """Return the topics the customer said "not interested" to."""
    async with services.sessions() as session:
        return await list_exclusions(
            session=session,
            shop_id=customer.shop_id,
            customer_id=customer.id,  # type: ignore[arg-type]
        )


async def restore_topic(
    services: Services, *, customer: Customer, exclusion_id: int
) -> Exclusion | None:
    """Undo one of the customer's own exclusions; None when it is not theirs or gone."""
    now = services.clock.now()
    async with transaction(services.sessions) as session:
        exclusion = await session.get(Exclusion, exclusion_id)
        if (
            exclusion is None
            or exclusion.shop_id != customer.shop_id
            or exclusion.customer_id != customer.id
        ):
            return None
        await remove_exclusion(
            session=session,
            shop_id=customer.shop_id,
            customer_id=customer.id,  # type: ignore[arg-type]
            topic=exclusion.topic,
        )
        await log_customer_event(
            session=session,
            customer=customer,
            type="exclusion_removed",
            source="settings",
            occurred_at=now,
            payload={"topic": exclusion.topic},
        )
    return exclusion

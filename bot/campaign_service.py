"""What a shop owner does with a campaign, as one function per action.

The CLI (`nudge campaign …`) and the admin API call these and only present the result: every
rule lives here or below (bot/store/campaigns.py, bot/flows/campaign.py), never in a door.
Each function takes the session factory and returns plain JSON-ready data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.campaigns import CampaignError, missing_locales, parse_campaign
from bot.db import transaction
from bot.models import Campaign, Customer, Shop
from bot.store import campaigns as store

Sessions = async_sessionmaker[AsyncSession]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def record(campaign: Campaign) -> dict[str, Any]:
    """Return a campaign's summary as JSON-ready data."""
    return {
        "id": campaign.id,
        "shop_id": campaign.shop_id,
        "name": campaign.name,
        "topic": campaign.topic,
        "status": campaign.status,
        "send_at": _iso(campaign.send_at),
        "local_time": campaign.local_time,
        "started_at": _iso(campaign.started_at),
        "fanned_out_at": _iso(campaign.fanned_out_at),
        "created_at": _iso(campaign.created_at),
    }


async def _found(
    session: AsyncSession, campaign_id: int, shop_id: int | None
) -> tuple[Campaign, Shop]:
    campaign = await store.get_campaign(session=session, shop_id=shop_id, campaign_id=campaign_id)
    shop = await session.get(Shop, campaign.shop_id)
    if shop is None:  # pragma: no cover - the foreign key keeps them together
        raise CampaignError(f"no campaign {campaign_id}")
    return campaign, shop


async def create(sessions: Sessions, *, shop_id: int, raw: Any, now: datetime) -> dict[str, Any]:
    """Check a campaign file and store it as a draft."""
    async with transaction(sessions) as session:
        return record(
            await store.create_campaign(session=session, shop_id=shop_id, raw=raw, now=now)
        )


async def listing(sessions: Sessions, *, shop_id: int) -> list[dict[str, Any]]:
    """Return the shop's campaigns, newest first."""
    async with sessions() as session:
        return [record(c) for c in await store.list_campaigns(session=session, shop_id=shop_id)]


async def progress(
    sessions: Sessions, *, shop_id: int, campaign_id: int | None = None
) -> dict[int, dict[str, int]]:
    """Return every campaign's progress (see store.progress), for lists, or one campaign's."""
    async with sessions() as session:
        return await store.progress(session=session, shop_id=shop_id, campaign_id=campaign_id)


async def show(
    sessions: Sessions, *, campaign_id: int, shop_id: int | None = None
) -> dict[str, Any]:
    """Return one campaign with its file."""
    async with sessions() as session:
        campaign, _shop = await _found(session, campaign_id, shop_id)
        return {**record(campaign), "file": campaign.spec}


async def preview(
    sessions: Sessions, *, campaign_id: int, now: datetime, shop_id: int | None = None
) -> dict[str, Any]:
    """Render each variant in each locale of the shop, list missing texts, split the audience."""
    from bot.i18n import offered_locales
    from bot.shop_settings import load_shop_settings

    async with sessions() as session:
        campaign, shop = await _found(session, campaign_id, shop_id)
        offered = offered_locales(load_shop_settings(shop.settings).languages)
        shown = await _rendered(session, shop, campaign, offered)
        split = await store.split_audience(session=session, shop=shop, campaign=campaign, now=now)
        spec = store.spec_of(campaign)
    return {
        **record(campaign),
        "default_locale": shop.default_locale,
        "missing_translations": missing_locales(spec, offered),
        "audience": {
            "total": split.audience,
            "holdout": split.holdout,
            "variants": split.variants,
            "locales": split.locales,
            "by_variant_and_locale": split.by_variant_locale,
        },
        "messages": shown,
    }


async def preview_draft(sessions: Sessions, *, shop_id: int, raw: Any) -> dict[str, Any]:
    """Render a campaign file that is not stored yet (the console's editor), as `preview` does."""
    from bot.i18n import offered_locales
    from bot.shop_settings import load_shop_settings

    spec = parse_campaign(raw)
    async with sessions() as session:
        shop = await session.get(Shop, shop_id)
        if shop is None:
            raise CampaignError(f"no shop {shop_id}")
        offered = offered_locales(load_shop_settings(shop.settings).languages)
        draft = Campaign(shop_id=shop_id, name=spec.name, topic=spec.topic, spec=raw)
        shown = await _rendered(session, shop, draft, offered)
    return {
        "default_locale": shop.default_locale,
        "missing_translations": missing_locales(spec, offered),
        "messages": shown,
    }


async def _rendered(
    session: AsyncSession, shop: Shop, campaign: Campaign, offered: Sequence[str]
) -> list[dict[str, Any]]:
    """Each variant (and the follow-up) in each offered locale, with a real first name."""
    from bot.flows.campaign import preview as render_all

    names: dict[str, str | None] = {}
    for locale in offered:  # a real first name of that language makes a real preview
        names[locale] = await session.scalar(
            select(Customer.first_name)
            .where(
                Customer.shop_id == shop.id,
                Customer.locale == locale,
                Customer.first_name.is_not(None),  # type: ignore[union-attr]
                Customer.redacted_hash.is_(None),  # type: ignore[union-attr]
            )
            .order_by(Customer.id)
            .limit(1)
        )
    shown = await render_all(
        session=session, shop=shop, campaign=campaign, offered=offered, names=names
    )
    return [
        {
            "variant": m.variant,
            "step": m.step,
            "locale": m.locale,
            "text_locale": m.shown_locale,
            "text": m.text,
            "image_url": m.image_url,
            "buttons": [[{"text": b.text, "url": b.url} for b in row] for row in m.buttons],
        }
        for m in shown
    ]


async def send(
    sessions: Sessions,
    *,
    campaign_id: int,
    now: Callable[[], datetime],
    at: datetime | None = None,
    local_time: str | None = None,
    shop_id: int | None = None,
    started: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Start a campaign and fan it out; `started(audience)` is called before the fan-out."""
    async with transaction(sessions) as session:
        campaign, shop = await _found(session, campaign_id, shop_id)
        already = campaign.status == "sent"
        split = await store.start(
            session=session, shop=shop, campaign=campaign, now=now(), at=at, local_time=local_time
        )
        owner = shop.id
    assert owner is not None
    if started and not already:
        started(split.audience)
    done = await store.fan_out(
        sessions=sessions,
        shop_id=owner,
        campaign_id=campaign_id,
        now=now,
        progress=None if already else progress,
    )
    async with sessions() as session:
        campaign, _shop = await _found(session, campaign_id, shop_id)
        result = record(campaign)
    result.update(
        {
            "audience": split.audience,
            "recipients": done.recipients,
            "holdout": done.holdout,
            "scheduled": done.scheduled,
            "stopped": done.stopped,
            "already_sent": already,
        }
    )
    return result


ACTIONS = ("pause", "resume", "cancel")


async def act(
    sessions: Sessions,
    *,
    campaign_id: int,
    action: str,
    now: Callable[[], datetime],
    shop_id: int | None = None,
) -> dict[str, Any]:
    """Pause, resume (and go on fanning out) or cancel a campaign."""
    if action not in ACTIONS:
        raise CampaignError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    async with transaction(sessions) as session:
        campaign, _shop = await _found(session, campaign_id, shop_id)
        rows = await getattr(store, action)(session=session, campaign=campaign, now=now())
        result = record(campaign)
    if action == "resume" and result["status"] == "sending":
        await store.fan_out(
            sessions=sessions, shop_id=result["shop_id"], campaign_id=campaign_id, now=now
        )
        async with sessions() as session:
            campaign, _shop = await _found(session, campaign_id, shop_id)
            result = record(campaign)
    return {**result, "rows": rows}


async def report(
    sessions: Sessions, *, campaign_id: int, now: datetime, shop_id: int | None = None
) -> dict[str, Any]:
    """Return the campaign's report (see store.report)."""
    async with sessions() as session:
        campaign, shop = await _found(session, campaign_id, shop_id)
        return await store.report(session=session, shop=shop, campaign=campaign, now=now)

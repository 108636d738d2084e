"""Campaign messages: the guard and render of `campaign.message`, and where their links lead.

A row's payload names the campaign, the step (1: the message, 2: the follow-up) and the locale
the fan-out chose; the variant is the row's own column. The render reads the stored campaign
file, so what the customer gets is what `nudge campaign preview` showed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import OfferAction, offer_callback
from bot.campaigns import CampaignSpec, Message, fill, pick_locale
from bot.db import transaction
from bot.i18n import _, locale_scope
from bot.messages.render import Button, RenderContext, Rendered, SkipMessage, register_kind
from bot.models import Campaign, CampaignStatus, Click, Order, OrderStatus, Outbox, Shop
from bot.offers import BUTTON_TARGETS, LinkTarget, register_links, storefront_url, tracked_url
from bot.shop_settings import load_shop_settings
from bot.store.campaigns import (
    CAMPAIGN_KIND,
    campaigns_with_follow_ups,
    dedupe_key,
    plan_follow_ups,
    spec_of,
)
from bot.store.codes import issue_code

log = logging.getLogger(__name__)
DETRACTOR_MAX = 6
FOLLOW_UP_INTERVAL = 60.0


async def _campaign(session: AsyncSession, shop: Shop, row: Outbox) -> Campaign | None:
    campaign_id = (row.payload or {}).get("campaign_id")
    campaign = await session.get(Campaign, campaign_id) if isinstance(campaign_id, int) else None
    return campaign if campaign is not None and campaign.shop_id == shop.id else None


def _message(spec: CampaignSpec, row: Outbox, shop: Shop) -> tuple[str, Message, str | None]:
    """Return the locale, the message and the code pool of a campaign row."""
    payload = row.payload or {}
    locale = str(payload.get("locale") or shop.default_locale)
    if payload.get("step") == 2 and spec.follow_up is not None:
        messages, pool = spec.follow_up.messages, spec.follow_up.pool
    else:
        messages, pool = spec.variant(row.variant).messages, spec.pool
    chosen = pick_locale(messages, locale, shop.default_locale) or next(iter(messages))
    return chosen, messages[chosen], pool


async def still_wanted(ctx: RenderContext) -> str | None:
    """Skip a campaign row whose campaign stopped, or whose customer should not get it now."""
    campaign = await _campaign(ctx.session, ctx.shop, ctx.outbox)
    if campaign is None or campaign.status == CampaignStatus.CANCELLED:
        return "campaign_cancelled"
    if ctx.customer.nps_score is not None and ctx.customer.nps_score <= DETRACTOR_MAX:
        return "detractor"
    if ctx.payload.get("step") == 2:
        first = await ctx.session.scalar(
            select(Outbox).where(
                Outbox.shop_id == ctx.shop.id,
                Outbox.dedupe_key == dedupe_key(campaign.id, ctx.customer.id, 1),  # type: ignore[arg-type]
            )
        )
        if first is None or first.sent_at is None:
            return "first_not_sent"
        if await ctx.session.scalar(select(exists().where(Click.outbox_id == first.id))):
            return "clicked"
        ordered = exists().where(
            Order.shop_id == ctx.shop.id,
            Order.customer_id == ctx.customer.id,
            Order.status == OrderStatus.PLACED,
            Order.placed_at >= first.sent_at,
        )
        if await ctx.session.scalar(select(ordered)):
            return "ordered"
    return None


async def _catalog(session: AsyncSession, shop: Shop) -> str | None:
    return load_shop_settings(shop.settings).catalog_url or await storefront_url(session, shop)


async def render(ctx: RenderContext) -> Rendered:
    """Render a campaign message in the locale the fan-out chose, with its code and buttons."""
    campaign = await _campaign(ctx.session, ctx.shop, ctx.outbox)
    if campaign is None:
        raise SkipMessage("campaign_cancelled")
    spec = spec_of(campaign)
    locale, message, pool = _message(spec, ctx.outbox, ctx.shop)
    code = None
    if message.needs_code and pool:
        code = await issue_code(
            session=ctx.session,
            shop_id=ctx.shop.id,  # type: ignore[arg-type]
            pool=pool,
            customer_id=ctx.customer.id,  # type: ignore[arg-type]
            outbox_id=ctx.outbox.id,
            now=ctx.clock.now(),
        )
        if code is None:
            raise SkipMessage("no_codes")
    assert ctx.outbox.id is not None

    def link(target: LinkTarget) -> str:
        return tracked_url(
            public_url=ctx.public_url,
            secret_key=ctx.secret_key,
            outbox_id=ctx.outbox.id,  # type: ignore[arg-type]
            target=target,
        )

    has_catalog = bool(await _catalog(ctx.session, ctx.shop))
    not_interested = offer_callback(ctx.secret_key, OfferAction.NOT_INTERESTED, ctx.outbox.id)
    with locale_scope(locale):  # the text's locale: the buttons speak its language
        text = fill(
            message.text, first_name=ctx.customer.first_name, code=code, shop_name=ctx.shop.name
        )
        rows = keyboard(
            message,
            link=link,
            catalog=spec.catalog_button and has_catalog,
            not_interested=not_interested if spec.not_interested_button else None,
        )
    return Rendered(text=text, photo_url=message.image_url, buttons=rows)


def keyboard(
    message: Message,
    *,
    link: Callable[[LinkTarget], str],
    catalog: bool,
    not_interested: str | None,
) -> list[list[Button]]:
    """Build a campaign message's buttons (call inside the customer's locale scope)."""
    rows = [
        [Button(text=b.text, url=link(target))]
        for b, target in zip(message.buttons, BUTTON_TARGETS, strict=False)
    ]
    if catalog:
        rows.append([Button(text=_("Open catalog"), url=link(LinkTarget.CATALOG))])
    if not_interested:
        rows.append([Button(text=_("Not interested"), callback_data=not_interested)])
    return rows


@dataclass(frozen=True, slots=True)
class PreviewedMessage:
    """A campaign message as one locale's customers would see it."""

    variant: str
    step: int
    locale: str
    shown_locale: str | None  # the text's locale (another one when this locale has none)
    text: str
    image_url: str | None
    buttons: list[list[Button]]


async def preview(
    *,
    session: AsyncSession,
    shop: Shop,
    campaign: Campaign,
    offered: Sequence[str],
    names: dict[str, str | None],
) -> list[PreviewedMessage]:
    """Render every variant (and the follow-up) in every offered locale, as customers see it.

    `names` gives a sample first name per locale. Links show where they lead, a code shows as
    a sample; "Not interested" shows as a button without a link.
    """
    spec = spec_of(campaign)
    catalog_url = await _catalog(session, shop)
    steps = [(v.name, 1, v.messages, spec.pool) for v in spec.variants]
    if spec.follow_up is not None:
        steps.append(("follow_up", 2, spec.follow_up.messages, spec.follow_up.pool))
    shown = []
    for variant, step, messages, pool in steps:
        for locale in offered:
            chosen = pick_locale(messages, locale, shop.default_locale) or next(iter(messages))
            message = messages[chosen]

            def link(target: LinkTarget, message: Message = message) -> str:
                if target is LinkTarget.CATALOG:
                    return catalog_url or ""
                return message.buttons[BUTTON_TARGETS.index(target)].url

            with locale_scope(chosen):  # the buttons speak the text's language
                text = fill(
                    message.text,
                    first_name=names.get(locale),
                    code=f"{(pool or 'CODE').upper()}-SAMPLE" if message.needs_code else None,
                    shop_name=shop.name,
                )
                rows = keyboard(
                    message,
                    link=link,
                    catalog=spec.catalog_button and bool(catalog_url),
                    not_interested="-" if spec.not_interested_button else None,
                )
            shown.append(
                PreviewedMessage(
                    variant=variant,
                    step=step,
                    locale=locale,
                    shown_locale=chosen,
                    text=text,
                    image_url=message.image_url,
                    buttons=rows,
                )
            )
    return shown


async def resolve_link(
    session: AsyncSession, shop: Shop, row: Outbox, target: LinkTarget
) -> str | None:
    """Return where a campaign message's link leads: its button's URL or the catalog."""
    if target is LinkTarget.CATALOG:
        return await _catalog(session, shop)
    campaign = await _campaign(session, shop, row)
    if campaign is None or target not in BUTTON_TARGETS:
        return None
    _locale, message, _pool = _message(spec_of(campaign), row, shop)
    index = BUTTON_TARGETS.index(target)
    return message.buttons[index].url if index < len(message.buttons) else None


register_kind(CAMPAIGN_KIND, render=render, guard=still_wanted)
register_links(CAMPAIGN_KIND, resolve_link)


# --------------------------------------------------------------------------- the follow-ups


async def plan_all_follow_ups(services: object) -> int:
    """Schedule due follow-ups of every sending campaign; return how many were scheduled."""
    sessions, clock = services.sessions, services.clock  # type: ignore[attr-defined]
    async with sessions() as session:
        campaigns = await campaigns_with_follow_ups(session=session)
    planned = 0
    for campaign in campaigns:
        try:
            while True:
                async with transaction(sessions) as session:
                    fresh = await session.get(Campaign, campaign.id)
                    if fresh is None:
                        break
                    n = await plan_follow_ups(session=session, campaign=fresh, now=clock.now())
                planned += n
                if n == 0:
                    break
        except Exception:  # one campaign's failure must not stop the others
            log.exception("campaign %s: planning follow-ups failed", campaign.id)
    return planned


async def follow_up_planner(app: web.Application) -> AsyncIterator[None]:
    """Worker (an aiohttp cleanup context): plan campaign follow-ups every minute."""
    from bot.web.keys import SERVICES

    async def loop() -> None:
        while True:
            await plan_all_follow_ups(app[SERVICES])
            await asyncio.sleep(FOLLOW_UP_INTERVAL)

    task = asyncio.create_task(loop(), name="campaign-follow-ups")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

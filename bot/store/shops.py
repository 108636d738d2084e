"""Shops: connect, list, read and tune."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Platform, Shop
from bot.shop_settings import apply_setting, check_webhook_secret


class ShopNotFound(LookupError):
    """No shop with that id."""


COLUMN_KEYS = (
    "name",
    "currency",
    "country",
    "locale",
    "timezone",
    "bot_token",
    "bot_username",
    "webhook_secret",
)


async def create_shop(
    *,
    session: AsyncSession,
    name: str,
    platform: Platform | str,
    currency: str = "USD",
    country: str | None = None,
    default_locale: str = "en",
    timezone: str = "UTC",
    bot_token: str | None = None,
    bot_username: str | None = None,
    webhook_secret: str | None = None,
    settings: dict[str, Any] | None = None,
    now: datetime,
) -> Shop:
    """Insert a shop with a fresh webhook secret unless one is given."""
    shop = Shop(
        name=name,
        platform=Platform(platform).value,
        currency=currency.upper(),
        country=country.upper() if country else None,
        default_locale=default_locale,
        timezone=timezone,
        bot_token=bot_token,
        bot_username=bot_username,
        webhook_secret=(
            secrets.token_urlsafe(32)
            if webhook_secret is None
            else check_webhook_secret(webhook_secret)
        ),
        settings=settings or {},
        created_at=now,
    )
    session.add(shop)
    await session.flush()
    return shop


async def get_shop(*, session: AsyncSession, shop_id: int) -> Shop:
    """Return the shop or raise ShopNotFound."""
    shop = await session.get(Shop, shop_id)
    if shop is None:
        raise ShopNotFound(f"no shop with id {shop_id}")
    return shop


async def find_shop(*, session: AsyncSession, shop_id: int) -> Shop | None:
    """Return the shop or None."""
    return await session.get(Shop, shop_id)


async def list_shops(*, session: AsyncSession) -> list[Shop]:
    """Return every shop, oldest first."""
    return list((await session.scalars(select(Shop).order_by(Shop.id))).all())


async def find_shop_by_bot_token(*, session: AsyncSession, token: str) -> Shop | None:
    """Return the shop whose bot has this token."""
    return (await session.scalars(select(Shop).where(Shop.bot_token == token))).first()


async def list_shops_with_bots(*, session: AsyncSession) -> list[Shop]:
    """Return the shops that have a bot token."""
    query = select(Shop).where(Shop.bot_token.is_not(None)).order_by(Shop.id)  # type: ignore[union-attr]
    return list((await session.scalars(query)).all())


async def update_shop(*, session: AsyncSession, shop_id: int, key: str, value: str) -> Shop:
    """Set one column (name, currency, locale, …) or one typed setting, validated."""
    shop = await get_shop(session=session, shop_id=shop_id)
    if key in COLUMN_KEYS:
        _set_column(shop, key, value)
    else:
        shop.settings = apply_setting(shop.settings, key, value)
    session.add(shop)
    await session.flush()
    return shop


def _set_column(shop: Shop, key: str, value: str) -> None:
    from bot.validation import check_country, check_currency, check_locale, check_timezone

    if key == "webhook_secret":  # rotation: the web layer's shop cache expires within seconds
        shop.webhook_secret = check_webhook_secret(value)
        return
    cleaned: str | None = value.strip() or None
    if key == "currency":
        cleaned = check_currency(value)
    elif key == "country":
        cleaned = check_country(value) if cleaned else None
    elif key == "locale":
        shop.default_locale = check_locale(value)
        return
    elif key == "timezone":
        cleaned = check_timezone(value)
    elif key == "name" and not cleaned:
        raise ValueError("name: must not be empty")
    setattr(shop, key, cleaned)


async def touch_delivery(*, session: AsyncSession, shop_id: int, now: datetime) -> None:
    """Remember when the shop's last authentic delivery arrived."""
    shop = await get_shop(session=session, shop_id=shop_id)
    shop.last_delivery_at = now
    session.add(shop)

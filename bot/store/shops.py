"""Shops: connect, list, read and tune."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import (
    Customer,
    CustomerEvent,
    Inbox,
    Order,
    Outbox,
    OutboxState,
    Platform,
    PromoCode,
    Shop,
)
from bot.shop_settings import (
    SETTING_KEYS,
    SettingError,
    apply_setting,
    check_webhook_secret,
    load_shop_settings,
)


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
SETTABLE_KEYS = tuple(sorted((*COLUMN_KEYS, *SETTING_KEYS)))


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


async def shops_named(*, session: AsyncSession, name: str) -> list[int]:
    """Return the ids of the shops with exactly this name."""
    query = select(Shop.id).where(Shop.name == name).order_by(Shop.id)  # type: ignore[arg-type]
    return [shop_id for shop_id in (await session.scalars(query)).all() if shop_id is not None]


async def find_shop_by_bot_token(*, session: AsyncSession, token: str) -> Shop | None:
    """Return the shop whose bot has this token."""
    return (await session.scalars(select(Shop).where(Shop.bot_token == token))).first()


async def list_shops_with_bots(*, session: AsyncSession) -> list[Shop]:
    """Return the shops that have a bot token."""
    query = select(Shop).where(Shop.bot_token.is_not(None)).order_by(Shop.id)  # type: ignore[union-attr]
    return list((await session.scalars(query)).all())


async def update_shop(*, session: AsyncSession, shop_id: int, key: str, value: str) -> Shop:
    """Set one column (name, currency, locale, …) or one typed setting, validated.

    Raises SettingError (a ValueError) naming the key, or ShopNotFound. The bot token's shape
    is checked here; whether Telegram knows it is bot/shops.py's business.
    """
    shop = await get_shop(session=session, shop_id=shop_id)
    if key in COLUMN_KEYS:
        try:
            _set_column(shop, key, value)
        except SettingError:
            raise
        except ValueError as exc:
            message = str(exc)
            named = message if message.startswith(f"{key}:") else f"{key}: {message}"
            raise SettingError(named) from None
    elif key in SETTING_KEYS:
        shop.settings = apply_setting(shop.settings, key, value, known=SETTABLE_KEYS)
    else:
        raise SettingError(f"unknown setting {key!r}; known: {', '.join(SETTABLE_KEYS)}")
    session.add(shop)
    await session.flush()
    return shop


def check_locale_offered(shop: Shop) -> None:
    """Raise SettingError unless the shop's default locale is among its `languages`."""
    languages = load_shop_settings(shop.settings).languages
    if shop.default_locale not in languages:
        wider = ",".join([*languages, shop.default_locale])
        raise SettingError(
            f"locale: {shop.default_locale} is not among the shop's languages "
            f"({', '.join(languages)}); add it (languages={wider}) or pick one of them"
        )


def _set_column(shop: Shop, key: str, value: str) -> None:
    from bot.validation import (
        check_bot_token_shape,
        check_bot_username,
        check_country,
        check_currency,
        check_locale,
        check_name,
        check_timezone,
    )

    if key == "webhook_secret":  # rotation: the web layer's shop cache expires within seconds
        shop.webhook_secret = check_webhook_secret(value)
        return
    if "\x00" in value:
        raise ValueError(f"{key}: must not contain a NUL character")
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
    elif key == "name":
        cleaned = check_name(value)
    elif key == "bot_token":
        cleaned = check_bot_token_shape(value) if cleaned else None
    elif key == "bot_username":
        cleaned = check_bot_username(value) if cleaned else None
    setattr(shop, key, cleaned)


@dataclass(frozen=True, slots=True)
class Kept:
    """What stays of a disconnected shop (its data, for its reports and erasure requests)."""

    customers: int
    orders: int
    events: int
    messages: int
    promo_codes: int
    deliveries: int
    cancelled_messages: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counts as JSON-ready data."""
        return {name: getattr(self, name) for name in self.__slots__}


async def disconnect_shop(*, session: AsyncSession, shop_id: int, now: datetime) -> Kept:
    """Forget the shop's bot, mark it uninstalled and cancel everything not yet sent.

    Nothing else is deleted: customers, orders, events, the message history, promo codes and
    stored deliveries stay (erase them per customer, or with Shopify's shop/redact).
    """
    shop = await get_shop(session=session, shop_id=shop_id)
    shop.bot_token = None
    if shop.uninstalled_at is None:
        shop.uninstalled_at = now
    session.add(shop)
    cancelled = await session.execute(
        update(Outbox)
        .where(
            Outbox.shop_id == shop_id,  # type: ignore[arg-type]
            Outbox.state.in_([OutboxState.SCHEDULED, OutboxState.HELD]),  # type: ignore[attr-defined]
        )
        .values(state=OutboxState.CANCELLED, skip_reason="shop_removed", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    counts = {}
    for name, table in (
        ("customers", Customer),
        ("orders", Order),
        ("events", CustomerEvent),
        ("messages", Outbox),
        ("promo_codes", PromoCode),
        ("deliveries", Inbox),
    ):
        query = select(func.count()).select_from(table).where(table.shop_id == shop_id)  # type: ignore[attr-defined]
        counts[name] = int((await session.scalar(query)) or 0)
    await session.flush()
    return Kept(**counts, cancelled_messages=cancelled.rowcount or 0)  # type: ignore[attr-defined]


async def touch_delivery(*, session: AsyncSession, shop_id: int, now: datetime) -> None:
    """Remember when the shop's last authentic delivery arrived."""
    shop = await get_shop(session=session, shop_id=shop_id)
    shop.last_delivery_at = now
    session.add(shop)

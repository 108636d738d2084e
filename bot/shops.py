"""Connecting, changing and disconnecting shops: the rules every door (CLI, later an API) shares.

The store (bot/store/shops.py) checks each value's shape; this module adds what needs the
outside world or the whole request: a bot token is asked about with getMe (and gives the bot's
username), one bot serves one shop, a shop's defaults follow its country, the default locale is
among the shop's languages, and a disconnected shop's bot webhook is deleted.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.db import transaction
from bot.models import Platform, Shop
from bot.shop_settings import SettingError, check_webhook_secret
from bot.store import shops as store
from bot.validation import (
    check_bot_token_shape,
    check_bot_username,
    check_country,
    check_currency,
    check_locale,
    check_name,
    check_timezone,
    country_defaults,
)

Sessions = async_sessionmaker[AsyncSession]
FALLBACK = {"currency": "USD", "locale": "en", "timezone": "UTC"}
CHECK_TIMEOUT = 15.0  # seconds getMe and deleteWebhook may take


class ShopProblem(ValueError):
    """A request refused; the message names the field and never repeats a secret."""


@dataclass(frozen=True, slots=True)
class BotAccount:
    """Who a bot token belongs to, as getMe says."""

    id: int
    username: str | None
    name: str


def _masked(text: str, token: str, limit: int = 200) -> str:
    """Return an error's text on one line, shortened, without the token."""
    secret = token.partition(":")[2]
    for part in (token, secret):
        if part:
            text = text.replace(part, "…")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def check_bot(token: str, *, api_base: str) -> BotAccount:
    """Ask the Bot API who the token belongs to (getMe); raise ShopProblem saying why not."""
    from aiogram.exceptions import (
        TelegramAPIError,
        TelegramNetworkError,
        TelegramNotFound,
        TelegramUnauthorizedError,
    )

    from bot.telegram import BotPool

    token = check_bot_token_shape(token)
    pool = BotPool(api_base, timeout=CHECK_TIMEOUT)
    try:
        me = await pool.get(token).get_me()
    except (TelegramUnauthorizedError, TelegramNotFound):
        raise ShopProblem(
            "bot_token: Telegram does not know this token (revoked or mistyped): copy it "
            "again from @BotFather (/mybots → API Token)"
        ) from None
    except TelegramNetworkError as exc:
        reason = _masked(str(exc.message or exc), token)
        raise ShopProblem(
            f"bot_token: could not reach the Telegram Bot API at {api_base} to check the "
            f"token ({reason}); check the network or NUDGE_TELEGRAM_API_BASE"
        ) from None
    except TelegramAPIError as exc:
        reason = _masked(str(exc.message), token)
        raise ShopProblem(f"bot_token: Telegram refused getMe: {reason}") from None
    except Exception as exc:  # an answer that is not the Bot API's (a wrong base URL)
        reason = _masked(f"{type(exc).__name__}: {exc}", token, limit=120)
        raise ShopProblem(
            f"bot_token: {api_base} did not answer like the Telegram Bot API ({reason}); "
            "check NUDGE_TELEGRAM_API_BASE"
        ) from None
    finally:
        await pool.close()
    if not me.is_bot:
        raise ShopProblem("bot_token: the token is not a bot's")
    return BotAccount(id=me.id, username=me.username, name=me.first_name)


# --------------------------------------------------------------------------------- connect


@dataclass
class ShopRequest:
    """What a shop owner gives to connect a store; None means "derive or default"."""

    platform: str
    name: str
    bot_token: str | None = None
    bot_username: str | None = None
    currency: str | None = None
    country: str | None = None
    locale: str | None = None
    timezone: str | None = None
    webhook_secret: str | None = None


@dataclass
class Connected:
    """A shop just connected: what was chosen for it and what the owner does next."""

    shop: Shop
    chosen: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    secret_given: bool = True


def _checked(what: str, check: Any, value: str) -> str:
    try:
        return check(value)
    except ValueError as exc:
        message = str(exc)
        named = message if message.startswith(f"{what}:") else f"{what}: {message}"
        raise ShopProblem(named) from None


async def connect_shop(
    sessions: Sessions, request: ShopRequest, *, api_base: str, now: datetime
) -> Connected:
    """Connect a shop: validate, derive defaults from the country, check the bot, insert."""
    try:
        platform = Platform(request.platform).value
    except ValueError:
        known = ", ".join(p.value for p in Platform)
        raise ShopProblem(f"platform: {request.platform!r} is not one of {known}") from None
    name = _checked("name", check_name, request.name)
    values: dict[str, Any] = {}
    if request.currency is not None:
        values["currency"] = _checked("currency", check_currency, request.currency)
    if request.locale is not None:
        values["locale"] = _checked("locale", check_locale, request.locale)
    if request.timezone is not None:
        values["timezone"] = _checked("timezone", check_timezone, request.timezone)
    country = _checked("country", check_country, request.country) if request.country else None
    secret = None
    if request.webhook_secret is not None:
        secret = _checked("webhook_secret", check_webhook_secret, request.webhook_secret)
    username = None
    if request.bot_username:
        username = _checked("bot_username", check_bot_username, request.bot_username)
    chosen: dict[str, str] = {}
    notes: list[str] = []
    if country:
        derived = country_defaults(country)
        for key in ("currency", "locale", "timezone"):
            value = getattr(derived, key)
            if key in values:
                continue
            if value is not None:
                values[key] = chosen[key] = value
            elif key in derived.notes:
                notes.append(f"{derived.notes[key]}: {FALLBACK[key]} used; pass --{key} to choose")
    for key, value in FALLBACK.items():
        values.setdefault(key, value)
    token = request.bot_token
    if token is not None:
        account = await check_bot(
            _checked("bot_token", check_bot_token_shape, token), api_base=api_base
        )
        token = token.strip()
        if username and account.username and username.lower() != account.username.lower():
            notes.append(
                f"Telegram says this bot is @{account.username}, not @{username}: "
                f"@{account.username} is kept"
            )
        username = account.username or username
    async with transaction(sessions) as session:
        if token is not None:
            await _one_shop_per_bot(session, token, shop_id=None)
        same_name = await store.shops_named(session=session, name=name)
        shop = await store.create_shop(
            session=session,
            name=name,
            platform=platform,
            currency=values["currency"],
            country=country,
            default_locale=values["locale"],
            timezone=values["timezone"],
            bot_token=token,
            bot_username=username,
            webhook_secret=secret,
            now=now,
        )
    if same_name:
        shops = ", ".join(str(i) for i in same_name)
        notes.append(f"shop {shops} has the same name (a second run of shop add?)")
    return Connected(shop=shop, chosen=chosen, notes=notes, secret_given=secret is not None)


async def _one_shop_per_bot(session: AsyncSession, token: str, *, shop_id: int | None) -> None:
    other = await store.find_shop_by_bot_token(session=session, token=token)
    if other is not None and other.id != shop_id:
        raise ShopProblem(
            f"bot_token: this bot already serves shop {other.id} ({other.name}); "
            "each shop needs its own bot from @BotFather"
        )


def next_steps(
    shop: Shop, *, public_base: str, secret_given: bool, topics: list[str]
) -> list[str]:
    """Say what the owner must still do before the shop works end to end."""
    steps = []
    if shop.platform == Platform.SHOPIFY and not secret_given:
        steps.append(
            "Shopify signs every delivery with your app's client secret (for a store-admin "
            "webhook: the key under Settings → Notifications → Webhooks); until Nudge has it, "
            f"every delivery is refused (401). Set it: nudge shop set {shop.id} "
            "webhook_secret=KEY"
        )
    problem = public_url_problem(public_base)
    if problem:
        steps.append(problem)
    webhook_url = f"{public_base}/hooks/{shop.platform}/{shop.id}"
    if topics:
        where = {
            Platform.SHOPIFY: "in the Shopify app's webhook subscriptions (format JSON)",
            Platform.WOOCOMMERCE: (
                "in WooCommerce → Settings → Advanced → Webhooks, with the secret "
                "webhook_secret above"
            ),
        }.get(shop.platform, "on your platform, signed with webhook_secret above")  # type: ignore[call-overload]
        steps.append(f"subscribe the topics listed {where}, delivered to {webhook_url}")
    if not shop.bot_token:
        steps.append(
            "create the shop's Telegram bot with @BotFather (/newbot), then: "
            f"nudge shop set {shop.id} bot_token=TOKEN"
        )
    steps.append(f"check that deliveries arrive: nudge shop check {shop.id}")
    return steps


def public_url_problem(public_base: str) -> str | None:
    """Say why shops and Telegram cannot reach NUDGE_PUBLIC_URL, or None when they can."""
    parts = urlsplit(public_base)
    host = (parts.hostname or "").lower()
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost" or host.endswith(".localhost")
    if loopback:
        return (
            f"NUDGE_PUBLIC_URL is {public_base}, a loopback address: the shop platform and "
            "Telegram cannot reach it. Set NUDGE_PUBLIC_URL to this service's public https "
            "address (the webhook URL follows it)"
        )
    if parts.scheme != "https":
        return (
            f"NUDGE_PUBLIC_URL is {public_base}: Shopify and Telegram deliver only to https "
            "addresses"
        )
    return None


# ---------------------------------------------------------------------------------- change


@dataclass
class Changed:
    """A shop after `shop set`, with anything the owner should know."""

    shop: Shop
    notes: list[str] = field(default_factory=list)


async def change_shop(
    sessions: Sessions, *, shop_id: int, changes: list[tuple[str, str]], api_base: str
) -> Changed:
    """Apply key=value changes in one transaction (all or nothing); a new bot token is checked.

    Raises ShopNotFound, SettingError (a bad key or value) or ShopProblem.
    """
    for key, _value in changes:
        if key not in store.SETTABLE_KEYS:
            raise SettingError(f"unknown setting {key!r}; known: {', '.join(store.SETTABLE_KEYS)}")
    changes = list(changes)
    notes: list[str] = []
    token = next((v.strip() for k, v in reversed(changes) if k == "bot_token"), None)
    async with sessions() as session:  # a missing or disconnected shop is said before getMe
        shop = await store.get_shop(session=session, shop_id=shop_id)
    if token and shop.uninstalled_at is not None and not shop.bot_token:
        raise ShopProblem(
            f"bot_token: shop {shop_id} was disconnected at "
            f"{shop.uninstalled_at:%Y-%m-%d %H:%M} UTC and sends nothing; connect the store "
            "again with nudge shop add"
        )
    if token:
        account = await check_bot(
            _checked("bot_token", check_bot_token_shape, token), api_base=api_base
        )
        if account.username:
            given = [v for k, v in changes if k == "bot_username" and v.strip()]
            if given and given[-1].strip().lstrip("@").lower() != account.username.lower():
                notes.append(f"Telegram says this bot is @{account.username}: that is kept")
            changes = [(k, v) for k, v in changes if k != "bot_username"]
            changes.append(("bot_username", account.username))
    group = next(
        (v.strip() for k, v in reversed(changes) if k in ("support_chat", "support_chat_id")), None
    )
    if group and group.lstrip("-").isdigit() and (token or shop.bot_token):
        await _check_support_group(token or shop.bot_token, int(group), api_base=api_base)
    async with transaction(sessions) as session:
        if token:
            await _one_shop_per_bot(session, token, shop_id=shop_id)
        for key, value in changes:
            shop = await store.update_shop(session=session, shop_id=shop_id, key=key, value=value)
        store.check_locale_offered(shop)
    return Changed(shop=shop, notes=notes)


async def _check_support_group(token: str, chat_id: int, *, api_base: str) -> None:
    """Refuse a support group the bot cannot work in, saying exactly what is missing."""
    from aiogram.exceptions import TelegramNetworkError

    from bot.support import support_group_problems
    from bot.telegram import BotPool

    pool = BotPool(api_base, timeout=CHECK_TIMEOUT)
    try:
        problems = await support_group_problems(pool.get(token), chat_id)
    except TelegramNetworkError as exc:
        reason = _masked(str(exc.message or exc), token)
        raise ShopProblem(
            f"support_chat: could not reach the Telegram Bot API to check the group ({reason})"
        ) from None
    finally:
        await pool.close()
    if problems:
        raise ShopProblem(
            f"support_chat: in chat {chat_id} the bot needs: {'; '.join(problems)} "
            "(add the bot to the group as an administrator who may manage topics, then set it "
            "again, or send /connect_support in the group)"
        )


# ------------------------------------------------------------------------------ disconnect


@dataclass
class Disconnected:
    """A shop disconnected: its bot no longer answers, nothing more is sent, data is kept."""

    shop_id: int
    kept: store.Kept
    already: bool
    webhook_deleted: bool
    webhook_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the outcome as JSON-ready data."""
        return {
            "shop_id": self.shop_id,
            "already_disconnected": self.already,
            "webhook_deleted": self.webhook_deleted,
            "webhook_error": self.webhook_error,
            "cancelled_messages": self.kept.cancelled_messages,
            "kept": {k: v for k, v in self.kept.as_dict().items() if k != "cancelled_messages"},
        }


async def disconnect(
    sessions: Sessions, *, shop_id: int, api_base: str, now: datetime
) -> Disconnected:
    """Disconnect a shop: forget its bot, delete the bot's webhook, cancel unsent messages."""
    from aiogram.exceptions import TelegramAPIError

    from bot.telegram import BotPool

    async with transaction(sessions) as session:
        shop = await store.get_shop(session=session, shop_id=shop_id)
        token = shop.bot_token
        already = token is None and shop.uninstalled_at is not None
        kept = await store.disconnect_shop(session=session, shop_id=shop_id, now=now)
    result = Disconnected(shop_id=shop_id, kept=kept, already=already, webhook_deleted=False)
    if token:
        pool = BotPool(api_base, timeout=CHECK_TIMEOUT)
        try:
            await pool.get(token).delete_webhook()
            result.webhook_deleted = True
        except TelegramAPIError as exc:
            result.webhook_error = _masked(str(exc.message or exc), token)
        except Exception as exc:
            result.webhook_error = _masked(f"{type(exc).__name__}: {exc}", token)
        finally:
            await pool.close()
    return result


def shop_record(settings: Settings, item: Shop) -> dict[str, Any]:
    """Describe a shop for output; the bot token is masked."""
    from bot.shop_settings import load_shop_settings

    token = item.bot_token
    return {
        "id": item.id,
        "name": item.name,
        "platform": item.platform,
        "currency": item.currency,
        "country": item.country,
        "locale": item.default_locale,
        "timezone": item.timezone,
        "bot_token": (token.split(":")[0] + ":…") if token else None,
        "bot_username": item.bot_username,
        "webhook_url": f"{settings.public_base}/hooks/{item.platform}/{item.id}",
        "webhook_secret": item.webhook_secret,
        "settings": load_shop_settings(item.settings).model_dump(mode="json"),
        "last_delivery_at": item.last_delivery_at.isoformat() if item.last_delivery_at else None,
        "uninstalled_at": item.uninstalled_at.isoformat() if item.uninstalled_at else None,
        "created_at": item.created_at.isoformat(),
    }

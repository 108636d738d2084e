"""The Telegram side: one aiogram Dispatcher for every shop's bot, fed by webhook or polling.

Either way every update goes through the dispatcher's `UpdateIntake` (bot/updates.py): handled
once per bot and update_id, a poison update kept and acknowledged. Polling reads getUpdates
itself rather than with aiogram's `start_polling`: one update aiogram cannot parse (say, nested
too deep for `json.loads`) fails aiogram's whole batch, for ever, at the same offset. Here each
update of a batch is read on its own, and the offset moves past it once the intake took it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from aiogram.utils.backoff import Backoff, BackoffConfig
from aiohttp import web

from bot.handlers import routers
from bot.handlers.context import ProfileContext
from bot.services import Services
from bot.store.fsm import build_storage
from bot.store.shops import list_shops_with_bots
from bot.updates import Fetched, UnreadableAnswer, UpdateIntake, Verdict, read_updates

log = logging.getLogger(__name__)
POLL_WAIT = 25  # seconds one getUpdates call waits for an update
POLL_BACKOFF = BackoffConfig(min_delay=1.0, max_delay=30.0, factor=2.0, jitter=0.1)
STOP_GRACE = 10.0  # seconds an update being handled may finish in when polling stops
SYNC_BACKOFF_MIN, SYNC_BACKOFF_MAX = 5.0, 300.0  # seconds before a failed bot is tried again


def build_dispatcher(services: Services) -> Dispatcher:
    """Build the dispatcher with the profile middleware, every router and FSM storage."""
    storage = build_storage(
        services.sessions, services.clock, redis_url=services.settings.redis_url
    )
    dispatcher = Dispatcher(storage=storage, services=services)
    dispatcher.update.outer_middleware(ProfileContext())
    dispatcher.include_routers(*routers())
    dispatcher["intake"] = UpdateIntake(services, dispatcher)
    return dispatcher


def update_intake(dispatcher: Dispatcher) -> UpdateIntake:
    """Return the intake every update of this dispatcher goes through."""
    intake = dispatcher["intake"]
    assert isinstance(intake, UpdateIntake)
    return intake


def webhook_secret(secret_key: str, shop_id: int) -> str:
    """Derive the X-Telegram-Bot-Api-Secret-Token for a shop's webhook."""
    digest = hmac.new(secret_key.encode(), f"telegram-webhook:{shop_id}".encode(), hashlib.sha256)
    return digest.hexdigest()


def webhook_url(services: Services, shop_id: int) -> str:
    """Return where Telegram should POST the shop bot's updates."""
    return f"{services.settings.public_base}/tg/{shop_id}"


async def register_webhook(
    services: Services, dispatcher: Dispatcher, shop_id: int, token: str
) -> None:
    """Point the shop's bot at this service's webhook route."""
    await services.bots.get(token).set_webhook(
        url=webhook_url(services, shop_id),
        secret_token=webhook_secret(services.secret_key, shop_id),
        allowed_updates=dispatcher.resolve_used_update_types(),
    )


async def fetch_updates(
    bot: Bot, *, offset: int | None, wait: int, allowed_updates: list[str]
) -> list[Fetched]:
    """Call getUpdates (confirming every update below `offset`) and split the answer.

    `wait` is getUpdates' long-polling timeout in seconds.
    """
    http = await bot.session.create_session()
    params: dict[str, Any] = {"timeout": wait, "allowed_updates": allowed_updates}
    if offset is not None:
        params["offset"] = offset
    url = bot.session.api.api_url(token=bot.token, method="getUpdates")
    limit = aiohttp.ClientTimeout(total=wait + 10)
    async with http.post(url, json=params, timeout=limit) as response:
        return read_updates(await response.read())


class Poller:
    """Long-poll one shop bot and give each update to the intake, in order."""

    def __init__(
        self,
        intake: UpdateIntake,
        bot: Bot,
        shop_id: int,
        *,
        allowed_updates: list[str],
        wait: int = POLL_WAIT,
    ) -> None:
        self.intake = intake
        self.bot = bot
        self.shop_id = shop_id
        self.allowed_updates = allowed_updates
        self.wait = wait
        self._offset: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._handling: asyncio.Future[Verdict] | None = None

    def start(self) -> None:
        """Start polling in the background."""
        self._task = asyncio.create_task(self._run(), name=f"poll-shop-{self.shop_id}")

    async def stop(self) -> None:
        """Stop polling; an update being handled gets STOP_GRACE seconds to finish."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._handling is not None and not self._handling.done():
            await asyncio.wait([self._handling], timeout=STOP_GRACE)

    async def _run(self) -> None:
        backoff = Backoff(POLL_BACKOFF)
        while True:
            try:
                batch = await fetch_updates(
                    self.bot,
                    offset=self._offset,
                    wait=self.wait,
                    allowed_updates=self.allowed_updates,
                )
            except (aiohttp.ClientError, OSError, UnreadableAnswer) as exc:
                log.warning("shop %s: getUpdates failed: %s", self.shop_id, exc)
                await backoff.asleep()
                continue
            if await self._take(batch):
                backoff.reset()
            else:
                await backoff.asleep()

    async def _take(self, batch: list[Fetched]) -> bool:
        """Take a batch in order; False when one must be fetched again (the offset stays)."""
        for item in batch:
            if item.raw is not None:
                taking = self.intake.take_body(self.bot, item.raw, shop_id=self.shop_id)
            else:
                taking = self.intake.take(self.bot, item.data, shop_id=self.shop_id)
            self._handling = asyncio.ensure_future(taking)
            verdict = await asyncio.shield(self._handling)
            if not verdict.acknowledged:
                if item.update_id is not None:
                    self._offset = item.update_id
                return False
            if item.update_id is not None:
                self._offset = item.update_id + 1
        return True


@dataclass(frozen=True, slots=True)
class BotPlan:
    """How one shop's bot should be connected, as the shops table says now."""

    shop_id: int
    token: str
    username: str | None
    languages: tuple[str, ...]
    default_locale: str

    @property
    def menu(self) -> tuple[tuple[str, ...], str]:
        """Return what the command menu depends on."""
        return self.languages, self.default_locale


async def read_plans(services: Services) -> dict[int, BotPlan]:
    """Return every shop bot that should be connected, by shop id (one shop per token)."""
    from bot.shop_settings import load_shop_settings

    async with services.sessions() as session:
        shops = await list_shops_with_bots(session=session)
    plans: dict[int, BotPlan] = {}
    owners: dict[str, int] = {}
    for shop in shops:
        if shop.id is None or not shop.bot_token:
            continue
        if shop.bot_token in owners:
            log.warning(
                "shop %s: its bot already serves shop %s; not connected",
                shop.id,
                owners[shop.bot_token],
            )
            continue
        owners[shop.bot_token] = shop.id
        plans[shop.id] = BotPlan(
            shop.id,
            shop.bot_token,
            shop.bot_username,
            tuple(load_shop_settings(shop.settings).languages),
            shop.default_locale,
        )
    return plans


async def set_commands(services: Services, plan: BotPlan) -> None:
    """Send the command menu in each language offered (default: the shop's locale); drop others."""
    from bot.messages.commands import bot_commands
    from bot.validation import SUPPORTED_LOCALES

    bot = services.bots.get(plan.token)
    for language in SUPPORTED_LOCALES:
        if language in plan.languages:
            await bot.set_my_commands(bot_commands(language), language_code=language)
        else:
            await bot.delete_my_commands(language_code=language)
    await bot.set_my_commands(bot_commands(plan.default_locale))


class BotSync:
    """Keep every shop's bot connected as the shops table says, re-read every few seconds.

    A bot added to a shop is connected (webhook set, or a poller started) and gets its command
    menu; a changed token swaps the bots; a removed bot (or shop) is disconnected: its webhook
    is deleted, or its poller stopped. Changed languages send the menu again. A bot that fails
    is tried again later (backing off), and every success and failure is logged.
    """

    def __init__(self, services: Services, dispatcher: Dispatcher, *, mode: str) -> None:
        self.services = services
        self.dispatcher = dispatcher
        self.mode = mode
        self.connected: dict[int, BotPlan] = {}
        self.menus: dict[int, tuple[tuple[str, ...], str]] = {}
        self.pollers: dict[int, Poller] = {}
        self._failures: dict[tuple[int, str, str], int] = {}
        self._retry_at: dict[tuple[int, str, str], float] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect every shop's bot now; send menus and keep them in step in the background."""
        await self.sync(starting=True)
        self._task = asyncio.create_task(self._run(), name="bot-sync")

    async def stop(self) -> None:
        """Stop syncing and stop every poller (webhooks stay set for the next start)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*(poller.stop() for poller in self.pollers.values()))
        self.pollers.clear()

    async def _run(self) -> None:
        interval = self.services.settings.bot_sync_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sync()
            except Exception as exc:  # the database may be away for a while: try again later
                log.warning("shop bots not synced: %s", exc)

    async def sync(self, *, starting: bool = False) -> None:
        """Compare the shops table with the connected bots and fix every difference."""
        plans = await read_plans(self.services)
        for shop_id, current in list(self.connected.items()):
            plan = plans.get(shop_id)
            if plan is None or plan.token != current.token:
                del self.connected[shop_id]
                self.menus.pop(shop_id, None)
                still_used = any(p.token == current.token for p in plans.values())
                await self._disconnect(current, still_used=still_used, replaced=plan is not None)
        for shop_id, plan in plans.items():
            if shop_id not in self.connected:
                if not self._due(plan, "connect"):
                    continue
                if not await self._attempt(plan, "connect", self._connect(plan, starting)):
                    continue
            self.connected[shop_id] = plan
            if starting:  # menus wait for the first background pass: startup stays quick
                continue
            if self.menus.get(shop_id) != plan.menu and self._due(plan, "commands"):
                if await self._attempt(plan, "commands", set_commands(self.services, plan)):
                    self.menus[shop_id] = plan.menu
                    log.info(
                        "shop %s: command menu of @%s set in %s (default %s)",
                        shop_id,
                        plan.username,
                        ", ".join(plan.languages),
                        plan.default_locale,
                    )
        wanted = {(p.shop_id, p.token) for p in plans.values()}
        for key in [k for k in self._retry_at if k[:2] not in wanted]:
            self._retry_at.pop(key, None)
            self._failures.pop(key, None)

    def failing(self) -> list[dict[str, Any]]:
        """Return the shops whose bot failed its last connect or menu step (for /readyz)."""
        failed = sorted(self._failures.items())
        return [{"shop": key[0], "step": key[2], "attempts": n} for key, n in failed]

    def _due(self, plan: BotPlan, step: str) -> bool:
        return time.monotonic() >= self._retry_at.get((plan.shop_id, plan.token, step), 0.0)

    async def _attempt(self, plan: BotPlan, step: str, work: Any) -> bool:
        key = (plan.shop_id, plan.token, step)
        try:
            await work
        except Exception as exc:  # a bot that fails must not stop the others
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = min(SYNC_BACKOFF_MAX, SYNC_BACKOFF_MIN * 2 ** (failures - 1))
            self._retry_at[key] = time.monotonic() + delay
            what = "could not connect the bot" if step == "connect" else "could not set commands"
            log.warning(
                "shop %s: %s @%s (attempt %s, next in %.0f s): %s",
                plan.shop_id,
                what,
                plan.username,
                failures,
                delay,
                _without_token(str(exc), plan.token),
            )
            return False
        self._failures.pop(key, None)
        self._retry_at.pop(key, None)
        return True

    async def _connect(self, plan: BotPlan, starting: bool) -> None:
        bot = self.services.bots.get(plan.token)
        if self.mode == "polling":
            with contextlib.suppress(TelegramAPIError, TelegramNetworkError):
                await bot.delete_webhook()
            allowed = self.dispatcher.resolve_used_update_types()
            poller = Poller(
                update_intake(self.dispatcher), bot, plan.shop_id, allowed_updates=allowed
            )
            poller.start()
            self.pollers[plan.shop_id] = poller
            log.info("shop %s: bot @%s connected by long polling", plan.shop_id, plan.username)
            return
        url = webhook_url(self.services, plan.shop_id)
        if not starting:  # at start the secret token may have changed: always set it then
            info = await bot.get_webhook_info()
            if info.url == url:
                log.info(
                    "shop %s: bot @%s connected: webhook %s", plan.shop_id, plan.username, url
                )
                return
        await register_webhook(self.services, self.dispatcher, plan.shop_id, plan.token)
        log.info("shop %s: bot @%s connected: webhook set to %s", plan.shop_id, plan.username, url)

    async def _disconnect(self, plan: BotPlan, *, still_used: bool, replaced: bool) -> None:
        why = "its bot was replaced" if replaced else "it has no bot any more"
        poller = self.pollers.pop(plan.shop_id, None)
        if poller is not None:
            await poller.stop()
            log.info("shop %s: %s; stopped polling @%s", plan.shop_id, why, plan.username)
            return
        if still_used:  # the bot moved to another shop: its webhook is that shop's now
            return
        try:
            await self.services.bots.get(plan.token).delete_webhook()
        except (TelegramAPIError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning(
                "shop %s: %s; could not delete the webhook of @%s: %s",
                plan.shop_id,
                why,
                plan.username,
                _without_token(str(exc), plan.token),
            )
            return
        log.info("shop %s: %s; webhook of @%s deleted", plan.shop_id, why, plan.username)


def _without_token(text: str, token: str) -> str:
    secret = token.partition(":")[2]
    return text.replace(token, "…").replace(secret, "…") if secret else text


async def telegram_updates(app: web.Application) -> AsyncIterator[None]:
    """Receive updates per NUDGE_TELEGRAM_MODE (webhooks or polling, kept in step), or not."""
    from bot.web.health import READINESS
    from bot.web.keys import DISPATCHER, SERVICES

    services, dispatcher = app[SERVICES], app[DISPATCHER]
    mode = services.settings.telegram_mode
    sync = BotSync(services, dispatcher, mode=mode) if mode != "off" else None
    if sync is not None:
        if READINESS in app:
            app[READINESS].bot_sync = sync  # /readyz reports its bots
        await sync.start()
    yield
    if sync is not None:
        if READINESS in app and app[READINESS].bot_sync is sync:
            app[READINESS].bot_sync = None
        await sync.stop()
    await dispatcher.storage.close()

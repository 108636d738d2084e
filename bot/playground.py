"""The whole service wired to the Telegram sandbox: for end-to-end tests and `nudge demo`.

async with Playground(database_url) as pg:
    shop = await pg.add_shop(name="Kvitka", locale="uk", currency="UAH")
    olena = pg.customer(shop, user_id=1001, first_name="Olena", language_code="uk")
    await olena.start(token)
    await pg.settle()
    print(olena.last_message().text)
"""

from __future__ import annotations

import socket
from datetime import timedelta
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import build_app
from bot.bots import register_webhook
from bot.clock import Clock, ManualClock
from bot.config import Settings, load_settings
from bot.db import transaction
from bot.models import Shop
from bot.sandbox import Customer, Limits, Sandbox
from bot.services import Services
from bot.store.shops import create_shop
from bot.web.keys import DISPATCHER, SERVICES


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Playground:
    """Sandbox + the real web app on real ports, sharing one database and a manual clock."""

    def __init__(
        self,
        database_url: str,
        *,
        engine: AsyncEngine | None = None,
        clock: Clock | None = None,
        limits: Limits | None = None,
        secret_key: str = "playground-secret-key-0123456789",
        workers: bool = False,
        **settings: Any,
    ) -> None:
        self.clock = clock or ManualClock()
        self.sandbox = Sandbox(limits=limits or Limits())
        self._engine = engine
        self._database_url = database_url
        self._secret_key = secret_key
        self._workers = workers
        self._settings_overrides = settings
        self._runner: web.AppRunner | None = None
        self._next_bot = 0
        self.settings: Settings
        self.app: web.Application

    async def __aenter__(self) -> Playground:
        base = await self.sandbox.start("127.0.0.1", 0)
        port = free_port()
        self.settings = load_settings(
            database_url=self._database_url,
            telegram_api_base=base,
            public_url=f"http://127.0.0.1:{port}",
            secret_key=self._secret_key,
            telegram_mode="webhook",
            **self._settings_overrides,
        )
        self.app = build_app(
            self.settings, engine=self._engine, clock=self.clock, workers=self._workers
        )
        self._runner = web.AppRunner(self.app, handle_signals=False)
        try:
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", port).start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self.sandbox.stop()

    @property
    def services(self) -> Services:
        """Return the running app's services."""
        return self.app[SERVICES]

    async def add_shop(
        self, *, name: str = "Kvitka", platform: str = "shopify", **fields: Any
    ) -> Shop:
        """Create a shop with its own sandbox bot and point the bot's webhook here."""
        self._next_bot += 1
        token = f"{7000000000 + self._next_bot}:AAplayground{self._next_bot:04d}secrettoken"
        slug = "".join(ch for ch in name.lower() if ch.isascii() and ch.isalnum()) or "shop"
        username = fields.pop("bot_username", f"{slug}_bot")
        self.sandbox.add_bot(token, username=username, first_name=name)
        async with transaction(self.services.sessions) as session:
            shop = await create_shop(
                session=session,
                name=name,
                platform=platform,
                bot_token=token,
                bot_username=username,
                now=self.clock.now(),
                **fields,
            )
        assert shop.id is not None
        await register_webhook(self.services, self.app[DISPATCHER], shop.id, token)
        return shop

    def customer(
        self,
        shop: Shop,
        *,
        user_id: int,
        first_name: str = "Customer",
        language_code: str | None = None,
        username: str | None = None,
    ) -> Customer:
        """Open a private chat between a Telegram user and the shop's bot."""
        assert shop.bot_token is not None
        return self.sandbox.customer(
            shop.bot_token,
            user_id,
            first_name,
            username=username,
            language_code=language_code,
        )

    async def settle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until every bot has handled every update and gone quiet."""
        await self.sandbox.wait_idle(timeout=timeout)

    # ----------------------------------------------------------- driving the workers

    def advance(self, delta: timedelta) -> None:
        """Move the service's clock forward (the Playground's clock must be a ManualClock)."""
        assert isinstance(self.clock, ManualClock), "advance() needs a ManualClock"
        self.clock.advance(delta)

    async def deliver_webhook(
        self,
        shop: Shop,
        topic: str,
        payload: dict[str, Any] | bytes,
        *,
        headers: dict[str, str] | None = None,
    ) -> int:
        """POST a shop platform's webhook, signed with the shop's secret, as the platform would."""
        import base64
        import hashlib
        import hmac
        import json
        import uuid

        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        digest = hmac.new(shop.webhook_secret.encode(), body, hashlib.sha256).digest()
        if shop.platform == "shopify":
            sent = {
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
                "X-Shopify-Event-Id": str(uuid.uuid4()),
                "X-Shopify-Shop-Domain": "shop.example.com",
            }
        elif shop.platform == "woocommerce":
            sent = {
                "X-WC-Webhook-Topic": topic,
                "X-WC-Webhook-Signature": base64.b64encode(digest).decode(),
            }
        else:
            sent = {"X-Nudge-Topic": topic, "X-Nudge-Signature": "sha256=" + digest.hex()}
        sent.update({"Content-Type": "application/json", **(headers or {})})
        url = f"{self.settings.public_base}/hooks/{shop.platform}/{shop.id}"
        async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=sent) as r:
            await r.read()
            return r.status

    async def process_inbox(self) -> int:
        """Apply every stored webhook delivery that is due; return how many were handled."""
        from bot.inbox_worker import InboxWorker

        report = await InboxWorker(self.services.sessions, self.clock).run_until_idle()
        return report.handled

    async def dispatch(self) -> dict[str, Any]:
        """Send every outbox row due now through the rate-limited channel; return the counts."""
        from bot.delivery.courier import courier_for

        counts = await courier_for(self.services).drain()
        await self.settle()
        return counts.as_dict()

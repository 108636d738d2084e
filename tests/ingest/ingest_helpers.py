"""Helpers of the ingest tests: payload files, signed deliveries, the Hooks driver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from bot.clock import ManualClock
from bot.db import transaction
from bot.inbox_worker import InboxWorker
from bot.models import Shop
from bot.store.shops import create_shop
from integrations.generic import sign as generic_signature
from integrations.woocommerce import signature as woocommerce_signature

DATA = Path(__file__).resolve().parent.parent / "data"
SECRET_KEY = "ingest-test-secret-key-0123456789"


def fixture_bytes(relative: str) -> bytes:
    """Return a payload file from tests/data as bytes, exactly as stored."""
    return (DATA / relative).read_bytes()


def fixture_json(relative: str) -> Any:
    """Return a payload file from tests/data, parsed."""
    return json.loads(fixture_bytes(relative))


def signed_headers(shop: Shop, topic: str, body: bytes, event_id: str | None = None) -> dict:
    """Return the headers a platform sends with a delivery, signed with the shop's secret."""
    secret = shop.webhook_secret
    if shop.platform == "shopify":
        digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        return {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
            "X-Shopify-Shop-Domain": "kvitka.myshopify.com",
            "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        }
    if shop.platform == "woocommerce":
        return {
            "Content-Type": "application/json",
            "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Resource": topic.split(".")[0],
            "X-WC-Webhook-Event": topic.split(".")[-1],
            "X-WC-Webhook-Signature": woocommerce_signature(body, secret),
            "X-WC-Webhook-ID": "31",
            "X-WC-Webhook-Delivery-ID": event_id or str(uuid.uuid4().int % 10**6),
        }
    return {
        "Content-Type": "application/json",
        "X-Nudge-Topic": topic,
        "X-Nudge-Signature": generic_signature(body, secret),
    }


@dataclass
class Hooks:
    """Sends deliveries to the real app and drives the worker."""

    client: TestClient
    worker: InboxWorker
    database: Any
    clock: ManualClock

    async def shop(self, platform: str, *, country: str | None = "UA", **kwargs: Any) -> Shop:
        """Connect a shop."""
        async with transaction(self.database.sessions) as session:
            return await create_shop(
                session=session,
                name=f"{platform} shop",
                platform=platform,
                country=country,
                now=self.clock.now(),
                **kwargs,
            )

    async def post(
        self,
        shop: Shop,
        topic: str,
        body: bytes | Any,
        *,
        event_id: str | None = None,
        headers: dict | None = None,
        platform: str | None = None,
    ) -> tuple[int, Any]:
        """POST a signed delivery; return (status, JSON answer)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = signed_headers(shop, topic, raw, event_id)
        sent.update(headers or {})
        url = f"/hooks/{platform or shop.platform}/{shop.id}"
        data = io.BytesIO(raw) if len(raw) > 512 * 1024 else raw
        async with self.client.post(url, data=data, headers=sent) as response:
            answer = await response.json(content_type=None)
            return response.status, answer

    async def deliver(self, shop: Shop, topic: str, body: bytes | Any, **kwargs: Any) -> Any:
        """POST a delivery, expect it stored, and apply everything due."""
        status, answer = await self.post(shop, topic, body, **kwargs)
        assert status == 200, answer
        report = await self.worker.run_until_idle()
        assert not report.errors, report.errors
        return answer

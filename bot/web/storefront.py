"""The public storefront endpoint the snippet calls, and the snippet itself.

POST /storefront/{shop_id}/cart takes the visitor's cart (no secret: it runs in the browser),
stores it under the visitor's own random cart token, and answers the deep link of the
"Get cart reminders in Telegram" button. Guard rails, since anyone can call it:
- CORS: only origins listed in the shop's `storefront_origins` setting (none: disabled);
  cart and item URLs must be on those hosts, and strict (http(s), a real host, no
  credentials, backslashes, spaces or control characters: what /r/ redirects to);
- nothing a database cannot store is accepted (NUL, lone surrogates, a total beyond the
  money column): 400 with the reason, never a 500;
- a token bucket per client IP (30 requests a minute by default);
- the token must look random (at least 22 URL-safe characters, varied); storefront carts live
  under "sf:" + token, so a visitor can never address a cart a webhook created, and the answer
  carries nothing but the visitor's own link.
GET /static/nudge.js serves the snippet (integrations/storefront/nudge.js).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

import integrations
from bot.flows import FlowContext, run_flows
from bot.linking import deep_link, make_link_token
from bot.models import Shop
from bot.shop_settings import load_shop_settings
from bot.store import commerce
from bot.store.customers import record_event
from bot.store.shops import find_shop
from bot.web.keys import CLOCK, SESSIONS, SETTINGS
from integrations import ParseContext, ParseError, load_json, parse_storefront_cart
from integrations.base import printable

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

SNIPPET = Path(integrations.__file__).resolve().parent / "storefront" / "nudge.js"
MAX_BODY = 64 * 1024
TOKEN = re.compile(r"[A-Za-z0-9_-]{22,128}")
MIN_DISTINCT = 10


class RateLimiter:
    """A token bucket per key: `rate` requests a minute, bursts up to `burst`."""

    def __init__(self, rate_per_minute: float = 30, burst: int = 30, max_keys: int = 50_000):
        self.rate = rate_per_minute / 60.0
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> float:
        """Take one token; return 0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        if len(self._buckets) >= self.max_keys:
            self._buckets.clear()
        self._buckets[key] = (tokens - 1, now)
        return 0.0


LIMITER = web.AppKey("storefront_limiter", RateLimiter)


def looks_random(token: str) -> bool:
    """Tell whether a cart token is long and varied enough not to be guessed."""
    return bool(TOKEN.fullmatch(token)) and len(set(token)) >= MIN_DISTINCT


def _origins(shop: Shop) -> set[str]:
    return {
        o.strip().rstrip("/").lower() for o in load_shop_settings(shop.settings).storefront_origins
    }


def _cors(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


async def _shop_and_origin(request: web.Request) -> tuple[Shop, str] | web.Response:
    """Check the rate limit, the shop and the Origin; return them or the refusal."""
    wait = request.app[LIMITER].allow(request.remote or "-")
    if wait:
        return web.json_response(
            {"error": "too many requests"},
            status=429,
            headers={"Retry-After": str(max(1, round(wait)))},
        )
    raw_id = request.match_info["shop_id"]
    if not raw_id.isdigit() or len(raw_id) > 18:
        return web.json_response({"error": "unknown shop"}, status=404)
    async with request.app[SESSIONS]() as session:
        shop = await find_shop(session=session, shop_id=int(raw_id))
    if shop is None:
        return web.json_response({"error": "unknown shop"}, status=404)
    origin = (request.headers.get("Origin") or "").rstrip("/").lower()
    if not origin or origin not in _origins(shop):
        return web.json_response({"error": "origin not allowed for this shop"}, status=403)
    return shop, origin


@routes.options("/storefront/{shop_id}/cart")
async def storefront_preflight(request: web.Request) -> web.Response:
    """Answer the browser's CORS preflight for an allowed shop origin."""
    checked = await _shop_and_origin(request)
    if isinstance(checked, web.Response):
        return checked
    return web.Response(status=204, headers=_cors(checked[1]))


@routes.post("/storefront/{shop_id}/cart")
async def storefront_cart(request: web.Request) -> web.Response:
    """Store the visitor's cart under their own token and answer their Telegram deep link."""
    checked = await _shop_and_origin(request)
    if isinstance(checked, web.Response):
        return checked
    shop, origin = checked
    cors = _cors(origin)
    if request.content_length is not None and request.content_length > MAX_BODY:
        return web.json_response({"error": "body over 64 KiB"}, status=413, headers=cors)
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        return web.json_response({"error": "body over 64 KiB"}, status=413, headers=cors)
    now = request.app[CLOCK].now()
    try:
        payload = load_json(body)
        token = payload.get("cart_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not looks_random(token):
            raise ParseError(
                "cart_token: must be a random token of at least 22 URL-safe characters"
            )
        hosts = frozenset(urlsplit(o).hostname or "" for o in _origins(shop)) - {""}
        context = ParseContext(default_region=shop.country, received_at=now, allowed_hosts=hosts)
        event = parse_storefront_cart(payload, context)
    except ParseError as exc:  # InvalidValue too: NUL, lone surrogates, totals, bad URLs
        return web.json_response({"error": printable(str(exc))}, status=400, headers=cors)
    event = dataclasses.replace(event, token=commerce.STOREFRONT_PREFIX + event.token)
    async with request.app[SESSIONS]() as session, session.begin():
        await commerce.hold_write_lock(session=session)
        customer, _ = await commerce.storefront_customer(
            session=session,
            shop_id=shop.id,
            cart_token=event.token,
            now=now,  # type: ignore[arg-type]
        )
        cart, stale = await commerce.apply_cart(
            session=session,
            shop_id=shop.id,  # type: ignore[arg-type]
            token=event.token,
            items=event.items,
            occurred_at=event.occurred_at,
            now=now,
            customer=customer,
            currency=event.currency,
            total=event.total,
            recovery_url=event.recovery_url,
        )
        if not stale:
            await record_event(
                session=session,
                shop_id=shop.id,  # type: ignore[arg-type]
                customer_id=customer.id,
                type="cart_updated",
                source="storefront",
                occurred_at=now,
                payload={"token": event.token, "items": sum(i.quantity for i in event.items)},
            )
            applied = commerce.Applied(customer=customer, cart=cart)
            await run_flows(FlowContext(session, shop, request.app[CLOCK], applied), event)
        customer_id = customer.id
    secret = request.app[SETTINGS].secret_key
    if secret is None:
        raise web.HTTPServiceUnavailable(text="NUDGE_SECRET_KEY is not set")
    token = make_link_token(
        secret_key=secret.get_secret_value(),
        shop_id=shop.id,  # type: ignore[arg-type]
        customer_id=customer_id,  # type: ignore[arg-type]
        now=now,
    )
    return web.json_response({"deep_link": deep_link(shop.bot_username, token)}, headers=cors)


@routes.get("/static/nudge.js")
async def snippet(request: web.Request) -> web.StreamResponse:
    """Serve the storefront snippet."""
    return web.FileResponse(
        SNIPPET,
        headers={
            "Content-Type": "application/javascript; charset=utf-8",
            "Cache-Control": "public, max-age=3600",
            "Access-Control-Allow-Origin": "*",
        },
    )


async def storefront_context(app: web.Application) -> AsyncIterator[None]:
    """Give the storefront endpoint its per-IP rate limiter."""
    app[LIMITER] = RateLimiter()
    yield

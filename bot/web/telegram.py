"""The Telegram webhook: POST /tg/{shop_id}, checked against the shop's derived secret.

Telegram delivers an update again, ahead of the bot's later ones, until it gets a 2xx, whatever
the status (a 4xx too). So after the secret is checked the answer is:

- 200 once the update is handled, was handled before (a redelivery), or can never be handled:
  a body that is not JSON or not a Telegram update, or one a handler failed on. Those are logged
  and kept in `telegram_updates` with their error; the bot's stream goes on.
- 503 only when waiting can help: the database is unavailable, or another worker is handling
  the same update right now. Telegram tries again later.
- 401 for a wrong secret token and 404 for an unknown shop (not Telegram: nothing to keep).

bot/updates.py has the details (claims, stale claims, retries, pruning).
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from bot.bots import update_intake, webhook_secret
from bot.store.shops import find_shop
from bot.updates import MAX_BODY
from bot.web.keys import DISPATCHER, SERVICES

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


async def _read_body(request: web.Request) -> bytes:
    """Read the body, stopping a little past MAX_BODY (a bigger one is rejected, not read)."""
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            break
    return b"".join(chunks)


@routes.post("/tg/{shop_id:\\d+}")
async def telegram_webhook(request: web.Request) -> web.Response:
    """Take one Telegram update: 200 once handled (or kept as bad), 503 to have it sent again."""
    services = request.app[SERVICES]
    shop_id = int(request.match_info["shop_id"])
    given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    if not hmac.compare_digest(given, webhook_secret(services.secret_key, shop_id)):
        return web.json_response({"error": "bad secret token"}, status=401)
    try:
        async with services.sessions() as session:
            shop = await find_shop(session=session, shop_id=shop_id)
    except Exception as exc:
        log.warning("shop %s: Telegram update waits, database unavailable: %s", shop_id, exc)
        return web.json_response({"status": "retry later"}, status=503)
    if shop is None or not shop.bot_token:
        return web.json_response({"error": "unknown shop"}, status=404)
    bot = services.bots.get(shop.bot_token)
    body = await _read_body(request)
    intake = update_intake(request.app[DISPATCHER])
    verdict = await intake.take_body(bot, body, shop_id=shop_id, shop=shop)
    if not verdict.acknowledged:
        return web.json_response({"status": verdict.value}, status=503)
    return web.json_response({"status": verdict.value})

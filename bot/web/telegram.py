"""The Telegram webhook: POST /tg/{shop_id}, checked against the shop's derived secret."""

from __future__ import annotations

import hmac
import logging

from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError

from bot.bots import webhook_secret
from bot.store.shops import find_shop
from bot.web.keys import DISPATCHER, SERVICES

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


@routes.post("/tg/{shop_id:\\d+}")
async def telegram_webhook(request: web.Request) -> web.Response:
    """Feed one Telegram update to the dispatcher; 5xx makes Telegram deliver it again."""
    services, dispatcher = request.app[SERVICES], request.app[DISPATCHER]
    shop_id = int(request.match_info["shop_id"])
    given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    if not hmac.compare_digest(given, webhook_secret(services.secret_key, shop_id)):
        return web.json_response({"error": "bad secret token"}, status=401)
    async with services.sessions() as session:
        shop = await find_shop(session=session, shop_id=shop_id)
    if shop is None or not shop.bot_token:
        return web.json_response({"error": "unknown shop"}, status=404)
    bot = services.bots.get(shop.bot_token)
    try:
        update = Update.model_validate(await request.json(), context={"bot": bot})
    except (ValueError, ValidationError) as exc:
        return web.json_response({"error": f"not a Telegram update: {exc}"}, status=400)
    await dispatcher.feed_update(bot, update, shop=shop)
    return web.Response(status=200)

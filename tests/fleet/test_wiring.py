"""With NUDGE_REDIS_URL set, the service's Courier sends through the Redis limiter."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from fleet_support import OwnRedis
from pydantic import SecretStr

from bot.app import build_app
from bot.config import Settings
from bot.delivery.courier import courier_for
from bot.delivery.redis_limiter import RedisLimiter
from bot.web.keys import SERVICES


async def test_the_service_builds_a_redis_limiter_when_redis_is_configured(
    database, own_redis: OwnRedis
):
    settings = Settings(
        database_url=database.url,
        secret_key=SecretStr("fleet-tests-secret-key-0123456789"),
        redis_url=own_redis.url,
        telegram_mode="off",  # type: ignore[arg-type]
    )
    app = build_app(settings, engine=database.engine, workers=False)
    async with TestClient(TestServer(app)) as client:
        services = client.app[SERVICES]
        assert isinstance(services.limiter, RedisLimiter)


async def test_the_services_courier_sends_through_the_shared_limiter(
    database, own_redis: OwnRedis
):
    settings = Settings(
        database_url=database.url,
        secret_key=SecretStr("fleet-tests-secret-key-0123456789"),
        redis_url=own_redis.url,
        telegram_mode="off",  # type: ignore[arg-type]
    )
    app = build_app(settings, engine=database.engine, workers=False)
    async with TestClient(TestServer(app)) as client:
        services = client.app[SERVICES]
        courier = courier_for(services)
        assert courier.channel.limiter is services.limiter  # type: ignore[attr-defined]

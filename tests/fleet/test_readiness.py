"""/healthz says the process is alive; /readyz says whether this instance can work (database,
Redis when configured, bots) and, when it cannot, which check failed and why."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from fleet_support import OwnRedis
from pydantic import SecretStr

from bot.app import build_app
from bot.config import Settings
from bot.db import create_engine, transaction
from bot.sandbox import run_sandbox
from bot.store.shops import create_shop

SECRET = "fleet-tests-secret-key-0123456789"
TOKEN = "7400000101:AAfleetreadinessbottoken"


def settings_for(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"telegram_mode": "off", **overrides}
    return Settings(database_url=database_url, secret_key=SecretStr(SECRET), **values)  # type: ignore[arg-type]


async def get(client: TestClient, path: str) -> tuple[int, dict]:
    async with client.get(path) as response:
        return response.status, await response.json()


async def test_ready_with_database_and_redis_and_not_when_redis_stops(
    database, own_redis: OwnRedis
):
    settings = settings_for(database.url, redis_url=own_redis.url)
    app = build_app(settings, engine=database.engine, workers=False)
    async with TestClient(TestServer(app)) as client:
        status, body = await get(client, "/readyz")
        assert status == 200, body
        assert body["status"] == "ready"
        assert body["checks"]["database"] == {"ok": True}
        assert body["checks"]["redis"] == {"ok": True, "configured": True}

        own_redis.stop()
        status, body = await get(client, "/readyz")
        assert status == 503
        assert body["failed"] == ["redis"]
        assert body["checks"]["database"]["ok"] is True
        assert body["checks"]["redis"]["error"]
        status, alive = await get(client, "/healthz")
        assert (status, alive["status"]) == (200, "ok"), "alive though Redis is away"

        own_redis.start()
        status, body = await get(client, "/readyz")
        assert status == 200, body


async def test_not_ready_when_the_database_is_away_and_no_secret_in_the_answer(clock):
    url = "postgresql+asyncpg://nudge:pa55word-never-shown@127.0.0.1:1/none"
    engine = create_engine(url, pool_pre_ping=False)
    app = build_app(settings_for(url), engine=engine, clock=clock, workers=False)
    try:
        async with TestClient(TestServer(app)) as client:
            async with client.get("/readyz") as response:
                assert response.status == 503
                raw = await response.text()
                body = await response.json()
            status, alive = await get(client, "/healthz")
    finally:
        await engine.dispose()
    assert body["status"] == "unavailable"
    assert body["failed"] == ["database"]
    assert body["checks"]["database"]["error"]
    assert body["checks"]["redis"] == {"ok": True, "configured": False}
    assert "pa55word" not in raw
    assert status == 200 and alive == {"status": "ok", "database": "unavailable"}


async def test_ready_reports_connected_bots_and_fails_when_none_can_connect(database, clock):
    async with run_sandbox() as sandbox:
        sandbox.add_bot(TOKEN, username="fleet_bot")
        async with transaction(database.sessions) as session:
            await create_shop(
                session=session,
                name="Fleet",
                platform="generic",
                currency="EUR",
                default_locale="en",
                bot_token=TOKEN,
                now=clock.now(),
            )
        settings = settings_for(
            database.url,
            telegram_mode="webhook",
            telegram_api_base=sandbox.base_url,
            public_url="https://nudge.example.com",
        )
        app = build_app(settings, engine=database.engine, workers=False)
        async with TestClient(TestServer(app)) as client:
            status, body = await get(client, "/readyz")
            assert status == 200, body
            assert body["checks"]["bots"] == {"ok": True, "mode": "webhook", "connected": 1}

    async with transaction(database.sessions) as session:  # a bot Telegram refuses
        await create_shop(
            session=session,
            name="Gone",
            platform="generic",
            currency="EUR",
            default_locale="en",
            bot_token="7400000102:AAnobodyknowsthisbottoken",
            now=clock.now(),
        )
    async with run_sandbox() as sandbox:  # knows neither bot now
        settings = settings_for(
            database.url,
            telegram_mode="webhook",
            telegram_api_base=sandbox.base_url,
            public_url="https://nudge.example.com",
        )
        app = build_app(settings, engine=database.engine, workers=False)
        async with TestClient(TestServer(app)) as client:
            status, body = await get(client, "/readyz")
            raw = str(body)
    assert status == 503
    assert body["failed"] == ["bots"]
    assert body["checks"]["bots"]["connected"] == 0
    assert "connect failed" in body["checks"]["bots"]["error"]
    assert "AAnobody" not in raw and "AAfleet" not in raw

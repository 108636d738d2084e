"""Fixtures for the ingest tests: the real app on the test database and a worker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from ingest_helpers import SECRET_KEY, Hooks
from pydantic import SecretStr

from bot.app import build_app
from bot.config import Settings
from bot.inbox_worker import InboxWorker


@pytest.fixture
def settings(database) -> Settings:
    """Service settings pointing at the test database."""
    return Settings(
        database_url=database.url,
        secret_key=SecretStr(SECRET_KEY),
        telegram_mode="off",
        public_url="https://nudge.example.com",
    )


@pytest.fixture
async def client(database, settings, clock) -> AsyncIterator[TestClient]:
    """An HTTP client of the real app (background workers off)."""
    app = build_app(settings, engine=database.engine, clock=clock, workers=False)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.fixture
def worker(database, clock) -> InboxWorker:
    """The inbox worker, driven explicitly by the tests."""
    return InboxWorker(database.sessions, clock, max_attempts=3)


@pytest.fixture
def hooks(client, worker, database, clock) -> Hooks:
    """Deliveries through HTTP plus the worker."""
    return Hooks(client, worker, database, clock)

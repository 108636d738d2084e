"""Fixtures for the fleet tests: the machine's Redis, a Redis of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet_support import REDIS_URL, OwnRedis, redis_or_skip


@pytest.fixture
async def machine_redis() -> str:
    """The machine's Redis URL (the test is skipped when it does not answer)."""
    await redis_or_skip(REDIS_URL)
    return REDIS_URL


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A redis-server started for this test on a free port; killed after."""
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker of the tests that run several `nudge` processes."""
    config.addinivalue_line(
        "markers",
        "slow: runs several nudge processes (seconds each; NUDGE_FLEET_FULL=1 for the full size)",
    )

"""A running service for the console tests, and Debian's Chromium for the browser tests."""

from __future__ import annotations

import os
import shutil

import pytest
from console_helpers import make_console

from bot.playground import Playground

CHROMIUM = os.environ.get("NUDGE_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
HAS_CHROMIUM = os.path.exists(CHROMIUM)


@pytest.fixture
async def console(database, clock):
    async with Playground(database.url, engine=database.engine, clock=clock) as pg:
        yield await make_console(pg)


@pytest.fixture
async def browser():
    """Chromium driven by Playwright; skipped, saying why, when either is missing."""
    driver_module = pytest.importorskip(
        "playwright.async_api", reason="playwright is not installed"
    )
    if not HAS_CHROMIUM:
        pytest.skip(
            f"no Chromium at {CHROMIUM} (apt-get install chromium, or NUDGE_TEST_CHROMIUM)"
        )
    async with driver_module.async_playwright() as driver:
        chromium = await driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            await chromium.close()

"""The console in a real Chromium: log in, read a shop, copy its webhook, find a customer.

Needs Debian's chromium (/usr/bin/chromium, or NUDGE_TEST_CHROMIUM) and the playwright package
(dev extra); without them the test is skipped and says why.
"""

from __future__ import annotations

import pytest
from console_helpers import make_console

from bot.playground import Playground

TEXTS = {
    "en": ("Log in to Nudge", "Receiving deliveries", "Copy", "Find a customer"),
    "uk": ("Вхід у Nudge", "Доставки надходять", "Копіювати", "Знайти покупця"),
}


@pytest.fixture
async def sqlite_console(tmp_path, clock, sqlite_template):
    """One backend is enough here: the pages run the same queries the HTTP tests check."""
    import shutil as files

    from bot.db import create_engine

    path = tmp_path / "nudge.db"
    files.copyfile(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url)
    try:
        async with Playground(url, engine=engine, clock=clock) as pg:
            yield await make_console(pg)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("locale", ["en", "uk"])
async def test_an_owner_logs_in_and_reads_their_shop(browser, sqlite_console, locale):
    console = sqlite_console
    login, healthy, copy, find = TEXTS[locale]
    assert await console.pg.deliver_webhook(console.kvitka, "customers/create", {"id": 5}) in (
        200,
        400,
    )
    context = await browser.new_context(
        locale=locale, permissions=["clipboard-read", "clipboard-write"]
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(console.base + "/console/shops")
    assert page.url.endswith("/console/login")
    assert await page.inner_text("h1") == login

    await page.fill("#token", console.tokens["kvitka"])
    await page.click("button[type=submit]")
    await page.wait_for_url("**/console/shops")
    assert healthy in await page.inner_text("table")

    await page.click(f"a[href='/console/shops/{console.kvitka.id}']")
    button = page.locator("button[data-copy=webhook-url]")
    assert await button.is_visible() and await button.inner_text() == copy  # the JS ran
    await button.click()
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied.endswith(f"/hooks/shopify/{console.kvitka.id}")

    await page.click(f"a[href='/console/shops/{console.kvitka.id}/customers']")
    assert await page.inner_text("label[for=q]") == find
    await page.fill("#q", "коваль")
    await page.press("#q", "Enter")
    await page.click("text=Олена Коваль")
    assert "olena@example.com" in await page.inner_text("main")
    assert errors == []
    await context.close()

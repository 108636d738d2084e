"""A shop owner's whole story in a real Chromium, as the issue tells it.

Log in (a wrong token first); connect a Shopify store and see its webhook URL and the bot's
name; create a campaign in two languages and see both previews; send it through the Telegram
sandbox and watch the progress bar reach 100%; read the report and find the numbers
`nudge campaign report ID --json` prints; erase a customer; and see a form without its CSRF value
refused. Each page is saved as a screenshot under build/screenshots/<locale>/ (or
$NUDGE_SCREENSHOTS).

Needs Debian's chromium and the playwright package; without them the test is skipped and says
why.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from bot.db import transaction
from bot.models import Consent, Shop
from bot.playground import Playground
from bot.store.customers import add_customer
from bot.store.tokens import create_token

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("NUDGE_SCREENSHOTS") or ROOT / "build" / "screenshots")
BOT_TOKEN = "7999000100:AAstorytestbottoken00000000000000"

# What the owner reads on the way, per console language.
TEXTS = {
    "en": {"wrong": "unknown or was revoked", "erased": "was erased", "expired": "has expired"},
    "uk": {"wrong": "Такого токена немає", "erased": "стерто", "expired": "застаріла"},
}
CUSTOMERS = [("Олена", "uk", 9101), ("Тарас", "uk", 9102), ("Agnieszka", "pl", 9103)]


@pytest.fixture
async def service(tmp_path, clock, sqlite_template):
    """The real service on a SQLite file stamped at head, so the CLI can read it too."""
    from alembic import command

    from bot.db import create_engine
    from bot.migrate import alembic_config

    path = tmp_path / "nudge.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url)

    def stamp(connection: object) -> None:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.stamp(config, "head", purge=True)

    async with engine.begin() as conn:
        await conn.run_sync(stamp)
    try:
        async with Playground(url, engine=engine, clock=clock) as pg:
            async with transaction(pg.services.sessions) as session:
                _record, owner = await create_token(session=session, now=clock.now())
            yield pg, owner, url
    finally:
        await engine.dispose()


async def cli_report(url: str, campaign_id: int) -> dict:
    """Run `nudge campaign report ID --json` as the owner would, in its own process."""
    env = {**os.environ, "NUDGE_DATABASE_URL": url, "NUDGE_SECRET_KEY": "x" * 32}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "campaign",
        "report",
        str(campaign_id),
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return json.loads(out)


@pytest.mark.parametrize("locale", ["en", "uk"])
async def test_an_owner_connects_a_store_runs_a_campaign_and_erases_a_customer(
    browser, service, locale
):
    pg, owner, url = service
    texts = TEXTS[locale]
    shots = SHOTS / locale
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    context = await browser.new_context(locale=locale, viewport={"width": 1100, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    taken = 0

    async def shot(name: str) -> None:
        nonlocal taken
        taken += 1
        await page.screenshot(path=str(shots / f"{taken:02d}-{name}.png"), full_page=True)

    # A wrong token is refused; the owner's token opens the console.
    await page.goto(pg.settings.public_base + "/console/shops")
    await page.fill("#token", "nudge_not_a_real_token")
    await page.click("button[type=submit]")
    assert texts["wrong"] in await page.inner_text("main")
    await shot("login-refused")
    await page.fill("#token", owner)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/console/shops")
    await shot("shops-empty")

    # Connect a Shopify store: the webhook URL, its topics and the bot's name appear.
    pg.sandbox.add_bot(BOT_TOKEN, username="lato_shop_bot", first_name="Lato")
    await page.click("a[href='/console/shops/new']")
    await shot("connect-a-store")
    await page.check("input[name=platform][value=shopify]")
    await page.fill("#shop-name", "Lato")
    await page.fill("#country", "UA")
    await page.fill("#new-bot-token", BOT_TOKEN)
    await page.click("#connect button[type=submit]")
    await page.wait_for_url("**/console/shops/*")
    shop_id = int(page.url.rsplit("/", 1)[1].split("?")[0])
    webhook = await page.input_value("#webhook-url")
    assert webhook == f"{pg.settings.public_base}/hooks/shopify/{shop_id}"
    main = await page.inner_text("main")
    assert "@lato_shop_bot" in main and "orders/create" in main
    await shot("store-connected")

    # Customers who linked Telegram (as the store's webhooks and /start would have made them).
    async with transaction(pg.services.sessions) as session:
        shop = await session.get(Shop, shop_id)
        shop.settings = {**shop.settings, "languages": ["uk", "pl"]}
        for name, language, chat in CUSTOMERS:
            await add_customer(
                session=session,
                shop_id=shop_id,
                now=pg.clock.now(),
                first_name=name,
                locale=language,
                telegram_chat_id=chat,
                consent=Consent.OPTED_IN,
            )
    for name, language, chat in CUSTOMERS:
        pg.sandbox.customer(BOT_TOKEN, chat, name, language_code=language)

    # A campaign in two languages: both previews, then saved as a draft.
    await page.goto(f"{pg.settings.public_base}/console/shops/{shop_id}/campaigns/new")
    await page.fill("#name", "Весна")
    await page.fill("#topic", "shoes")
    await page.fill("#text_uk", "{first_name}, весняний розпродаж!")
    await page.fill("#text_pl", "{first_name}, wiosenna wyprzedaż!")
    await page.click("button[value=count]")
    assert await page.get_attribute("#audience", "aria-live") == "polite"
    assert "3" in await page.inner_text("#audience")
    await page.click("button[value=preview]")
    phones = page.locator("#preview figure.phone")
    assert await phones.count() == 2
    assert "Олена, весняний розпродаж!" in await page.inner_text("#preview [data-locale=uk]")
    assert "wiosenna wyprzedaż!" in await page.inner_text("#preview [data-locale=pl]")
    await shot("campaign-editor-preview")
    await page.click("button[value=create]")
    await page.wait_for_url("**/campaigns/*")
    campaign_id = int(page.url.rsplit("/", 1)[1])
    await shot("campaign-draft")

    # Send: the sandbox receives the messages while the progress bar follows to 100%.
    await page.click("button[data-action=send]")
    await page.wait_for_selector("#progress")
    sending = asyncio.create_task(pg.dispatch())
    await page.wait_for_selector("#progress[data-percent='100']", timeout=20_000)
    await sending
    await shot("campaign-sent")
    received = {
        chat: [m.text for m in pg.sandbox.customer(BOT_TOKEN, chat).bot_messages()]
        for _n, _l, chat in CUSTOMERS
    }
    assert received[9101] == ["Олена, весняний розпродаж!"]
    assert received[9103] == ["Agnieszka, wiosenna wyprzedaż!"]

    # The report shows what the CLI reports.
    await page.reload()
    report = await cli_report(url, campaign_id)
    for key in ("sent", "blocked", "pending", "clicked", "not_interested", "orders"):
        cell = f"[data-row=all] [data-key={key}]"
        assert await page.inner_text(cell) == str(report[key]), key
    assert report["sent"] == 3
    await shot("campaign-report")
    await page.goto(f"{pg.settings.public_base}/console/shops/{shop_id}/reports")
    await shot("reports")
    await page.goto(f"{pg.settings.public_base}/console/shops/{shop_id}/campaigns")
    await shot("campaigns")

    # Erase a customer, after typing ERASE.
    await page.goto(f"{pg.settings.public_base}/console/shops/{shop_id}/customers")
    await shot("customers")
    await page.click("text=Тарас")
    await shot("customer")
    await page.fill("#confirm", "ERASE")
    await page.click("button.danger")
    assert texts["erased"] in await page.inner_text("main")
    assert "Тарас" not in await page.inner_text("main")
    await shot("customer-erased")

    # A form posted without its CSRF value is refused, in the reader's language.
    target = f"{pg.settings.public_base}/console/shops/{shop_id}/campaigns/{campaign_id}/cancel"
    async with page.expect_navigation() as navigation:
        await page.evaluate(
            """(action) => {
                const form = document.createElement("form");
                Object.assign(form, {method: "post", action});
                document.body.appendChild(form);
                form.submit();
            }""",
            target,
        )
    answer = await navigation.value
    assert answer.status == 403 and texts["expired"] in await page.inner_text("main")
    await shot("csrf-refused")
    assert errors == []
    assert len(list(shots.glob("*.png"))) == taken
    await context.close()

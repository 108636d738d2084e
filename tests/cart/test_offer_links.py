"""Offer links and promises: "Open catalog" never disappears, a dead link shows a page, and
"Not interested" says what stops and keeps to it."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from conftest import make_story
from sqlalchemy import func, select

from bot.db import transaction
from bot.models import Cart, Click, Customer, Outbox, Shop
from bot.offers import LinkTarget, storefront_from_headers, tracked_url
from bot.store.codes import import_codes
from bot.store.shops import update_shop

WOO_ORDER = Path(__file__).resolve().parent.parent / "data" / "woocommerce" / "order.created.json"
LOCALES = ["en", "ru", "uk", "pl"]
CATALOG = {
    "en": "Open catalog",
    "ru": "Открыть каталог",
    "uk": "Відкрити каталог",
    "pl": "Otwórz katalog",
}
NOT_INTERESTED = {
    "en": "Not interested",
    "ru": "Не интересует",
    "uk": "Не цікавить",
    "pl": "Nie interesuje mnie",
}
BUTTON_ORDER = {
    "en": "Place order",
    "ru": "Оформить заказ",
    "uk": "Оформити замовлення",
    "pl": "Złóż zamówienie",
}


CART_TOAST = {
    "en": "Got it: no more cart reminders. You can turn them back on in /settings.",
    "ru": "Поняли: больше не будем напоминать о корзине. Включить напоминания снова можно в "
    "/settings.",
    "uk": "Зрозуміли: більше не нагадуватимемо про кошик. Увімкнути нагадування знову можна в "
    "/settings.",
    "pl": "Rozumiemy: nie będziemy już przypominać o koszyku. Przypomnienia możesz znowu włączyć "
    "w /settings.",
}
CART_ACK = {
    "en": ("✓ No more cart reminders", "Undo"),
    "ru": ("✓ Напоминания о корзине отключены", "Вернуть как было"),
    "uk": ("✓ Нагадування про кошик вимкнено", "Повернути як було"),
    "pl": ("✓ Przypomnienia o koszyku wyłączone", "Cofnij"),
}
CATEGORY_ACK = {
    "en": "✓ No reminders about “Dresses”",
    "ru": "✓ Категория «Dresses» отключена",
    "uk": "✓ Категорію «Dresses» вимкнено",
    "pl": "✓ Kategoria „Dresses” wyłączona",
}
DEAD = {
    "en": ("This link no longer works", "Go to "),
    "ru": ("Эта ссылка больше не работает", "Перейти в магазин "),
    "uk": ("Це посилання більше не працює", "Перейти до магазину "),
    "pl": ("Ten link już nie działa", "Przejdź do sklepu "),
}


async def _get(url: str, *, method: str = "GET", **headers: str):
    async with aiohttp.ClientSession() as http:
        async with http.request(method, url, allow_redirects=False, headers=headers) as response:
            return response.status, response.headers, await response.text()


async def _set(pg, shop, key: str, value: str) -> None:
    async with transaction(pg.services.sessions) as session:
        await update_shop(session=session, shop_id=shop.id, key=key, value=value)


async def _clicks(pg) -> int:
    async with pg.services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Click)) or 0)


async def _reminder(story):
    pg = story.pg
    pg.advance(timedelta(hours=1))
    assert (await pg.dispatch())["sent"] == 1
    return story.chat.last_message()


# ------------------------------------------------------------------ never drop a button


@pytest.mark.parametrize("locale", LOCALES)
async def test_open_catalog_falls_back_to_the_shops_storefront(playground, locale):
    story = await make_story(playground, locale)
    pg = story.pg
    await story.leave_cart()  # a Shopify checkout: no catalog_url, no product URLs
    reminder = await _reminder(story)
    assert reminder.buttons[0][0][0] == CATALOG[locale]

    tap = await story.chat.tap(CATALOG[locale])
    status, headers, _ = await _get(tap.url)
    assert (status, headers["Location"]) == (302, "https://shop.example.com")  # its domain

    await _set(pg, story.shop, "shop_url", "https://kvitka.example/")  # the owner's choice wins
    assert (await _get(tap.url))[1]["Location"] == "https://kvitka.example/"
    await _set(pg, story.shop, "catalog_url", "https://kvitka.example/catalog")
    assert (await _get(tap.url))[1]["Location"] == "https://kvitka.example/catalog"


async def test_the_follow_up_leads_to_the_storefront_without_a_catalog_url(playground):
    story = await make_story(playground, "uk")
    pg = story.pg
    async with transaction(pg.services.sessions) as session:
        await import_codes(
            session=session,
            shop_id=story.shop.id,
            pool="followup",
            codes=["KV-1"],
            now=pg.clock.now(),
        )
    await story.leave_cart()
    await _reminder(story)
    await story.chat.tap(NOT_INTERESTED["uk"])
    await pg.settle()
    pg.advance(timedelta(days=3))
    assert (await pg.dispatch())["sent"] == 1
    followup = story.chat.last_message()
    assert "KV-1" in followup.text and followup.buttons[0][0][0] == CATALOG["uk"]
    tap = await story.chat.tap(CATALOG["uk"], message_id=followup.message_id)
    assert (await _get(tap.url))[1]["Location"] == "https://shop.example.com"


async def test_a_woocommerce_cart_leads_to_the_site_its_webhooks_come_from(playground):
    story = await make_story(playground, "pl", platform="woocommerce")
    pg = story.pg
    order = copy.deepcopy(json.loads(WOO_ORDER.read_text()))
    order["status"] = "pending"
    order["billing"]["email"] = story.profile.email
    order["date_modified_gmt"] = pg.clock.now().strftime("%Y-%m-%dT%H:%M:%S")
    order["payment_url"] = "https://sklep.example/zamowienie/727/?pay_for_order=true"
    status = await pg.deliver_webhook(
        story.shop,
        "order.created",
        order,
        headers={"X-WC-Webhook-Source": "https://sklep.example/"},
    )
    assert status == 200
    await pg.process_inbox()
    reminder = await _reminder(story)
    assert [b[0] for b in reminder.buttons[0]] == [CATALOG["pl"], "Złóż zamówienie"]
    tap = await story.chat.tap(CATALOG["pl"])
    assert (await _get(tap.url))[1]["Location"] == "https://sklep.example/"


@pytest.mark.parametrize(
    ("platform", "headers", "expected"),
    [
        (
            "shopify",
            {"x-shopify-shop-domain": "kvitka.myshopify.com"},
            "https://kvitka.myshopify.com",
        ),
        ("shopify", {"x-shopify-shop-domain": "evil.example/@kvitka.myshopify.com"}, None),
        ("shopify", {"x-shopify-shop-domain": "evil.example\\@shop.example.com"}, None),
        ("shopify", {"x-shopify-shop-domain": "localhost"}, None),
        ("shopify", {}, None),
        (
            "woocommerce",
            {"x-wc-webhook-source": "https://sklep.example/"},
            "https://sklep.example/",
        ),
        ("woocommerce", {"x-wc-webhook-source": "javascript:alert(1)"}, None),
        ("woocommerce", {"x-wc-webhook-source": "https://user:pw@sklep.example/"}, None),
        ("generic", {"x-wc-webhook-source": "https://sklep.example/"}, None),
    ],
)
def test_the_storefront_is_taken_only_from_a_well_formed_header(platform, headers, expected):
    assert storefront_from_headers(platform, headers) == expected


# ------------------------------------------------------------------- say what is true


@pytest.mark.parametrize("locale", LOCALES)
async def test_not_interested_names_the_category_that_stops(playground, locale):
    story = await make_story(playground, locale, settings={"followup_enabled": False})
    await story.leave_cart(items=[("Linen dress", "1450.00", 1, "Dresses")])
    await _reminder(story)
    await story.chat.tap(NOT_INTERESTED[locale])
    await story.pg.settle()
    assert story.chat.last_message().buttons[0][0][0] == CATEGORY_ACK[locale]


@pytest.mark.parametrize("locale", LOCALES)
async def test_not_interested_in_a_cart_without_a_category_stops_every_cart_reminder(
    playground, locale
):
    story = await make_story(playground, locale, settings={"followup_enabled": False})
    pg = story.pg
    await story.leave_cart(items=[("Gift card", "500.00", 1, "")])
    first = await _reminder(story)
    tap = await story.chat.tap(NOT_INTERESTED[locale])
    await pg.settle()
    assert tap.answer_text == CART_TOAST[locale]
    done, undo = CART_ACK[locale]
    assert [row[0][0] for row in story.chat.last_message().buttons] == [done, undo]

    pg.advance(timedelta(days=1))  # the promise holds for a cart of any category
    await story.leave_cart(token="ck-2", items=[("Leather bag", "2100.00", 1, "Bags")])
    pg.advance(timedelta(hours=2))
    assert (await pg.dispatch())["sent"] == 0
    async with pg.services.sessions() as session:
        later = (await session.scalars(select(Outbox).order_by(Outbox.id.desc()))).first()
    assert (later.kind, later.state, later.skip_reason) == ("cart.reminder", "skipped", "excluded")

    await story.chat.tap(undo, message_id=first.message_id)  # taken back: reminders again
    await pg.settle()
    await story.leave_cart(token="ck-3", items=[("Straw hat", "620.00", 1, "Hats")])
    pg.advance(timedelta(hours=2))
    assert (await pg.dispatch())["sent"] == 1


# ------------------------------------------------------------------------- dead links


@pytest.mark.parametrize(
    ("accept", "title"),
    [
        ("uk-UA,uk;q=0.9,en;q=0.8", DEAD["uk"][0]),
        ("de-DE, pl;q=0.5, ru;q=0.4", DEAD["pl"][0]),
        ("ru;q=0, en", DEAD["en"][0]),
        ("", DEAD["en"][0]),
    ],
)
async def test_a_forged_link_shows_a_small_page_in_the_browsers_language(
    playground, accept, title
):
    pg = playground
    status, headers, body = await _get(
        f"{pg.settings.public_base}/r/AAAAAAAAAAAAAAAAforged", **{"Accept-Language": accept}
    )
    assert status == 404 and headers["Content-Type"].startswith("text/html")
    assert f"<title>{title}</title>" in body and "Not Found" not in body
    assert 'class="go"' not in body  # no shop is known: no link to one


@pytest.mark.parametrize("locale", LOCALES)
async def test_a_link_whose_target_is_gone_shows_the_customers_language_and_the_shop(
    playground, locale
):
    story = await make_story(playground, locale)
    pg = story.pg
    async with transaction(pg.services.sessions) as session:
        shop = await session.get(Shop, story.shop.id)
        shop.name = 'Kvitka <b>& "Co"'
    await story.leave_cart()
    await _reminder(story)
    tap = await story.chat.tap(BUTTON_ORDER[locale])
    async with transaction(pg.services.sessions) as session:  # the checkout link is gone
        cart = (await session.scalars(select(Cart))).one()
        cart.recovery_url = None

    status, headers, body = await _get(tap.url, **{"Accept-Language": "de"})
    title, go = DEAD[locale]
    assert status == 404 and headers["Content-Language"] == locale
    assert f"<h1>{title}</h1>" in body
    assert 'href="https://shop.example.com"' in body
    assert f"{go}Kvitka &lt;b&gt;&amp; &quot;Co&quot;</a>" in body
    assert "<b>&" not in body
    assert await _clicks(pg) == 0


async def test_a_dead_link_of_a_customer_without_a_language_follows_the_browser(playground):
    story = await make_story(playground, "uk")
    pg = story.pg
    await story.leave_cart()
    await _reminder(story)
    async with transaction(pg.services.sessions) as session:
        row = (await session.scalars(select(Outbox))).one()
        (await session.get(Customer, row.customer_id)).locale = None
    link = tracked_url(
        public_url=pg.settings.public_base,
        secret_key=pg.services.secret_key,
        outbox_id=row.id + 1000,  # signed, but names no message: nothing is known
        target=LinkTarget.ORDER,
    )
    assert DEAD["pl"][0] in (await _get(link, **{"Accept-Language": "pl"}))[2]
    async with transaction(pg.services.sessions) as session:
        (await session.scalars(select(Cart))).one().recovery_url = None
    gone = tracked_url(
        public_url=pg.settings.public_base,
        secret_key=pg.services.secret_key,
        outbox_id=row.id,
        target=LinkTarget.ORDER,
    )
    assert DEAD["ru"][0] in (await _get(gone, **{"Accept-Language": "ru"}))[2]
    assert DEAD["uk"][0] in (await _get(gone))[2]  # no header: the shop's language


async def test_head_does_not_count_as_a_click(playground):
    story = await make_story(playground, "en")
    pg = story.pg
    await story.leave_cart()
    await _reminder(story)
    tap = await story.chat.tap("Place order")
    status, headers, _ = await _get(tap.url, method="HEAD")
    assert (status, headers["Location"]) == (302, "https://kvitka.example/checkouts/ck-1/recover")
    assert await _clicks(pg) == 0
    assert (await _get(tap.url))[0] == 302
    assert await _clicks(pg) == 1

"""The console over HTTP: login, cookie session, CSRF, tenancy, logout, pages."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
from console_helpers import hidden, logged_in
from sqlalchemy import select

from bot.db import transaction
from bot.models import ApiToken
from bot.store.tokens import digest, revoke_token


async def test_pages_need_a_session(console):
    async with aiohttp.ClientSession() as http:
        for path in ("/console/", "/console/shops", f"/console/shops/{console.kvitka.id}"):
            async with http.get(console.base + path, allow_redirects=False) as r:
                assert (r.status, r.headers["Location"]) == (303, "/console/login"), path


async def test_login_sets_a_strict_http_only_cookie_and_checks_csrf(console):
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(console.base + "/console/login") as r:
            page = await r.text()
            assert r.status == 200 and 'type="password"' in page
            assert r.headers["X-Frame-Options"] == "DENY"
            csrf = hidden(page)
        url = console.base + "/console/login"
        async with http.post(url, data={"token": console.tokens["kvitka"]}) as r:
            assert r.status == 403  # no CSRF value
        async with http.post(url, data={"token": "nudge_wrong", "csrf": csrf}) as r:
            assert r.status == 401 and "unknown or was revoked" in await r.text()
            csrf = hidden(await r.text())
        async with http.post(
            url, data={"token": console.tokens["kvitka"], "csrf": csrf}, allow_redirects=False
        ) as r:
            assert r.status == 303 and r.headers["Location"] == "/console/shops"
            cookie = r.headers.getall("Set-Cookie")
            session = next(c for c in cookie if c.startswith("nudge_console="))
            assert "HttpOnly" in session and "SameSite=Strict" in session
            assert "Path=/console" in session and console.tokens["kvitka"] not in session


async def test_a_shop_token_sees_its_shop_only(console):
    http = await logged_in(console, "kvitka")
    async with http:
        async with http.get(console.base + "/console/shops") as r:
            page = await r.text()
            assert "Kvitka" in page and "Other" not in page
        async with http.get(console.base + f"/console/shops/{console.other.id}") as r:
            assert r.status == 404
        async with http.get(console.base + f"/console/shops/{console.kvitka.id}") as r:
            page = await r.text()
            assert f"/hooks/shopify/{console.kvitka.id}" in page
            assert console.kvitka.webhook_secret in page and "checkouts/update" in page
        async with http.get(
            console.base + f"/console/shops/{console.kvitka.id}/customers?q=олена"
        ) as r:
            page = await r.text()
            assert "Олена Коваль" in page
        async with http.get(console.base + f"/console/shops/{console.kvitka.id}/campaigns") as r:
            assert r.status == 200


async def test_logout_needs_csrf_and_revoking_the_token_ends_the_session(console):
    http = await logged_in(console, "owner")
    async with http:
        async with http.get(console.base + "/console/shops") as r:
            page = await r.text()
            assert "Kvitka" in page and "Other" in page
            csrf = hidden(page)
        async with http.post(console.base + "/console/logout", data={}) as r:
            assert r.status == 403
        async with http.post(
            console.base + "/console/logout", data={"csrf": csrf}, allow_redirects=False
        ) as r:
            assert r.status == 303
        async with http.get(console.base + "/console/shops", allow_redirects=False) as r:
            assert r.status == 303
    http = await logged_in(console, "kvitka")
    async with http:
        async with transaction(console.pg.services.sessions) as session:
            wanted = digest(console.tokens["kvitka"])
            query = select(ApiToken).where(ApiToken.token_hash == wanted)
            row = (await session.scalars(query)).one()
            await revoke_token(session=session, token_id=row.id, now=console.pg.clock.now())
        async with http.get(console.base + "/console/shops", allow_redirects=False) as r:
            assert r.status == 303


async def test_a_read_only_token_cannot_connect_a_bot(console):
    http = await logged_in(console, "reader")
    async with http:
        async with http.get(console.base + f"/console/shops/{console.kvitka.id}") as r:
            page = await r.text()
            assert 'name="bot_token"' not in page
            csrf = hidden(page)
        async with http.post(
            console.base + f"/console/shops/{console.kvitka.id}/bot",
            data={"csrf": csrf, "bot_token": "1:x"},
        ) as r:
            assert r.status == 403


async def test_a_bot_token_is_checked_live_before_it_is_connected(console):
    http = await logged_in(console, "kvitka")
    async with http:
        page_url = console.base + f"/console/shops/{console.kvitka.id}"
        async with http.get(page_url) as r:
            csrf = hidden(await r.text())
        async with http.post(page_url + "/bot", data={"csrf": csrf, "bot_token": "123:nope"}) as r:
            assert r.status == 422 and 'role="alert"' in await r.text()
        token = "7999000001:AAconsoletestbottoken0000000000000"
        console.pg.sandbox.add_bot(token, username="kvitka_new_bot", first_name="Kvitka")
        async with http.post(page_url + "/bot", data={"csrf": csrf, "bot_token": token}) as r:
            page = await r.text()
            assert r.status == 200 and "@kvitka_new_bot" in page


async def test_the_delivery_light_turns_red_when_signatures_fail(console):
    pg = console.pg
    assert await pg.deliver_webhook(console.kvitka, "orders/create", {"id": 1}) in (200, 400)
    http = await logged_in(console, "kvitka")
    async with http:
        async with http.get(console.base + "/console/shops") as r:
            assert 'data-health="ok"' in await r.text()
        pg.advance(timedelta(minutes=1))
        async with aiohttp.ClientSession() as raw:
            url = f"{pg.settings.public_base}/hooks/shopify/{console.kvitka.id}"
            headers = {"X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": "bad"}
            async with raw.post(url, data=b"{}", headers=headers) as r:
                assert r.status == 401
        async with http.get(console.base + "/console/shops") as r:
            assert 'data-health="failing"' in await r.text()
        pg.advance(timedelta(days=2))  # nothing since: it stays red, and says why
        async with http.get(console.base + "/console/shops") as r:
            assert 'data-health="failing"' in await r.text()


async def test_a_campaign_page_previews_sends_and_reports(console):
    from bot import campaign_service

    raw = {
        "name": "Весна",
        "segment": {"all": []},
        "topic": "shoes",
        "messages": {
            "uk": {
                "text": "{first_name}, <весна> & знижки!",
                "buttons": [{"text": "До розпродажу", "url": "https://kvitka.example/sale"}],
            }
        },
    }
    created = await campaign_service.create(
        console.pg.services.sessions,
        shop_id=console.kvitka.id,
        raw=raw,
        now=console.pg.clock.now(),
    )
    http = await logged_in(console, "kvitka")
    async with http:
        page_url = console.base + f"/console/shops/{console.kvitka.id}/campaigns/{created['id']}"
        async with http.get(page_url) as r:
            page = await r.text()
            assert r.status == 200
            assert "Олена, &lt;весна&gt; &amp; знижки!" in page  # escaped once, not twice
            assert 'class="key">До розпродажу<' in page and 'data-locale="pl"' in page
            assert "No text in en, ru, pl" in page
            csrf = hidden(page)
        async with http.post(page_url + "/send", data={"csrf": csrf}) as r:
            assert r.status == 200 and 'data-status="sent"' in await r.text()
        async with http.post(page_url + "/send", data={}) as r:
            assert r.status == 403
        async with http.post(page_url + "/cancel", data={"csrf": csrf}) as r:
            page = await r.text()
            assert "cancelled" in page and "<svg" in page
        other = console.base + f"/console/shops/{console.kvitka.id}/campaigns/999"
        async with http.get(other) as r:
            assert r.status == 404
        async with http.get(console.base + f"/console/shops/{console.kvitka.id}/reports") as r:
            assert r.status == 200 and "<svg" in await r.text()


async def test_a_customer_is_exported_and_erased_only_after_confirming(console):
    http = await logged_in(console, "kvitka")
    async with http:
        base = console.base + f"/console/shops/{console.kvitka.id}/customers"
        async with http.get(base + "?q=olena") as r:
            page = await r.text()
        import re

        customer = re.search(r"/customers/(\d+)", page).group(1)
        async with http.get(f"{base}/{customer}/export") as r:
            assert r.headers["Content-Disposition"].startswith("attachment")
            assert (await r.json())["profile"]["email"] == "olena@example.com"
        async with http.get(f"{base}/{customer}") as r:
            csrf = hidden(await r.text())
        async with http.post(
            f"{base}/{customer}/erase", data={"csrf": csrf, "confirm": "yes"}
        ) as r:
            assert "Коваль" in await r.text()  # not erased without ERASE
        async with http.post(
            f"{base}/{customer}/erase", data={"csrf": csrf, "confirm": "ERASE"}
        ) as r:
            page = await r.text()
            assert "Коваль" not in page and "was erased" in page


async def test_the_editor_counts_previews_and_saves_a_campaign(console):
    http = await logged_in(console, "kvitka")
    async with http:
        url = console.base + f"/console/shops/{console.kvitka.id}/campaigns/new"
        async with http.get(url) as r:
            page = await r.text()
            assert r.status == 200 and 'name="field0"' in page
            csrf = hidden(page)
        form = {
            "csrf": csrf,
            "name": "Весна",
            "topic": "shoes",
            "match": "all",
            "field0": "locale",
            "op0": "=",
            "value0": "uk",
            "text_uk": "{first_name}, весняні знижки!",
            "button_text": "До розпродажу",
            "button_url": "https://kvitka.example/sale",
        }
        async with http.post(url, data={**form, "intent": "count"}) as r:
            assert "Audience now: 1" in await r.text()
        async with http.post(
            console.base + f"/console/shops/{console.kvitka.id}/audience", data=form
        ) as r:
            assert (await r.json())["count"] == 1
        async with http.post(url, data={**form, "intent": "preview"}) as r:
            page = await r.text()
            assert "Олена, весняні знижки!" in page and 'class="key">До розпродажу<' in page
        async with http.post(
            url, data={**form, "field1": "colour", "op1": "=", "intent": "count"}
        ) as r:
            assert r.status == 422 and "colour" in await r.text()
        async with http.post(url, data={**form, "text_uk": "{name}", "intent": "create"}) as r:
            assert r.status == 422 and "unknown placeholder {name}" in await r.text()
        async with http.post(url, data={**form, "intent": "create"}, allow_redirects=False) as r:
            assert r.status == 303 and "/campaigns/" in r.headers["Location"]
        async with http.post(url, data={**form, "intent": "create", "csrf": "x"}) as r:
            assert r.status == 403


async def test_the_editor_builds_an_ab_test_with_a_follow_up_and_a_send_time(console):
    from bot import campaign_service
    from bot.models import Shop

    async with transaction(console.pg.services.sessions) as session:
        (await session.get(Shop, console.kvitka.id)).timezone = "Europe/Kyiv"
    http = await logged_in(console, "kvitka")
    async with http:
        url = console.base + f"/console/shops/{console.kvitka.id}/campaigns/new"
        async with http.get(url) as r:
            csrf = hidden(await r.text())
        form = {
            "csrf": csrf,
            "name": "Весна A/B",
            "topic": "shoes",
            "field0": "locale",
            "op0": "=",
            "value0": "uk",
            "text_uk": "Версія А",
            "b_text_uk": "Версія Б",
            "b_percent": "30",
            "follow_up_after": "2d",
            "f_text_uk": "Нагадуємо про знижки",
            "send_at": "2027-03-01T10:00",
        }
        async with http.post(url, data={**form, "intent": "preview"}) as r:
            page = await r.text()
            assert r.status == 200, page
            for variant, text in (("A", "Версія А"), ("B", "Версія Б")):
                assert f'data-variant="{variant}"' in page and text in page
            assert 'data-variant="follow_up"' in page and "Нагадуємо про знижки" in page
            assert "No text in en, ru, pl (A)" in page  # the shop also speaks en, ru, pl
        async with http.post(url, data={**form, "local_time": "10:00", "intent": "create"}) as r:
            assert r.status == 422 and "not both" in await r.text()
        async with http.post(url, data={**form, "b_percent": "0", "intent": "create"}) as r:
            assert r.status == 422 and "from 1 to 99" in await r.text()
        async with http.post(url, data={**form, "intent": "create"}, allow_redirects=False) as r:
            assert r.status == 303
            campaign_id = int(r.headers["Location"].rsplit("/", 1)[1])
    stored = await campaign_service.show(console.pg.services.sessions, campaign_id=campaign_id)
    spec = stored["file"]
    assert [(v["name"], v["weight"]) for v in spec["variants"]] == [("A", 70), ("B", 30)]
    assert spec["follow_up"] == {
        "after": "2d",
        "messages": {"uk": {"text": "Нагадуємо про знижки"}},
    }
    # The owner types the shop's time: 10:00 in Kyiv on 1 March 2027 (UTC+2).
    assert spec["schedule"] == {"at": "2027-03-01T10:00:00+02:00"}


async def test_the_owner_connects_a_shopify_store_and_sees_its_webhook(console):
    http = await logged_in(console, "owner")
    async with http:
        url = console.base + "/console/shops/new"
        async with http.get(url) as r:
            page = await r.text()
            assert r.status == 200 and 'value="shopify" checked' in page
            csrf = hidden(page)
        form = {"csrf": csrf, "platform": "shopify", "name": "Lato", "country": "PL"}
        async with http.post(url, data={**form, "bot_token": "123:nope"}) as r:
            assert r.status == 422 and "bot_token" in await r.text()
        async with http.post(url, data={**form, "country": "XX"}) as r:
            assert r.status == 422 and "country" in await r.text()
        token = "7999000002:AAconsoletestbottoken0000000000001"
        console.pg.sandbox.add_bot(token, username="lato_shop_bot", first_name="Lato")
        async with http.post(url, data={**form, "bot_token": token}) as r:
            page = await r.text()
            assert r.status == 200 and "@lato_shop_bot" in page
            assert "/hooks/shopify/" in page and "orders/create" in page
            assert "The store is connected" in page
    for who in ("kvitka", "reader"):
        http = await logged_in(console, who)
        async with http:
            async with http.get(url) as r:
                assert r.status == 403  # only the owner adds shops


async def test_progress_follows_the_send_and_reports_show_flows_over_time(console):
    from bot import campaign_service
    from bot.store.flow_history import flow_history

    pg = console.pg
    pg.customer(console.kvitka, user_id=700, first_name="Олена")  # her chat with the bot
    raw = {"name": "Літо", "segment": {"all": []}, "topic": "sandals"}
    raw["messages"] = {"uk": {"text": "{first_name}, літні знижки!"}}
    created = await campaign_service.create(
        pg.services.sessions, shop_id=console.kvitka.id, raw=raw, now=pg.clock.now()
    )
    http = await logged_in(console, "kvitka", headers={"Accept-Language": "uk"})
    async with http:
        page_url = console.base + f"/console/shops/{console.kvitka.id}/campaigns/{created['id']}"
        async with http.get(page_url) as r:
            page = await r.text()
            assert 'id="progress"' not in page  # a draft has nothing to show yet
            csrf = hidden(page)
        async with http.post(page_url + "/send", data={"csrf": csrf}) as r:
            page = await r.text()
            assert 'id="progress"' in page and 'data-percent="0"' in page
        async with http.get(page_url + "/progress") as r:
            body = await r.json()
            assert (body["status"], body["done"], body["audience"]) == ("sent", 0, 1)
        await pg.dispatch()
        async with http.get(page_url + "/progress") as r:
            body = await r.json()
            assert (body["percent"], body["text"]) == (100, "Надіслано: 1 з 1")
        async with http.get(console.base + f"/console/shops/{console.kvitka.id}/campaigns") as r:
            assert "<td>надіслана</td>" in await r.text()  # the status, in the reader's language
        async with http.get(console.base + f"/console/shops/{console.kvitka.id}/reports") as r:
            page = await r.text()
            assert 'id="flows-over-time"' in page, page
            assert "<title>Розсилки: 1</title>" in page
    async with pg.services.sessions() as session:
        history = await flow_history(
            session=session, shop_id=console.kvitka.id, now=pg.clock.now()
        )
    assert history.sent == {"campaign": [0] * 11 + [1]} and len(history.weeks) == 12
    assert history.weeks[-1].weekday() == 0


async def test_a_customer_page_shows_the_timeline_carts_orders_and_messages(console):
    from decimal import Decimal

    from bot.models import Cart, CartItem, Customer, CustomerEvent, Order, Outbox

    pg = console.pg
    now = pg.clock.now()
    async with transaction(pg.services.sessions) as session:
        olena = (
            await session.scalars(select(Customer).where(Customer.shop_id == console.kvitka.id))
        ).one()
        cart = Cart(shop_id=olena.shop_id, customer_id=olena.id, token="c1", total=Decimal("1250"))
        cart.currency, cart.created_at, cart.updated_at = "UAH", now, now
        session.add(cart)
        await session.flush()
        session.add(CartItem(shop_id=olena.shop_id, cart_id=cart.id, title="Сукня «Ромашка»"))
        session.add(
            CustomerEvent(
                shop_id=olena.shop_id,
                customer_id=olena.id,
                type="cart.updated",
                payload={"token": "c1", "items": [1]},
                source="shopify",
                occurred_at=now,
            )
        )
        session.add(
            Order(
                shop_id=olena.shop_id,
                customer_id=olena.id,
                external_id="#1001",
                total=Decimal("1250.50"),
                currency="UAH",
                placed_at=now,
                updated_at=now,
            )
        )
        session.add(
            Outbox(
                shop_id=olena.shop_id,
                customer_id=olena.id,
                kind="cart.reminder",
                dedupe_key="r1",
                state="skipped",
                skip_reason="quiet_hours",
                due_at=now,
                created_at=now,
                updated_at=now,
            )
        )
    http = await logged_in(console, "kvitka", headers={"Accept-Language": "uk"})
    async with http:
        url = console.base + f"/console/shops/{console.kvitka.id}/customers/{olena.id}"
        async with http.get(url) as r:
            page = await r.text()
    assert r.status == 200
    assert "<code>cart.updated</code>" in page and "token: c1" in page  # the timeline
    assert "Сукня «Ромашка» × 1" in page  # the cart and its items
    assert "#1001" in page and "1250,50" in page.replace("\xa0", "").replace(" ", "")
    assert "Покинуті кошики" in page and "Пропущено" in page  # flow and state in words
    assert "чекає на кінець тихих годин" in page  # the skip reason, translated


async def test_reports_draw_the_nps_trend_by_month(console):
    from datetime import timedelta

    from bot.models import CustomerEvent

    pg = console.pg
    now = pg.clock.now()
    async with transaction(pg.services.sessions) as session:
        for days, score in ((40, 10), (40, 3), (5, 9), (5, 9), (5, 6)):
            session.add(
                CustomerEvent(
                    shop_id=console.kvitka.id,
                    type="nps_answered",
                    payload={"score": score},
                    source="telegram",
                    occurred_at=now - timedelta(days=days),
                )
            )
    http = await logged_in(console, "kvitka")
    async with http:
        async with http.get(console.base + f"/console/shops/{console.kvitka.id}/reports") as r:
            page = await r.text()
    chart = page[page.index('id="nps-trend"') :]
    # January: one promoter, one detractor (0); February: two promoters, one detractor (33.3).
    assert "<title>2026-01: 0</title>" in chart and "<title>2026-02: 33.3</title>" in chart

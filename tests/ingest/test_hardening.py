"""Shop webhooks under attack: nothing accepted is lost, nothing is done twice, nothing stalls.

Same-second updates, replays, one poisoned delivery in front of many good ones, values no
database column can hold (lone surrogates, NUL, money beyond NUMERIC(14,4), far dates), and
URLs the redirect could not serve.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from ingest_helpers import SECRET_KEY, fixture_json
from sqlalchemy import func, select

from bot import flows
from bot.db import transaction
from bot.inbox_worker import InboxWorker
from bot.models import (
    Cart,
    CartStatus,
    Consent,
    CustomerEvent,
    Inbox,
    Order,
    Outbox,
    OutboxState,
    Product,
)
from bot.store.customers import add_customer
from bot.store.inbox import NewDelivery, retry_delivery, store_deliveries
from bot.store.shops import update_shop
from integrations import CartUpdated

ORIGIN = "https://shop.example.com"
CART_TOKEN = "q8ZrT2vLk0x_Wm4NcYb7Hs1d"


async def inbox_rows(database, *where):
    async with database.sessions() as session:
        query = select(Inbox).where(*where).order_by(Inbox.id)
        return list((await session.scalars(query)).all())


async def rows(database, model):
    async with database.sessions() as session:
        return list((await session.scalars(select(model))).all())


async def count(database, model, *where):
    async with database.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


def generic_cart(n: int, *, email: str, token: str) -> dict:
    payload = fixture_json("generic/cart.updated.json")
    payload["id"] = f"evt-{n}"
    payload["occurred_at"] = f"2025-05-01T12:00:{n % 60:02d}Z"
    payload["data"]["token"] = token
    payload["data"]["customer"] = {"email": email}
    return payload


@pytest.fixture
def failing_flow(monkeypatch):
    """A cart flow that fails for carts whose token is in the returned set."""
    broken: set[str] = set()

    async def flow(context, event):
        if event.token in broken:
            raise RuntimeError(f"flow failed for {event.token}")

    monkeypatch.setitem(flows._HANDLERS, CartUpdated, [flow])
    return broken


# ---------------------------------------------------------------- 1. same second, replays


async def test_woocommerce_updates_in_the_same_second_are_both_applied(hooks, database):
    shop = await hooks.shop("woocommerce")
    async with transaction(database.sessions) as session:
        await add_customer(
            session=session,
            shop_id=shop.id,
            now=hooks.clock.now(),
            email="john.doe@example.com",
            telegram_chat_id=5550001,
            consent=Consent.OPTED_IN,
        )
    paid = fixture_json("woocommerce/order.created.json")  # processing
    pending = copy.deepcopy(paid)
    pending["status"] = "pending"
    assert pending["date_modified_gmt"] == paid["date_modified_gmt"]  # the same second

    assert (await hooks.post(shop, "order.updated", pending))[1]["status"] == "stored"
    await hooks.worker.run_until_idle()
    scheduled = Outbox.state == OutboxState.SCHEDULED
    assert await count(database, Outbox, scheduled) == 1  # the cart reminder

    assert (await hooks.post(shop, "order.updated", paid))[1]["status"] == "stored"
    report = await hooks.worker.run_until_idle()
    assert report.done == 1 and not report.errors
    (order,) = await rows(database, Order)
    (cart,) = await rows(database, Cart)
    assert order.external_id == "727" and cart.status == CartStatus.CONVERTED
    assert await count(database, Outbox, scheduled) == 0  # nobody reminds a paying customer

    again = await hooks.post(shop, "order.updated", paid, event_id="9999")
    assert again == (200, {"status": "duplicate"})  # an identical redelivery still is one
    assert await count(database, Inbox) == 2


async def test_shopify_deliveries_of_one_event_under_two_topics_are_both_kept(hooks, database):
    shop = await hooks.shop("shopify")
    order = fixture_json("shopify/orders/create.json")
    first = await hooks.post(shop, "orders/create", order, event_id="evt-1")
    second = await hooks.post(shop, "orders/paid", order, event_id="evt-1")
    replay = await hooks.post(shop, "orders/paid", order, event_id="evt-1")
    assert [first[1], second[1], replay[1]] == [
        {"status": "stored"},
        {"status": "stored"},
        {"status": "duplicate"},
    ]


async def test_generic_id_reused_for_a_different_body_is_refused_not_dropped(hooks, database):
    shop = await hooks.shop("generic")
    payload = fixture_json("generic/cart.updated.json")
    assert (await hooks.post(shop, "cart.updated", payload))[1] == {"status": "stored"}
    reordered = json.dumps(payload, indent=2, sort_keys=True).encode()  # same content
    assert (await hooks.post(shop, "cart.updated", reordered))[1] == {"status": "duplicate"}
    changed = copy.deepcopy(payload)
    changed["data"]["items"][0]["quantity"] = 3
    status, answer = await hooks.post(shop, "cart.updated", changed)
    assert status == 409 and "evt-cart-7f3a-2" in answer["error"]
    assert await count(database, Inbox) == 1


# ------------------------------------------------------- 2. one poisoned delivery, no stall


async def _poison_then_flood(hooks):
    shop = await hooks.shop("generic")
    elsewhere = await hooks.shop("generic")
    await hooks.post(shop, "cart.updated", generic_cart(0, email="a@example.com", token="a-0"))
    for n in range(1, 111):
        await hooks.post(
            shop, "cart.updated", generic_cart(n, email="a@example.com", token=f"a-{n}")
        )
    await hooks.post(shop, "cart.updated", generic_cart(111, email="b@example.com", token="b"))
    await hooks.post(
        elsewhere, "cart.updated", generic_cart(112, email="c@example.com", token="c")
    )
    return shop, elsewhere


async def test_one_failing_delivery_delays_only_deliveries_sharing_its_keys(
    hooks, database, failing_flow
):
    failing_flow.add("a-0")
    await _poison_then_flood(hooks)
    worker = InboxWorker(database.sessions, hooks.clock, poll_interval=0.05)
    running = asyncio.create_task(worker.run_forever())
    started = time.monotonic()
    try:
        while True:  # the other customer and the other shop: applied within seconds
            states = {r.state for r in await inbox_rows(database, Inbox.id > 111)}
            if states == {"done"}:
                break
            assert time.monotonic() - started < 5, states
            await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await running
    rows = await inbox_rows(database)
    assert (rows[0].state, rows[0].attempts) == ("pending", 1)  # the poisoned one, waiting
    assert {(r.state, r.attempts) for r in rows[1:111]} == {("pending", 0)}

    failing_flow.clear()  # fixed: everything of customer a is applied, in the order received
    hooks.clock.advance(timedelta(seconds=10))
    await hooks.worker.run_until_idle()
    assert {r.state for r in await inbox_rows(database)} == {"done"}
    async with database.sessions() as session:
        query = select(CustomerEvent).order_by(CustomerEvent.id)
        tokens = [e.payload["token"] for e in (await session.scalars(query)).all()]
    a_tokens = [t for t in tokens if t.startswith("a-")]
    assert a_tokens == [f"a-{n}" for n in range(111)]


async def test_few_passes_reach_deliveries_behind_a_blocked_customer(
    hooks, database, failing_flow
):
    failing_flow.add("a-0")
    await _poison_then_flood(hooks)
    for _ in range(3):
        await hooks.worker.run_once()
    assert [r.state for r in await inbox_rows(database, Inbox.id > 111)] == ["done", "done"]


async def test_retrying_a_blocker_releases_what_waits_behind_it(hooks, database, failing_flow):
    failing_flow.add("a-0")
    shop = await hooks.shop("generic")
    for n in range(4):
        await hooks.post(
            shop, "cart.updated", generic_cart(n, email="a@example.com", token=f"a-{n}")
        )
    await hooks.worker.run_until_idle()
    assert [r.state for r in await inbox_rows(database)] == ["pending"] * 4
    failing_flow.clear()
    async with transaction(database.sessions) as session:
        await retry_delivery(session=session, inbox_id=1, now=hooks.clock.now())
    await hooks.worker.run_until_idle()  # the clock did not move
    assert [r.state for r in await inbox_rows(database)] == ["done"] * 4


async def test_a_failing_shop_wide_delivery_holds_only_its_own_shop(hooks, database, monkeypatch):
    from bot import inbox_worker
    from integrations import AppUninstalled

    async def fail(apply, event):
        raise RuntimeError("uninstall failed")

    monkeypatch.setitem(inbox_worker.APPLIERS, AppUninstalled, fail)
    shop = await hooks.shop("shopify")
    elsewhere = await hooks.shop("generic")
    await hooks.post(shop, "app/uninstalled", fixture_json("shopify/app/uninstalled.json"))
    for n in range(120):
        customer = fixture_json("shopify/customers/update.json")
        customer["id"] = 1000 + n
        await hooks.post(shop, "customers/update", customer)
    await hooks.post(elsewhere, "cart.updated", generic_cart(1, email="c@example.com", token="c"))
    for _ in range(3):
        await hooks.worker.run_once()
    rows = await inbox_rows(database)
    assert rows[-1].state == "done"  # the other shop
    assert {r.state for r in rows[:-1]} == {"pending"}  # everything of the uninstalled shop waits
    assert rows[0].attempts == 1 and {r.attempts for r in rows[1:-1]} == {0}


async def test_order_is_kept_when_a_shop_has_more_waiting_than_the_worker_reads(
    hooks, database, failing_flow
):
    failing_flow.add("a-0")
    shop = await hooks.shop("generic")
    for n in range(30):
        email = "a@example.com" if n % 3 else "b@example.com"
        token = "a-0" if n == 1 else f"t-{n}"
        await hooks.post(shop, "cart.updated", generic_cart(n, email=email, token=token))
    worker = InboxWorker(database.sessions, hooks.clock, max_waiting=4, batch_size=7)
    await worker.run_until_idle()
    failing_flow.clear()
    for _ in range(20):
        hooks.clock.advance(timedelta(seconds=30))
        await worker.run_until_idle()
    assert {r.state for r in await inbox_rows(database)} == {"done"}
    async with database.sessions() as session:
        query = select(CustomerEvent).order_by(CustomerEvent.id)
        tokens = [e.payload["token"] for e in (await session.scalars(query)).all()]
    a_tokens = [t for t in tokens if t == "a-0" or int(t.split("-")[1]) % 3]
    assert a_tokens == ["a-0"] + [f"t-{n}" for n in range(2, 30) if n % 3]


# -------------------------------------------------- 3. values no column can hold: refused


SURROGATE = "\ud800"  # json.dumps writes it as the escape "\ud800": valid JSON, invalid text
NUL = "\x00"
HUGE = "99999999999.99"  # reads as money, does not fit NUMERIC(14,4)


def _shopify(mutate):
    payload = fixture_json("shopify/checkouts/update.json")
    mutate(payload)
    return payload


def _woocommerce(mutate):
    payload = fixture_json("woocommerce/order.created.json")
    mutate(payload)
    return payload


SHOPIFY_BAD = {
    "surrogate name": lambda p: p["customer"].update(first_name="Ol" + SURROGATE + "na"),
    "NUL title": lambda p: p["line_items"][0].update(title="Shirt" + NUL),
    "huge total": lambda p: p.update(total_price=HUGE),
    "far date": lambda p: p.update(updated_at="9999-12-31T23:59:59Z"),
}
WOOCOMMERCE_BAD = {
    "surrogate name": lambda p: p["billing"].update(first_name=SURROGATE),
    "NUL title": lambda p: p["line_items"][0].update(name="Woo" + NUL),
    "huge total": lambda p: p.update(total=HUGE),
    "far date": lambda p: p.update(date_modified_gmt="9999-12-31T23:59:59"),
}


@pytest.mark.parametrize(
    ("platform", "topic", "payload"),
    [("shopify", "checkouts/update", _shopify(m)) for m in SHOPIFY_BAD.values()]
    + [("woocommerce", "order.updated", _woocommerce(m)) for m in WOOCOMMERCE_BAD.values()],
    ids=[f"shopify {k}" for k in SHOPIFY_BAD] + [f"woocommerce {k}" for k in WOOCOMMERCE_BAD],
)
async def test_unstorable_values_from_shopify_or_woocommerce_are_parked_at_once(
    hooks, database, platform, topic, payload
):
    shop = await hooks.shop(platform)
    status, answer = await hooks.post(shop, topic, payload)
    assert (status, answer) == (200, {"status": "parked"})
    report = await hooks.worker.run_until_idle()
    assert report.handled == 0 and not report.errors
    (row,) = await inbox_rows(database)
    assert (row.state, row.attempts) == ("parked", 0)
    assert row.last_error.startswith("InvalidValue: ")
    assert NUL not in row.last_error and SURROGATE not in row.last_error
    assert await count(database, Cart) == 0 and await count(database, Order) == 0


GENERIC_BAD = {
    "surrogate name": (("data", "customer", "first_name"), "Ol" + SURROGATE + "na"),
    "NUL title": (("data", "items", 0, "title"), "Shirt" + NUL),
    "NUL email": (("data", "customer", "email"), "a" + NUL + "@example.com"),
    "total beyond the column": (("data", "items", 0, "quantity"), 10_000),
    "far date": (("occurred_at",), "9999-12-31T23:59:59Z"),
    "backslash URL": (("data", "recovery_url"), "https://evil.example\\@shop.example.com/c"),
}


@pytest.mark.parametrize(("where", "value"), GENERIC_BAD.values(), ids=GENERIC_BAD.keys())
async def test_unstorable_generic_values_are_400_with_the_reason(hooks, database, where, value):
    shop = await hooks.shop("generic")
    payload = fixture_json("generic/cart.updated.json")
    payload["data"]["items"][0]["price"] = "999999999"
    target = payload
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = value
    status, answer = await hooks.post(shop, "cart.updated", payload)
    assert status == 400, answer
    named = where[-1] if where[-1] != "quantity" else "total"
    assert named in answer["error"]
    assert await count(database, Inbox) == 0


async def test_worker_parks_at_once_what_the_database_refuses(hooks, database, monkeypatch):
    async def overflow(context, event):  # a value no check foresaw reaches the database
        context.session.add(
            Product(
                shop_id=context.shop.id,
                external_id="too-dear",
                price=Decimal("1e15"),
                updated_at=context.clock.now(),
            )
        )
        await context.session.flush()

    monkeypatch.setitem(flows._HANDLERS, CartUpdated, [overflow])
    shop = await hooks.shop("generic")
    await hooks.post(shop, "cart.updated", generic_cart(1, email="a@example.com", token="a"))
    report = await hooks.worker.run_once()
    assert report.parked == 1 and report.retrying == 0
    (row,) = await inbox_rows(database)
    assert (row.state, row.attempts) == ("parked", 1)


async def test_worker_retries_what_may_pass_later(hooks, database, monkeypatch):
    from sqlalchemy.exc import OperationalError

    async def connection_lost(context, event):
        raise OperationalError("SELECT 1", {}, ConnectionResetError("connection lost"))

    monkeypatch.setitem(flows._HANDLERS, CartUpdated, [connection_lost])
    shop = await hooks.shop("generic")
    await hooks.post(shop, "cart.updated", generic_cart(1, email="a@example.com", token="a"))
    report = await hooks.worker.run_once()
    assert report.retrying == 1 and report.parked == 0
    (row,) = await inbox_rows(database)
    assert (row.state, row.attempts) == ("pending", 1)


async def test_one_bad_stored_delivery_in_front_of_many_good_ones(hooks, database):
    """Deliveries stored before the checks existed: the bad one parks at once, alone."""
    shop = await hooks.shop("generic")
    bad = generic_cart(0, email="bad@example.com", token="bad")
    bad["data"]["items"][0]["title"] = "Shirt" + NUL
    bodies = [bad] + [
        generic_cart(n, email=f"c{n}@example.com", token=f"t-{n}") for n in range(1, 251)
    ]
    deliveries = [
        NewDelivery(
            shop_id=shop.id,
            platform="generic",
            topic="cart.updated",
            delivery_key=f"generic:{body['id']}",
            headers={},
            body=json.dumps(body).encode(),
            received_at=hooks.clock.now(),
        )
        for body in bodies
    ]
    async with database.engine.begin() as connection:
        await store_deliveries(connection=connection, deliveries=deliveries, touched={})
    report = await hooks.worker.run_until_idle()
    assert (report.done, report.parked, report.retrying) == (250, 1, 0)
    (parked,) = await inbox_rows(database, Inbox.state == "parked")
    assert parked.id == 1 and parked.attempts == 1 and "title" in parked.last_error


# ------------------------------------------------- 4. the public storefront endpoint and /r/


@pytest.fixture
async def storefront_shop(hooks, database):
    created = await hooks.shop("generic", bot_username="kvitka_bot")
    async with transaction(database.sessions) as session:
        return await update_shop(
            session=session, shop_id=created.id, key="storefront_origins", value=ORIGIN
        )


STOREFRONT_BAD = {
    "surrogate title": (("items", 0, "title"), "iPod" + SURROGATE),
    "NUL title": (("items", 0, "title"), "iPod" + NUL),
    "total beyond the column": (("items", 0, "quantity"), 10_000),
    "backslash URL": (("url",), "https://evil.example\\@shop.example.com/cart"),
    "credentials URL": (("url",), "https://user:pw@shop.example.com/cart"),
    "control character URL": (("items", 0, "url"), "https://shop.example.com/p\x01"),
    "hostless URL": (("url",), "https:///cart"),
}


@pytest.mark.parametrize(("where", "value"), STOREFRONT_BAD.values(), ids=STOREFRONT_BAD.keys())
async def test_storefront_refuses_what_cannot_be_stored_or_served(
    client, storefront_shop, database, where, value
):
    payload = {**fixture_json("generic/storefront.cart.json"), "cart_token": CART_TOKEN}
    payload["items"][0]["price"] = "999999999"
    target = payload
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = value
    async with client.post(
        f"/storefront/{storefront_shop.id}/cart",
        data=json.dumps(payload),
        headers={"Origin": ORIGIN, "Content-Type": "text/plain"},
    ) as response:
        assert response.status == 400, await response.text()
        assert "error" in await response.json()
    assert await count(database, Cart) == 0


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("https://shop.example.com/cart/7f3a", 302),
        ("https://evil.example\\@shop.example.com/cart", 404),
        ("https://shop.example.com/cart\r\nSet-Cookie: a=b", 404),
        ("javascript:alert(1)", 404),
    ],
)
async def test_redirect_never_fails_on_a_stored_url(hooks, client, database, stored, expected):
    from bot.offers import LinkTarget, tracked_url

    shop = await hooks.shop("generic")
    now = hooks.clock.now()
    async with transaction(database.sessions) as session:
        customer = await add_customer(session=session, shop_id=shop.id, now=now, email="a@x.io")
        cart = Cart(shop_id=shop.id, token="t1", recovery_url=stored, created_at=now)
        session.add(cart)
        await session.flush()
        outbox = Outbox(
            shop_id=shop.id,
            customer_id=customer.id,
            kind="cart.reminder",
            payload={"cart_id": cart.id},
            dedupe_key="k1",
            due_at=now,
        )
        session.add(outbox)
        await session.flush()
    link = tracked_url(
        public_url="", secret_key=SECRET_KEY, outbox_id=outbox.id, target=LinkTarget.ORDER
    )
    async with client.get(link, allow_redirects=False) as response:
        assert response.status == expected
        if expected == 302:
            assert response.headers["Location"] == stored


async def test_concurrent_replays_store_one_row_and_apply_it_once(hooks, database):
    shop = await hooks.shop("woocommerce")
    body = json.dumps(fixture_json("woocommerce/order.created.json")).encode()
    answers = await asyncio.gather(*(hooks.post(shop, "order.created", body) for _ in range(200)))
    statuses = sorted(a[1]["status"] for a in answers)
    assert statuses == ["duplicate"] * 199 + ["stored"]
    await hooks.worker.run_until_idle()
    assert await count(database, Order) == 1
    assert await count(database, CustomerEvent, CustomerEvent.type == "order_placed") == 1

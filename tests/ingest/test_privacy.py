"""Erasure and export for every platform, as a shop owner answering a customer's request."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from click.testing import CliRunner
from ingest_helpers import SECRET_KEY, fixture_json
from privacy_helpers import (
    ADDRESS,
    EMAIL,
    FIRST,
    LAST,
    PERSONAL,
    PHONE,
    PHONE_AS_TYPED,
    STREET,
    leftovers,
    refusing_customer_updates,
    shopify_checkout,
    shopify_customer,
    shopify_order,
    stored_bytes,
)
from sqlalchemy import select, text

from bot.cli import cli
from bot.models import Cart, Customer, Inbox, InboxState, Order


@pytest.fixture
async def env(cli_database, monkeypatch, tmp_path):
    """Point the CLI at the test's database (stamped at head)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NUDGE_DATABASE_URL", cli_database.url)
    monkeypatch.setenv("NUDGE_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("NUDGE_PUBLIC_URL", "https://nudge.example.com/")
    yield cli_database
    async with cli_database.engine.begin() as conn:  # leave no stamp behind on the shared PG
        await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


async def nudge(*args: str) -> tuple[int, str]:
    """Run `nudge …` (off the event loop) and return the exit code and everything printed."""

    def invoke() -> tuple[int, str]:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    return await asyncio.to_thread(invoke)


async def rows(database, model, *where) -> list[Any]:
    async with database.sessions() as session:
        return list((await session.scalars(select(model).where(*where).order_by(model.id))).all())


# ------------------------------------------------------------- one customer per platform


def _generic(topic_id: str, occurred_at: str, data: dict) -> dict:
    return {"id": topic_id, "occurred_at": occurred_at, "data": data}


GENERIC_CUSTOMER = {
    "id": "1001",
    "email": EMAIL,
    "phone": PHONE_AS_TYPED,
    "first_name": FIRST,
    "last_name": LAST,
}


def _woo_billing() -> dict:
    return {
        "first_name": FIRST,
        "last_name": LAST,
        "company": "",
        "address_1": STREET,
        "city": "Kyiv",
        "postcode": "01001",
        "country": "UA",
        "email": EMAIL,
        "phone": PHONE_AS_TYPED,
    }


def _woo_order(order_id: int) -> dict:
    order = fixture_json("woocommerce/order.created.json")
    order.update(
        id=order_id,
        number=str(order_id),
        customer_id=25,
        customer_note=f"ring {PHONE_AS_TYPED}",
        billing=_woo_billing(),
        shipping={k: v for k, v in _woo_billing().items() if k not in ("email", "phone")},
        date_modified=f"2026-03-01T1{order_id % 10}:00:00",
        date_modified_gmt=f"2026-03-01T1{order_id % 10}:00:00",
    )
    return order


def story(platform: str) -> dict[str, list[tuple[str, Any]]]:
    """Return deliveries that teach Nudge the customer, and one still waiting to be applied."""
    if platform == "shopify":
        return {
            "applied": [
                ("customers/create", shopify_customer()),
                ("checkouts/create", shopify_checkout()),
                ("orders/create", shopify_order()),
            ],
            "waiting": [("orders/create", shopify_order(880002, "chk-erasure-2"))],
        }
    if platform == "woocommerce":
        customer = fixture_json("woocommerce/customer.created.json")
        customer.update(
            email=EMAIL,
            first_name=FIRST,
            last_name=LAST,
            username="olesia.z",
            billing=_woo_billing(),
            date_modified="2026-03-01T10:00:00",
            date_modified_gmt="2026-03-01T10:00:00",
        )
        return {
            "applied": [("customer.created", customer), ("order.created", _woo_order(1727))],
            "waiting": [("order.created", _woo_order(1728))],
        }
    order = {
        "name": "#9001",
        "items": [{"product_id": "501", "title": "Linen shirt", "price": "49.90", "quantity": 2}],
        "total": "99.80",
        "currency": "UAH",
        "customer": {"id": "1001", "email": EMAIL, "phone": PHONE},
    }
    return {
        "applied": [
            ("customer.upserted", _generic("c-1", "2026-03-01T10:00:00Z", GENERIC_CUSTOMER)),
            (
                "cart.updated",
                _generic(
                    "cart-1",
                    "2026-03-01T11:00:00Z",
                    {
                        "token": "cart-erasure-1",
                        "items": order["items"],
                        "currency": "UAH",
                        "customer": {"id": "1001", "email": EMAIL},
                    },
                ),
            ),
            (
                "order.placed",
                _generic("o-1", "2026-03-01T12:00:00Z", {**order, "order_id": "9001"}),
            ),
        ],
        "waiting": [
            (
                "order.placed",
                _generic("o-2", "2026-03-01T13:00:00Z", {**order, "order_id": "9002"}),
            )
        ],
    }


async def teach(hooks, shop, platform: str) -> None:
    """Deliver the story: applied deliveries, then one left pending (not yet applied)."""
    deliveries = story(platform)
    for topic, body in deliveries["applied"]:
        await hooks.deliver(shop, topic, body)
    for topic, body in deliveries["waiting"]:
        status, answer = await hooks.post(shop, topic, body)
        assert status == 200, answer


# ------------------------------------------------------------------------------- erasure


@pytest.mark.parametrize("platform", ["shopify", "woocommerce", "generic"])
async def test_customer_erase_removes_personal_data_on_every_platform(
    env, hooks, database, platform
):
    shop = await hooks.shop(platform)
    await teach(hooks, shop, platform)
    (olesia,) = await rows(database, Customer)
    assert olesia.email == EMAIL
    assert set(leftovers(await stored_bytes(database))) >= {EMAIL, LAST}

    code, out = await nudge("customer", "erase", "--shop", str(shop.id), "--email", EMAIL.upper())
    assert code == 2, out
    (line,) = out.strip().splitlines()
    assert line.startswith(f"nudge: error: this would erase customer {olesia.id} in shop")
    assert "raw deliveries" in line and "--yes" in line
    assert (await rows(database, Customer))[0].email == EMAIL, "nothing erased without --yes"

    code, out = await nudge(
        "customer", "erase", "--shop", str(shop.id), "--email", EMAIL, "--yes", "--json"
    )
    assert code == 0, out
    record = json.loads(out)
    assert record["customer_ids"] == [olesia.id]
    assert record["erased"]["profiles"] == 1 and record["erased"]["deliveries"] >= 3

    assert leftovers(await stored_bytes(database)) == []
    (olesia,) = await rows(database, Customer, Customer.id == olesia.id)
    assert olesia.email is None and olesia.redacted_hash is not None
    assert await rows(database, Customer, Customer.redacted_hash.is_(None)) == []
    assert await rows(database, Cart) == []
    assert [o.customer_id for o in await rows(database, Order)] == [None]

    waiting = await rows(database, Inbox, Inbox.state == InboxState.PENDING)
    assert len(waiting) == 1, "the delivery still waiting is kept, scrubbed"
    report = await hooks.worker.run_until_idle()
    assert report.done == 1, report.errors
    orders = await rows(database, Order)
    assert len(orders) == 2 and {o.customer_id for o in orders} == {None}
    assert await rows(database, Customer, Customer.redacted_hash.is_(None)) == []
    assert leftovers(await stored_bytes(database)) == []

    code, out = await nudge(
        "customer", "erase", "--shop", str(shop.id), "--email", "x@example.com"
    )
    assert code == 1 and "no customer with that e-mail" in out


async def test_customer_erase_by_id_or_phone(env, hooks, database):
    shop = await hooks.shop("generic")
    await teach(hooks, shop, "generic")
    (olesia,) = await rows(database, Customer)
    base = ("customer", "erase", "--shop", str(shop.id))

    assert (await nudge(*base, "--phone", "067 000 00 00", "--yes"))[0] == 1
    assert (await nudge(*base, "--customer", str(olesia.id + 1), "--yes"))[0] == 1
    code, out = await nudge(*base, "--phone", PHONE_AS_TYPED)
    assert code == 2 and f"customer {olesia.id}" in out
    code, out = await nudge(*base, "--customer", str(olesia.id), "--yes")
    assert code == 0 and out.startswith(f"erased customer {olesia.id} in shop {shop.id}"), out
    assert await rows(database, Customer, Customer.redacted_hash.is_(None)) == []

    code, out = await nudge("customer", "erase", "--shop", "999", "--email", EMAIL, "--yes")
    assert code == 1 and "no shop with id 999" in out
    for wrong in ([], ["--email", EMAIL, "--phone", PHONE], ["--phone", "not a phone"]):
        code, out = await nudge(*base, *wrong, "--yes")
        assert code == 2 and out.startswith("nudge: error: ") and len(out.splitlines()) == 1


async def test_erased_identity_stays_erased_when_the_platform_sends_it_again(env, hooks, database):
    shop = await hooks.shop("generic")
    await teach(hooks, shop, "generic")
    code, out = await nudge("customer", "erase", "--shop", str(shop.id), "--email", EMAIL, "--yes")
    assert code == 0, out
    await hooks.deliver(
        shop,
        "customer.upserted",
        _generic("c-2", "2026-03-02T10:00:00Z", {**GENERIC_CUSTOMER, "first_name": "Lesia"}),
    )
    assert await rows(database, Customer, Customer.redacted_hash.is_(None)) == []
    assert {(c.email, c.first_name) for c in await rows(database, Customer)} == {(None, None)}
    # the delivery that named the erased person keeps nothing of them either
    last = (await rows(database, Inbox))[-1]
    assert EMAIL.encode() not in last.body and b"Lesia" not in last.body


# -------------------------------------------------------------------------------- export


async def test_customer_export_includes_the_raw_deliveries(env, hooks, database):
    shop = await hooks.shop("shopify")
    await teach(hooks, shop, "shopify")
    other = shopify_order(990001, "chk-other")
    other["customer"] = {"id": 42, "email": "someone.else@example.com"}
    other["email"] = other["contact_email"] = "someone.else@example.com"
    other["phone"], other["billing_address"], other["shipping_address"] = None, None, None
    await hooks.deliver(shop, "orders/create", other)
    olesia = next(c for c in await rows(database, Customer) if c.email == EMAIL)

    for extra in ((), ("--json",)):
        code, out = await nudge(
            "customer", "export", str(olesia.id), "--shop", str(shop.id), *extra
        )
        assert code == 0, out
        export = json.loads(out)
        for key in ("shop_id", "customer_id", "profile", "events", "carts", "orders", "outbox"):
            assert key in export
        topics = sorted(d["topic"] for d in export["deliveries"])
        assert topics == ["checkouts/create", "customers/create", "orders/create", "orders/create"]
        bodies = [d["body"] for d in export["deliveries"]]
        orders = {d["body"]["id"] for d in export["deliveries"] if d["topic"] == "orders/create"}
        assert orders == {880001, 880002}
        assert all(b.get("email") == EMAIL for b in bodies)
        assert export["deliveries"][0]["body"]["default_address"] == ADDRESS
        assert "conversation_state" in export


# -------------------------------------------------------------------------------- errors


async def test_database_errors_never_hold_sql_parameters(hooks, database, clock):
    shop = await hooks.shop("shopify")
    await hooks.deliver(shop, "customers/create", shopify_customer())
    async with refusing_customer_updates(database):
        changed = shopify_customer(
            "2026-03-01T13:00:00Z", first_name="Lesia", phone="+380671112244"
        )
        assert (await hooks.post(shop, "customers/update", changed))[0] == 200
        report = await hooks.worker.run_until_idle()
    assert len(report.errors) == 1 and "refused by the test" in report.errors[0]
    (failed,) = await rows(database, Inbox, Inbox.last_error.is_not(None))
    assert "refused by the test" in failed.last_error
    for value in ("Lesia", "+380671112244", *PERSONAL):
        assert value not in failed.last_error
        assert value not in report.errors[0]

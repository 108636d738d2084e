"""Helpers of the privacy tests: one customer's personal data, and what the database files hold."""

from __future__ import annotations

import asyncio
import os
import subprocess
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from ingest_helpers import fixture_json
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.db import transaction
from bot.models import (
    Click,
    Customer,
    CustomerEvent,
    FsmRecord,
    Outbox,
    OutboxState,
    Shop,
)

EMAIL = "olesia.zaboronska@example.com"
PHONE = "+380671112233"
PHONE_AS_TYPED = "067 111 22 33"
FIRST, LAST = "Olesia", "Zaboronska"
STREET = "Erasure Lane 17"
CHAT_ID = 555001
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
# What must not be left anywhere once the customer is erased (the first name is too common).
PERSONAL = (EMAIL, PHONE, PHONE.lstrip("+"), PHONE_AS_TYPED, LAST, STREET)

ADDRESS = {
    "first_name": FIRST,
    "last_name": LAST,
    "name": f"{FIRST} {LAST}",
    "address1": STREET,
    "city": "Kyiv",
    "zip": "01001",
    "phone": PHONE_AS_TYPED,
    "country_code": "UA",
}


def shopify_customer(updated_at: str = "2026-03-01T10:00:00Z", **changes: Any) -> dict:
    """Return a Shopify customer resource of the customer."""
    payload = fixture_json("shopify/customers/create.json")
    payload.update(
        id=7001,
        admin_graphql_api_id="gid://shopify/Customer/7001",
        email=EMAIL,
        phone=PHONE,
        first_name=FIRST,
        last_name=LAST,
        note=f"call {PHONE_AS_TYPED}",
        addresses=[ADDRESS],
        default_address=ADDRESS,
        updated_at=updated_at,
    )
    payload.update(changes)
    return payload


def _embedded_customer() -> dict:
    customer = shopify_customer()
    return {k: customer[k] for k in ("id", "email", "phone", "first_name", "last_name")} | {
        "admin_graphql_api_id": "gid://shopify/Customer/7001",
        "default_address": ADDRESS,
    }


def shopify_checkout(token: str = "chk-erasure-1") -> dict:
    """Return a Shopify checkout of the customer with their addresses."""
    payload = fixture_json("shopify/checkouts/create.json")
    payload.update(
        token=token,
        email=EMAIL,
        phone=PHONE,
        sms_marketing_phone=PHONE,
        billing_address=ADDRESS,
        shipping_address=ADDRESS,
        customer=_embedded_customer(),
        updated_at="2026-03-01T11:00:00Z",
    )
    return payload


def shopify_order(order_id: int = 880001, checkout: str = "chk-erasure-1") -> dict:
    """Return a Shopify order of the customer with their addresses."""
    payload = fixture_json("shopify/orders/create.json")
    payload.update(
        id=order_id,
        admin_graphql_api_id=f"gid://shopify/Order/{order_id}",
        email=EMAIL,
        contact_email=EMAIL,
        phone=PHONE,
        checkout_token=checkout,
        billing_address=ADDRESS,
        shipping_address=ADDRESS,
        customer=_embedded_customer(),
        updated_at="2026-03-01T12:00:00Z",
    )
    return payload


def shopify_redact(shop: Shop, orders: list[int]) -> dict:
    """Return Shopify's customers/redact for the customer."""
    return {
        "shop_id": 954889,
        "shop_domain": "kvitka.myshopify.com",
        "customer": {"id": 7001, "email": EMAIL, "phone": PHONE},
        "orders_to_redact": orders,
    }


async def messenger_traces(database: Any, customer_id: int, clock: Any) -> None:
    """Store what the chat with the customer leaves: link, state, messages, answers, a click."""
    now = clock.now()
    async with transaction(database.sessions) as session:
        customer = await session.get(Customer, customer_id)
        customer.telegram_chat_id = CHAT_ID
        customer.telegram_username = "olesia_z"
        customer.attributes = {"size": "M", "nickname": LAST}
        customer.nps_score = 9
        session.add(customer)
        shop_id = customer.shop_id
        session.add(
            FsmRecord(
                key=f"nudge:fsm:123456789:{CHAT_ID}:{CHAT_ID}:default",
                bot_id=123456789,
                chat_id=CHAT_ID,
                user_id=CHAT_ID,
                state="BirthdaySurvey:day",
                data={"draft": f"{LAST} {PHONE_AS_TYPED}"},
                expires_at=now + timedelta(days=1),
                updated_at=now,
            )
        )
        sent = Outbox(
            shop_id=shop_id,
            customer_id=customer_id,
            kind="cart.reminder",
            lane="reminder",
            payload={"greeting": f"Hi {FIRST} {LAST}", "email": EMAIL},
            dedupe_key="cart:1:reminder:1",
            due_at=now,
            state=OutboxState.SENT,
            telegram_message_id=42,
            last_error=f"earlier failure for {EMAIL}",
            created_at=now,
            updated_at=now,
        )
        later = Outbox(
            shop_id=shop_id,
            customer_id=customer_id,
            kind="support.answer",
            lane="transactional",
            payload={"text": f"{FIRST}, we called {PHONE}"},
            dedupe_key="support:1",
            due_at=now + timedelta(hours=1),
            created_at=now,
            updated_at=now,
        )
        session.add_all([sent, later])
        await session.flush()
        session.add(
            Click(shop_id=shop_id, outbox_id=sent.id, customer_id=customer_id, target="order")
        )
        for kind, payload in (
            ("reply", {"content": "text", "text": f"it is {LAST}, call {PHONE_AS_TYPED}"}),
            ("survey_answered", {"attribute": "nickname", "value": LAST}),
            ("nps_answered", {"score": 9, "order_id": "880001", "outbox_id": sent.id}),
            ("telegram_linked", {"chat_id": CHAT_ID}),
        ):
            session.add(
                CustomerEvent(
                    shop_id=shop_id,
                    customer_id=customer_id,
                    type=kind,
                    source="telegram",
                    payload=payload,
                    occurred_at=now,
                )
            )


async def stored_bytes(database: Any) -> bytes:
    """Return every byte the database keeps: SQLite's files after a checkpoint, or a pg_dump."""
    if database.backend == "sqlite":
        async with database.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        path = Path(make_url(database.url).database)
        files = [path, path.with_name(path.name + "-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    url = make_url(database.url)
    command = ["pg_dump", "--no-owner", "-h", url.host, "-p", str(url.port or 5432)]
    command += ["-U", url.username or "postgres", url.database]
    dump = await asyncio.to_thread(
        subprocess.run,
        command,
        capture_output=True,
        check=True,
        env={**os.environ, "PGPASSWORD": url.password or ""},
        timeout=60,
    )
    return dump.stdout


def leftovers(data: bytes, values: tuple[str, ...] = PERSONAL) -> list[str]:
    """Return the values found in the bytes, as text or as pg_dump's hex of a bytea."""
    lowered = data.lower()
    return [
        v for v in values if v.lower().encode() in lowered or v.encode().hex().encode() in lowered
    ]


@asynccontextmanager
async def refusing_customer_updates(database: Any):
    """Make every UPDATE of customers fail in the database (a trigger), as a real fault would."""
    if database.backend == "sqlite":
        create = [
            "CREATE TRIGGER refuse_customer_update BEFORE UPDATE ON customers "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ]
        drop = ["DROP TRIGGER IF EXISTS refuse_customer_update"]
    else:
        create = [
            "CREATE FUNCTION refuse_customer_update() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_customer_update BEFORE UPDATE ON customers "
            "FOR EACH ROW EXECUTE FUNCTION refuse_customer_update()",
        ]
        drop = [
            "DROP TRIGGER IF EXISTS refuse_customer_update ON customers",
            "DROP FUNCTION IF EXISTS refuse_customer_update()",
        ]
    async with database.engine.begin() as conn:
        for statement in create:
            await conn.execute(text(statement))
    try:
        yield
    finally:
        async with database.engine.begin() as conn:
            for statement in drop:
                await conn.execute(text(statement))

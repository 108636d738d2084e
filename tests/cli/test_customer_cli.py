"""Finding a customer and seeing why they did (not) get a message: `nudge customer list|show`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from cli_helpers import anudge, one_line_error

from bot.db import transaction
from bot.models import (
    CustomerMetrics,
    Exclusion,
    Order,
    Outbox,
    OutboxState,
    PromoCode,
    PromoPool,
)
from bot.store.customers import add_customer
from bot.store.shops import create_shop

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
async def shop(env):
    """A Ukrainian shop with Olena (linked, with history), Marta, John and another shop's Olena."""
    async with transaction(env.database.sessions) as session:
        kvitka = await create_shop(
            session=session, name="Kvitka", platform="shopify", country="UA", now=NOW
        )
        other = await create_shop(session=session, name="Other", platform="generic", now=NOW)
        olena = await add_customer(
            session=session,
            shop_id=kvitka.id,
            now=NOW,
            first_name="Олена",
            last_name="Коваль",
            email="OLENA@example.com",
            phone="+380671234567",
            telegram_chat_id=1001,
            telegram_username="olena_k",
            consent="opted_in",
            consent_source="deep_link",
            consent_at=NOW,
            locale="uk",
        )
        await add_customer(
            session=session, shop_id=kvitka.id, now=NOW, first_name="Marta", email="m@x.pl"
        )
        await add_customer(
            session=session, shop_id=kvitka.id, now=NOW, first_name="John", phone="+48601000000"
        )
        await add_customer(session=session, shop_id=other.id, now=NOW, first_name="Олена")
        rows = [
            ("cart.reminder", OutboxState.SENT, None, None),
            ("cart.followup", OutboxState.SKIPPED, "excluded", None),
            ("cart.followup", OutboxState.SKIPPED, "frequency_cap", None),
            ("cart.reminder", OutboxState.CANCELLED, "ordered", None),
            ("cart.reminder", OutboxState.SCHEDULED, "quiet_hours", None),
            ("support.reply", OutboxState.FAILED, None, "Bad Request: message is too long"),
            ("cart.reminder", OutboxState.SKIPPED, "something_new", None),
        ]
        for n, (kind, state, reason, error) in enumerate(rows):
            session.add(
                Outbox(
                    shop_id=kvitka.id,
                    customer_id=olena.id,
                    kind=kind,
                    topic="Dresses",
                    dedupe_key=f"test:{n}",
                    due_at=NOW + timedelta(minutes=n),
                    state=state,
                    skip_reason=reason,
                    last_error=error,
                    sent_at=NOW if state == OutboxState.SENT else None,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
        session.add(
            Exclusion(shop_id=kvitka.id, customer_id=olena.id, topic="Dresses", created_at=NOW)
        )
        pool = PromoPool(shop_id=kvitka.id, name="followup", created_at=NOW)
        session.add(pool)
        await session.flush()
        session.add(
            PromoCode(
                shop_id=kvitka.id,
                pool_id=pool.id,
                code="HELLO-ABC123",
                customer_id=olena.id,
                issued_at=NOW,
                created_at=NOW,
            )
        )
        session.add(
            Order(
                shop_id=kvitka.id,
                customer_id=olena.id,
                external_id="1001",
                total=Decimal("2231.00"),
                currency="UAH",
                placed_at=NOW,
                updated_at=NOW,
            )
        )
        session.add(
            CustomerMetrics(
                customer_id=olena.id,
                shop_id=kvitka.id,
                orders_count=1,
                revenue=Decimal("2231.00"),
                stage="new",
                rfm_cell="345",
                refreshed_at=NOW,
            )
        )
    return {"shop": kvitka.id, "other": other.id, "olena": olena.id}


async def listed(shop_id: int, *args: str) -> list[dict]:
    code, out = await anudge("customer", "list", "--shop", str(shop_id), *args, "--json")
    assert code == 0, out
    return json.loads(out)


async def test_a_query_matches_name_email_phone_or_telegram_in_any_case(shop):
    names = {
        query: [c["name"] for c in await listed(shop["shop"], "--query", query)]
        for query in ("олена", "КОВАЛЬ", "olena@", "067 123 45 67", "+380671234567", "1001",
                      "@olena_k", "marta", "nobody")
    }  # fmt: skip
    olena = ["Олена Коваль"]
    assert names == {
        "олена": olena,
        "КОВАЛЬ": olena,
        "olena@": olena,
        "067 123 45 67": olena,
        "+380671234567": olena,
        "1001": olena,
        "@olena_k": olena,
        "marta": ["Marta"],
        "nobody": [],
    }, "and never the other shop's Олена"


async def test_the_list_shows_who_and_how_to_reach_them(shop):
    everyone = await listed(shop["shop"])
    assert [c["name"] for c in everyone] == ["John", "Marta", "Олена Коваль"], "newest first"
    assert everyone[2] == {
        "id": shop["olena"],
        "name": "Олена Коваль",
        "email": "olena@example.com",
        "phone": "+380671234567",
        "telegram_id": 1001,
        "telegram_username": "olena_k",
        "consent": "opted_in",
        "redacted": False,
    }
    assert len(await listed(shop["shop"], "--limit", "1")) == 1
    code, out = await anudge("customer", "list", "--shop", str(shop["shop"]), "--query", "олена")
    assert code == 0 and "Олена Коваль" in out and "olena@example.com" in out and "tg 1001" in out


async def test_customer_show_answers_why_they_did_not_get_it(shop):
    code, out = await anudge("customer", "show", str(shop["olena"]), "--json")
    assert code == 0, out
    card = json.loads(out)
    assert card["profile"]["first_name"] == "Олена"
    assert card["consent"]["consent"] == "opted_in"
    assert card["consent"]["telegram_chat_id"] == 1001
    assert card["exclusions"][0]["topic"] == "Dresses"
    assert card["codes"][0] == {
        "pool": "followup",
        "code": "HELLO-ABC123",
        "issued_at": NOW.isoformat(),
        "message_id": None,
    }
    assert card["orders"][0]["total"] == "2231.00" and card["orders"][0]["status"] == "placed"
    assert card["metrics"]["stage"] == "new" and card["metrics"]["rfm_cell"] == "345"
    why = [(m["state"], m["reason"], m["why"]) for m in card["messages"]]
    assert why == [
        ("sent", None, None),
        ("skipped", "excluded", "the customer tapped “Not interested” on this topic"),
        (
            "skipped",
            "frequency_cap",
            "the shop's frequency cap (frequency_cap per frequency_window) was reached",
        ),
        ("cancelled", "ordered", "the customer ordered"),
        (
            "scheduled",
            "quiet_hours",
            "waiting for the end of quiet hours in the customer's time zone",
        ),
        ("failed", None, "sending failed (see error)"),
        ("skipped", "something_new", "something new"),
    ]
    assert card["messages"][5]["error"] == "Bad Request: message is too long"

    code, out = await anudge("customer", "show", str(shop["olena"]))
    assert code == 0
    assert "customer" in out and "Олена Коваль" in out
    assert "not interested in:\n  Dresses" in out
    assert "HELLO-ABC123 from pool followup" in out
    assert "stage: new" in out and "RFM 345" in out
    assert "skipped: the customer tapped “Not interested” on this topic" in out
    assert "failed: sending failed (see error) (Bad Request: message is too long)" in out


async def test_a_customer_without_metrics_or_history(shop):
    code, out = await anudge("customer", "list", "--shop", str(shop["shop"]), "--query", "marta")
    marta = next(line.split()[0] for line in out.splitlines() if "Marta" in line)
    code, out = await anudge("customer", "show", marta)
    assert code == 0 and "stage: not computed yet" in out and "messages: 0" in out
    assert "no Telegram chat linked" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["show", "999"], 1, "nudge: no customer with id 999"),
        (["list", "--shop", "999"], 1, "nudge: no shop with id 999"),
        (["list", "--shop", "SHOP", "--query", "a\x00b"], 2, "nudge: error: --query must be"),
        (["list", "--shop", "SHOP", "--query", "x" * 201], 2, "nudge: error: --query must be"),
    ],
)
async def test_missing_and_bad_input(shop, args, code, message):
    args = [a.replace("SHOP", str(shop["shop"])) for a in args]
    got, out = await anudge("customer", *args)
    assert got == code and one_line_error(out).startswith(message), out


async def test_a_customer_of_another_shop_is_not_found_there(shop):
    code, out = await anudge("customer", "show", str(shop["olena"]), "--shop", str(shop["other"]))
    assert code == 1 and f"no customer with id {shop['olena']} in shop {shop['other']}" in out
    code, out = await anudge("customer", "list", "--shop", str(shop["shop"]), "--limit", "0")
    assert code == 2, "limits run from 1 to 1000"

"""`nudge shop check` as cron and monitoring use it: a non-zero exit when a shop needs care."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

from ingest_helpers import fixture_json
from sqlalchemy import update
from test_ingest_cli import env, run  # noqa: F401  (the env fixture)

from bot.db import transaction
from bot.models import Shop


async def check(shop_id: int, *args: str) -> tuple[int, dict]:
    code, out = await run("shop", "check", str(shop_id), "--json", *args)
    return code, json.loads(out)


async def test_a_healthy_shop_is_ok_and_exits_0(env, hooks):  # noqa: F811
    hooks.clock.set(datetime.now(UTC))
    shop = await hooks.shop("generic")
    await hooks.deliver(shop, "cart.updated", fixture_json("generic/cart.updated.json"))
    code, record = await check(shop.id)
    assert (code, record["ok"], record["warnings"]) == (0, True, [])
    assert record["pending"] == 0 and record["signature_failures"] == 0
    code, out = await run("shop", "check", str(shop.id))
    assert code == 0 and out.rstrip().endswith("ok")


async def test_a_stuck_backlog_is_reported_with_its_age(env, hooks):  # noqa: F811
    hooks.clock.set(datetime.now(UTC) - timedelta(minutes=10))
    shop = await hooks.shop("generic")
    for n in range(114):
        payload = fixture_json("generic/cart.updated.json")
        payload["id"] = f"evt-{n}"
        await hooks.post(shop, "cart.updated", payload)
    code, record = await check(shop.id)  # received 10 minutes ago, none applied since
    assert code == 3 and record["ok"] is False
    assert record["pending"] == 114
    assert len(record["warnings"]) == 1
    assert 590 <= record["oldest_pending_seconds"] <= 700
    assert any("114 deliveries pending" in w for w in record["warnings"])
    code, out = await run("shop", "check", str(shop.id))
    assert code == 3 and "oldest pending for 10m" in out
    code, record = await check(shop.id, "--backlog-age", "1h")
    assert (code, record["ok"]) == (0, True)


async def test_bad_signatures_are_counted_logged_and_reported(env, hooks, database, caplog):  # noqa: F811
    hooks.clock.set(datetime.now(UTC))
    shop = await hooks.shop("woocommerce")
    body = fixture_json("woocommerce/order.created.json")
    await hooks.deliver(shop, "order.created", body)
    forged = {"X-WC-Webhook-Signature": "bm90IHRoZSBzaWduYXR1cmU="}
    with caplog.at_level(logging.WARNING, logger="bot.web.hooks"):
        for _ in range(3):
            assert (await hooks.post(shop, "order.updated", body, headers=forged))[0] == 401
    assert f"shop {shop.id}: a woocommerce delivery failed its signature check" in caplog.text
    code, record = await check(shop.id)
    assert code == 3 and record["signature_failures"] == 3
    assert record["last_signature_failure_at"] is not None
    assert any("failed the signature check" in w for w in record["warnings"])

    await hooks.deliver(shop, "order.updated", fixture_json("woocommerce/order.updated.json"))
    code, record = await check(shop.id)  # the secret is right again; the failure was recent
    assert code == 3 and record["signature_failures"] == 0
    assert any("failed the signature check at" in w for w in record["warnings"])
    async with transaction(database.sessions) as session:
        await session.execute(
            update(Shop).values(last_signature_failure_at=datetime.now(UTC) - timedelta(days=2))
        )
    code, record = await check(shop.id)
    assert (code, record["warnings"]) == (0, [])


async def test_a_woocommerce_ping_counts_as_a_delivery(env, hooks, client, database):  # noqa: F811
    hooks.clock.set(datetime.now(UTC))
    shop = await hooks.shop("woocommerce")
    async with client.post(f"/hooks/woocommerce/{shop.id}", data=b"webhook_id=31") as response:
        assert response.status == 200
    code, record = await check(shop.id)
    assert (code, record["ok"]) == (0, True)
    assert record["last_delivery_at"] is not None
    async with transaction(database.sessions) as session:
        assert (await session.get(Shop, shop.id)).signature_failures == 0

"""The inbox worker: retries with backoff, parks, keeps per-customer order, survives kills."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from ingest_helpers import fixture_json
from sqlalchemy import select

from bot import flows
from bot.models import Cart, CustomerEvent, Inbox
from integrations import CartUpdated


async def inbox_rows(database):
    async with database.sessions() as session:
        return list((await session.scalars(select(Inbox).order_by(Inbox.id))).all())


def cart_delivery(n: int, *, email: str, token: str | None = None) -> dict:
    payload = fixture_json("generic/cart.updated.json")
    payload["id"] = f"evt-{n}"
    payload["occurred_at"] = f"2025-05-01T12:{n:02d}:00Z"
    payload["data"]["token"] = token or f"cart-{email}"
    payload["data"]["customer"] = {"email": email}
    return payload


@pytest.fixture
def failing_flow(monkeypatch):
    """A cart flow that fails for carts whose token is in `broken`."""
    broken: set[str] = set()

    async def flow(context, event):
        if event.token in broken:
            raise RuntimeError(f"flow failed for {event.token}")

    monkeypatch.setitem(flows._HANDLERS, CartUpdated, [flow])
    return broken


async def test_failures_retry_with_backoff_then_park_with_the_error(
    hooks, database, worker, failing_flow
):
    shop = await hooks.shop("generic")
    failing_flow.add("cart-a@example.com")
    await hooks.post(shop, "cart.updated", cart_delivery(1, email="a@example.com"))
    delays = []
    for _ in range(worker.max_attempts):
        report = await worker.run_once()
        (row,) = await inbox_rows(database)
        delays.append(row.next_attempt_at - hooks.clock.now())
        assert report.done == 0 and report.errors
        hooks.clock.set(row.next_attempt_at)
    assert row.state == "parked" and row.attempts == worker.max_attempts
    assert "flow failed for cart-a@example.com" in row.last_error
    assert delays[:2] == [timedelta(seconds=10), timedelta(seconds=20)]
    async with database.sessions() as session:
        assert (await session.scalars(select(Cart))).all() == []  # rolled back every time


async def test_a_waiting_delivery_holds_back_later_ones_of_the_same_customer(
    hooks, database, worker, failing_flow
):
    shop = await hooks.shop("generic")
    failing_flow.add("cart-a@example.com")
    await hooks.post(shop, "cart.updated", cart_delivery(1, email="a@example.com"))
    later = cart_delivery(2, email="a@example.com", token="cart-a2")
    await hooks.post(shop, "cart.updated", later)
    await hooks.post(shop, "cart.updated", cart_delivery(3, email="b@example.com"))
    report = await worker.run_until_idle()
    states = [(r.id, r.state, r.attempts) for r in await inbox_rows(database)]
    assert states == [(1, "pending", 1), (2, "pending", 0), (3, "done", 0)]
    assert report.deferred >= 1

    failing_flow.clear()
    hooks.clock.advance(timedelta(seconds=10))
    await worker.run_until_idle()
    assert [r.state for r in await inbox_rows(database)] == ["done", "done", "done"]
    async with database.sessions() as session:
        events = (await session.scalars(select(CustomerEvent).order_by(CustomerEvent.id))).all()
    assert [e.payload["token"] for e in events] == [
        "cart-b@example.com",
        "cart-a@example.com",
        "cart-a2",
    ]


async def test_parked_delivery_can_be_retried(hooks, database, worker, failing_flow):
    from bot.db import transaction
    from bot.store.inbox import retry_delivery

    shop = await hooks.shop("generic")
    failing_flow.add("cart-a@example.com")
    await hooks.post(shop, "cart.updated", cart_delivery(1, email="a@example.com"))
    for _ in range(worker.max_attempts):
        await worker.run_once()
        hooks.clock.advance(timedelta(hours=2))
    assert (await inbox_rows(database))[0].state == "parked"
    failing_flow.clear()
    async with transaction(database.sessions) as session:
        await retry_delivery(session=session, inbox_id=1, now=hooks.clock.now())
    await worker.run_until_idle()
    assert (await inbox_rows(database))[0].state == "done"


async def test_a_worker_killed_mid_delivery_loses_nothing(hooks, database, worker, monkeypatch):
    shop = await hooks.shop("generic")
    for n in (1, 2):
        await hooks.post(shop, "cart.updated", cart_delivery(n, email=f"{n}@example.com"))
    entered = asyncio.Event()

    async def hang(context, event):
        if event.token == "cart-2@example.com":
            entered.set()
            await asyncio.Event().wait()

    monkeypatch.setitem(flows._HANDLERS, CartUpdated, [hang])
    task = asyncio.create_task(worker.run_once())
    await asyncio.wait_for(entered.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [(r.state, r.attempts) for r in await inbox_rows(database)] == [
        ("done", 0),
        ("pending", 0),
    ]
    async with database.sessions() as session:
        assert len((await session.scalars(select(Cart))).all()) == 1

    monkeypatch.setitem(flows._HANDLERS, CartUpdated, [])
    report = await worker.run_until_idle()
    assert report.done == 1
    async with database.sessions() as session:
        assert len((await session.scalars(select(Cart))).all()) == 2


async def test_background_worker_applies_deliveries(database, settings, clock):
    from aiohttp.test_utils import TestClient, TestServer
    from ingest_helpers import signed_headers

    from bot.app import build_app
    from bot.db import transaction
    from bot.store.shops import create_shop

    async with transaction(database.sessions) as session:
        shop = await create_shop(session=session, name="g", platform="generic", now=clock.now())
    app = build_app(settings, engine=database.engine, clock=clock, workers=True)
    body = json.dumps(fixture_json("generic/cart.updated.json")).encode()
    async with TestClient(TestServer(app)) as client:
        headers = signed_headers(shop, "cart.updated", body)
        async with client.post(f"/hooks/generic/{shop.id}", data=body, headers=headers) as r:
            assert r.status == 200
        for _ in range(100):
            if (await inbox_rows(database))[0].state == "done":
                break
            await asyncio.sleep(0.05)
    assert (await inbox_rows(database))[0].state == "done"

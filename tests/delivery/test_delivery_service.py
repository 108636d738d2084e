"""The Courier inside the service, its metrics, `nudge outbox stats`, and the kind registry."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from aiohttp import web
from click.testing import CliRunner
from delivery_support import stamped_at_head

from bot import metrics
from bot.app import build_app
from bot.cli import cli
from bot.messages.render import Rendered, get_kind, register_kind, registered_kinds
from bot.models import Lane


async def test_the_service_delivers_the_outbox_and_shows_metrics(
    shopfront, database, settings, clock
):
    customer, person = await shopfront.customer()
    await shopfront.schedule(customer, "Order shipped")
    app = build_app(settings, engine=database.engine, clock=clock, workers=True)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        message = await person.next_message(timeout=10)
    finally:
        await runner.cleanup()
    assert message.text == "Order shipped"
    body, _ = metrics.render()
    text = body.decode()
    assert 'nudge_outbox_sent_total{channel="telegram",lane="transactional"}' in text
    assert "nudge_outbox_queue_depth" in text and "nudge_telegram_retry_after_total" in text


async def test_without_workers_nothing_is_sent(shopfront, database, settings, clock):
    customer, person = await shopfront.customer()
    row = await shopfront.schedule(customer, "Order shipped")
    app = build_app(settings, engine=database.engine, clock=clock, workers=False)
    runner = web.AppRunner(app)
    await runner.setup()
    await asyncio.sleep(0.3)
    await runner.cleanup()
    assert person.bot_messages() == []
    assert (await shopfront.row(row)).state == "scheduled"


async def test_outbox_stats_prints_states_reasons_and_lag(shopfront, make_courier, monkeypatch):
    customer, _ = await shopfront.customer()
    await shopfront.schedule(customer, "Sale", lane=Lane.PROMO, topic="shoes")
    await shopfront.schedule(customer, "Sale 2", lane=Lane.PROMO)
    await make_courier().run_once()  # one sent, one capped
    await shopfront.schedule(
        customer, "Later", due_at=shopfront.clock.now() - timedelta(minutes=1)
    )
    monkeypatch.setenv("NUDGE_DATABASE_URL", shopfront.database.url)
    monkeypatch.setenv("NUDGE_SECRET_KEY", "test-secret-key-0123456789")

    def invoke(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    async with stamped_at_head(shopfront.database.engine):
        code, out = await asyncio.to_thread(
            invoke, "outbox", "stats", "--shop", str(shopfront.shop.id), "--json"
        )
        assert code == 0, out
        human_code, human = await asyncio.to_thread(invoke, "outbox", "stats")
    stats = json.loads(out)
    assert stats["states"]["sent"] == 1 and stats["states"]["skipped"] == 1
    assert stats["skipped"] == {"frequency_cap": 1}
    assert stats["queue_depth"] == 1  # due a minute ago by the test clock, now by the wall's
    assert stats["oldest_due_lag_seconds"] > 0
    assert human_code == 0 and "skipped/frequency_cap: 1" in human and "queue depth: 1" in human


def test_kinds_register_once_with_a_decorator_or_a_call():
    @register_kind("test_registry_kind")
    def render(ctx: object) -> Rendered:
        return Rendered("hi")

    assert get_kind("test_registry_kind").render is render
    assert "text" in registered_kinds() and "test_registry_kind" in registered_kinds()
    with pytest.raises(ValueError, match="already registered"):
        register_kind("test_registry_kind", render=lambda ctx: Rendered("other"))
    register_kind("test_registry_kind", render=render)  # the same function again is fine
    replacement = register_kind(
        "test_registry_kind", render=lambda ctx: Rendered("new"), replace=True
    )
    assert get_kind("test_registry_kind").render is replacement

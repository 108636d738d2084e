"""`nudge report lifecycle`: how many are unreachable and how many blocked the bot, per stage,
in text and --json, and the chart as SVG or PNG."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from PIL import Image

from bot.charts import lifecycle_png
from bot.cli import cli
from bot.db import transaction
from bot.lifecycle import LifecycleReport
from bot.models import Consent, Order
from bot.store.customers import add_customer
from bot.store.shops import create_shop


@pytest.fixture
async def env(cli_database, monkeypatch, tmp_path, clock):
    """Buyers of one order 200 days ago (at_risk): two reachable, one who blocked the bot, one
    never linked; and a linked prospect who blocked the bot."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NUDGE_DATABASE_URL", cli_database.url)
    monkeypatch.setenv("NUDGE_SECRET_KEY", "test-secret-key-0123456789")
    now = clock.now()
    async with transaction(cli_database.sessions) as session:
        shop = await create_shop(session=session, name="Kvitka", platform="generic", now=now)
        people = [(501, None), (502, None), (503, now), (None, None)]
        for n, (chat, gone) in enumerate(people):
            customer = await add_customer(
                session=session,
                shop_id=shop.id,
                now=now,
                first_name=f"C{n}",
                telegram_chat_id=chat,
                consent=Consent.OPTED_IN if chat else Consent.UNKNOWN,
                unreachable_since=gone,
            )
            session.add(
                Order(
                    shop_id=shop.id,
                    customer_id=customer.id,
                    external_id=f"o{n}",
                    placed_at=datetime.now(UTC) - timedelta(days=200),  # the CLI's clock
                    updated_at=now,
                )
            )
        await add_customer(
            session=session,
            shop_id=shop.id,
            now=now,
            first_name="P",
            telegram_chat_id=504,
            consent=Consent.OPTED_IN,
            unreachable_since=now,
        )
    return shop.id


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_unreachable_and_blocked_per_stage_with_a_png_chart(env, tmp_path):
    assert invoke("customer", "refresh", "--shop", str(env))[0] == 0
    chart = tmp_path / "stages.png"
    code, out = invoke("report", "lifecycle", "--shop", str(env), "--json", "--chart", str(chart))
    assert code == 0, out
    report = json.loads(out)
    assert report["stages"]["at_risk"] == 4 and report["stages"]["prospect"] == 1
    assert report["unreachable"]["at_risk"] == 2 and report["blocked"]["at_risk"] == 1
    assert report["unreachable"]["prospect"] == 1 and report["blocked"]["prospect"] == 1
    assert report["blocked"]["active"] == 0
    data = chart.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and image.size[0] == 640

    code, out = invoke("report", "lifecycle", "--shop", str(env))
    assert code == 0
    assert "at_risk          4   unreachable 2 (blocked the bot 1)" in out
    code, out = invoke("report", "lifecycle", "--shop", str(env), "--chart", "stages.svg")
    assert code == 0 and "2 unreachable, 1 blocked" in (tmp_path / "stages.svg").read_text()


def test_a_chart_that_cannot_be_written_is_one_plain_error(env, tmp_path):
    missing = tmp_path / "no" / "such" / "dir" / "stages.png"
    code, out = invoke("report", "lifecycle", "--shop", str(env), "--chart", str(missing))
    assert code == 2 and "cannot write the chart" in out and "Traceback" not in out


def test_an_empty_shop_still_draws():
    empty = LifecycleReport(1, 30, dict.fromkeys(("prospect", "new"), 0), {}, {}, {})
    with Image.open(io.BytesIO(lifecycle_png(empty))) as image:
        image.verify()
    huge = LifecycleReport(1, 30, {"lapsed": 10**12}, {"lapsed": 10**12}, {}, {"lapsed": 5})
    assert lifecycle_png(huge).startswith(b"\x89PNG")

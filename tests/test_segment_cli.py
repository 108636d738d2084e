"""`nudge segment …` as a shop owner uses it: save, list, show, preview, delete, bad input."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.db import transaction
from bot.models import Consent
from bot.store.customers import add_customer
from bot.store.shops import create_shop


@pytest.fixture
async def env(cli_database, monkeypatch, tmp_path, clock):
    """A shop with three linked customers (uk, uk, pl) and one who opted out."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NUDGE_DATABASE_URL", cli_database.url)
    monkeypatch.setenv("NUDGE_SECRET_KEY", "test-secret-key-0123456789")
    async with transaction(cli_database.sessions) as session:
        shop = await create_shop(
            session=session, name="Kvitka", platform="generic", now=clock.now()
        )
        people = [("uk", Consent.OPTED_IN), ("uk", Consent.OPTED_IN), ("pl", Consent.OPTED_IN)]
        people.append(("uk", Consent.OPTED_OUT))
        for n, (locale, consent) in enumerate(people):
            await add_customer(
                session=session,
                shop_id=shop.id,
                now=clock.now(),
                first_name=f"C{n}",
                locale=locale,
                telegram_chat_id=100 + n,
                consent=consent,
            )
    return shop.id


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def spec(tmp_path, definition, name="spec.json"):
    path = tmp_path / name
    path.write_text(json.dumps(definition), encoding="utf-8")
    return str(path)


def test_a_segment_is_saved_listed_previewed_and_deleted(env, tmp_path):
    shop = str(env)
    ukrainian = spec(tmp_path, {"field": "locale", "op": "=", "value": "uk"})
    code, out = invoke("segment", "create", "--shop", shop, "--name", "uk", "--file", ukrainian)
    assert code == 0, out
    code, out = invoke("segment", "list", "--shop", shop, "--json")
    assert [s["name"] for s in json.loads(out)] == ["uk"]
    code, out = invoke("segment", "show", "--shop", shop, "--name", "uk", "--json")
    assert json.loads(out)["definition"] == {"field": "locale", "op": "=", "value": "uk"}

    code, out = invoke("segment", "preview", "--shop", shop, "--name", "uk", "--json")
    assert code == 0, out
    preview = json.loads(out)
    assert preview["count"] == 2  # the third Ukrainian opted out
    assert preview["by_locale"] == {"uk": 2} and preview["by_stage"] == {"prospect": 2}
    assert [p["name"] for p in preview["sample"]] == ["C0", "C1"]

    everyone = spec(tmp_path, {"all": []}, "all.json")
    code, out = invoke("segment", "preview", "--shop", shop, "--file", everyone)
    assert code == 0 and out.startswith("3 customers")
    assert "by locale: pl 1, uk 2" in out

    code, out = invoke("segment", "delete", "--shop", shop, "--name", "uk")
    assert code == 0, out
    code, out = invoke("segment", "show", "--shop", shop, "--name", "uk")
    assert code == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"field": "stag", "op": "=", "value": "new"}', "unknown field 'stag'"),
        ('{"field": "locale", "op": "~", "value": "uk"}', "unknown operator '~'"),
        ("{not json", "not JSON"),
        ('{"field": "segment", "op": "=", "value": "missing"}', "no saved segment"),
    ],
)
def test_a_bad_definition_is_refused_in_one_line_and_nothing_is_saved(
    env, tmp_path, content, message
):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    code, out = invoke("segment", "create", "--shop", str(env), "--name", "x", "--file", str(path))
    assert code == 2 and message in out and len(out.strip().splitlines()) == 1
    code, out = invoke("segment", "list", "--shop", str(env), "--json")
    assert json.loads(out) == []


def test_missing_shop_or_segment_exits_1_and_preview_needs_one_source(env, tmp_path):
    code, _ = invoke("segment", "list", "--shop", "999")
    assert code == 1
    code, _ = invoke("segment", "preview", "--shop", str(env), "--name", "nope")
    assert code == 1
    code, out = invoke("segment", "preview", "--shop", str(env))
    assert code == 2 and "either --name" in out


def test_customer_refresh_and_the_lifecycle_report(env, tmp_path):
    code, out = invoke("customer", "refresh", "--shop", str(env), "--json")
    assert code == 0, out
    assert json.loads(out)["customers"] == 4
    chart = tmp_path / "stages.svg"
    code, out = invoke("report", "lifecycle", "--shop", str(env), "--chart", str(chart), "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["stages"]["prospect"] == 4 and report["unreachable"]["prospect"] == 1
    assert chart.read_text(encoding="utf-8").startswith("<svg")
    code, out = invoke("report", "lifecycle", "--shop", str(env))
    assert code == 0 and "prospect" in out and "unreachable 1" in out
    code, out = invoke("report", "lifecycle", "--shop", str(env), "--chart", "x.gif")
    assert code == 2 and "SVG or PNG" in out
    code, _ = invoke("customer", "refresh", "--shop", "999")
    assert code == 1

"""`nudge campaign …` as a shop owner uses it: create, preview, send, pause, resume, cancel,
list and report, with one clear line for every mistake."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.db import transaction
from bot.models import Consent
from bot.store.codes import import_codes
from bot.store.customers import add_customer
from bot.store.shops import create_shop


@pytest.fixture
async def env(cli_database, monkeypatch, tmp_path, clock):
    """A shop with a bot and five linked customers: three read Ukrainian, two Polish."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NUDGE_DATABASE_URL", cli_database.url)
    monkeypatch.setenv("NUDGE_SECRET_KEY", "test-secret-key-0123456789")
    async with transaction(cli_database.sessions) as session:
        shop = await create_shop(
            session=session,
            name="Kvitka",
            platform="generic",
            now=clock.now(),
            bot_token="7000000001:AAcampaignclitesttoken0000000000",
            default_locale="uk",
            settings={"languages": ["uk", "pl", "en"], "catalog_url": "https://kvitka.example"},
        )
        for n, locale in enumerate(["uk", "uk", "uk", "pl", "pl"]):
            await add_customer(
                session=session,
                shop_id=shop.id,
                now=clock.now(),
                first_name=["Олена", "Тарас", "Ірина", "Agnieszka", "Piotr"][n],
                locale=locale,
                telegram_chat_id=100 + n,
                consent=Consent.OPTED_IN,
            )
        await import_codes(
            session=session,
            shop_id=shop.id,
            pool="spring",
            codes=["SPR-1", "SPR-2"],
            now=clock.now(),
        )
    return shop.id


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def write(tmp_path, data, name="campaign.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


SALE = {
    "name": "Весна",
    "segment": {"all": []},
    "topic": "shoes",
    "holdout_percent": 0,
    "messages": {
        "uk": {
            "text": "{first_name}, весняний розпродаж!",
            "buttons": [{"text": "До розпродажу", "url": "https://kvitka.example/sale"}],
        },
        "pl": {"text": "{first_name}, wiosenna wyprzedaż!"},
    },
}


def test_an_owner_creates_previews_sends_and_reports(env, tmp_path):
    shop = str(env)
    code, out = invoke("campaign", "create", "--shop", shop, "--file", write(tmp_path, SALE))
    assert code == 0, out
    campaign = out.strip()
    assert campaign.isdigit()

    code, out = invoke("campaign", "preview", campaign, "--json")
    assert code == 0, out
    preview = json.loads(out)
    assert preview["audience"]["total"] == 5 and preview["audience"]["locales"] == {
        "uk": 3,
        "pl": 2,
    }
    assert preview["missing_translations"] == {"A": ["en"]}
    uk = next(m for m in preview["messages"] if m["locale"] == "uk")
    assert uk["text"].endswith(", весняний розпродаж!")
    assert [[b["text"] for b in row] for row in uk["buttons"]] == [
        ["До розпродажу"],
        ["Відкрити каталог"],
        ["Не цікавить"],
    ]
    en = next(m for m in preview["messages"] if m["locale"] == "en")
    assert en["text_locale"] == "uk" and en["buttons"][1][0]["text"] == "Відкрити каталог"
    code, out = invoke("campaign", "preview", campaign)
    assert "missing translation in A: en (they get the uk text)" in out

    code, out = invoke("campaign", "send", campaign, "--local-time", "10:00", "--json")
    assert code == 0, out
    sent = json.loads(out)
    assert (sent["status"], sent["scheduled"], sent["local_time"]) == ("sent", 5, "10:00")
    code, out = invoke("campaign", "send", campaign)  # again: nothing twice
    assert (code, out.strip()) == (
        0,
        f"campaign {campaign} was already sent; nothing is scheduled twice",
    )

    code, out = invoke("campaign", "list", "--shop", shop, "--json")
    assert [(c["id"], c["status"]) for c in json.loads(out)] == [(int(campaign), "sent")]
    code, out = invoke("campaign", "report", campaign, "--json", "--chart", "funnel.svg")
    assert code == 0, out
    report = json.loads(out)
    for key in (
        "audience", "holdout", "sent", "blocked", "failed", "skipped", "pending", "clicked",
        "not_interested", "orders", "revenue", "variants", "locales",
    ):  # fmt: skip
        assert key in report
    assert report["audience"] == report["pending"] == 5
    assert (tmp_path / "funnel.svg").read_text().startswith("<svg")
    code, out = invoke("campaign", "report", campaign, "--chart", "funnel.png")
    assert code == 0 and (tmp_path / "funnel.png").read_bytes().startswith(b"\x89PNG\r\n")

    code, out = invoke("campaign", "pause", campaign)
    assert code == 0 and out.strip() == f"campaign {campaign} paused (5 messages)"
    code, out = invoke("campaign", "resume", campaign)
    assert code == 0 and out.strip() == f"campaign {campaign} resumed (5 messages)"
    code, out = invoke("campaign", "cancel", campaign)
    assert code == 0 and out.strip() == f"campaign {campaign} cancelled (5 messages)"
    code, out = invoke("campaign", "report", campaign, "--json")
    assert json.loads(out)["skipped_by_reason"] == {"campaign_cancelled": 5}


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"topic": ""}, "nudge: error: topic: expected a non-empty text"),
        (
            {"messages": {"uk": {"text": "{imya}"}}},
            "nudge: error: messages.uk.text: unknown placeholder",
        ),
        ({"segment": "vip"}, "nudge: error: segment: no saved segment named 'vip'"),
        (
            {"schedule": {"at": "2027-01-01 10:00"}},
            "nudge: error: schedule.at: give the time zone",
        ),
    ],
)
def test_a_bad_campaign_file_is_refused_in_one_line(env, tmp_path, changes, said):
    code, out = invoke(
        "campaign", "create", "--shop", str(env), "--file", write(tmp_path, {**SALE, **changes})
    )
    assert code == 2 and out.strip().startswith(said), out
    assert len(out.strip().splitlines()) == 1


def test_too_few_codes_or_an_unknown_campaign_says_so(env, tmp_path):
    raw = {**SALE, "pool": "spring", "messages": {"uk": {"text": "Код {code}"}}}
    code, out = invoke("campaign", "create", "--shop", str(env), "--file", write(tmp_path, raw))
    campaign = out.strip()
    code, out = invoke("campaign", "send", campaign)
    assert code == 2 and "pool 'spring' has 2 codes for 5 recipients" in out
    code, out = invoke("campaign", "report", "999")
    assert code == 1 and out.strip() == "nudge: no campaign 999"
    code, out = invoke("campaign", "send", campaign, "--at", "tomorrow")
    assert code == 2 and "--at: not an ISO 8601 moment" in out
    code, out = invoke("campaign", "report", campaign, "--chart", "funnel.gif")
    assert code == 2 and "*.svg or *.png" in out

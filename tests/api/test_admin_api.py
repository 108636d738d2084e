"""The admin API over real HTTP: tokens, tenancy, problems, and the same work the CLI does."""

from __future__ import annotations

import aiohttp
import pytest

from bot.db import transaction
from bot.models import Consent
from bot.playground import Playground
from bot.store.customers import add_customer
from bot.store.tokens import create_token, revoke_token


@pytest.fixture
async def api(database, clock):
    async with Playground(database.url, engine=database.engine, clock=clock) as pg:
        kvitka = await pg.add_shop(name="Kvitka", default_locale="uk", currency="UAH")
        other = await pg.add_shop(name="Other", default_locale="pl", currency="PLN")
        async with transaction(pg.services.sessions) as session:
            for n, locale in enumerate(["uk", "uk", "pl"]):
                await add_customer(
                    session=session,
                    shop_id=kvitka.id,
                    now=clock.now(),
                    first_name=["Олена", "Тарас", "Ewa"][n],
                    email=f"c{n}@example.com",
                    locale=locale,
                    telegram_chat_id=500 + n,
                    consent=Consent.OPTED_IN,
                )
            stranger = await add_customer(
                session=session, shop_id=other.id, now=clock.now(), first_name="Jan"
            )
            tokens = {}
            for key, shop_id, read_only in (
                ("owner", None, False),
                ("kvitka", kvitka.id, False),
                ("reader", kvitka.id, True),
                ("other", other.id, False),
            ):
                record, secret = await create_token(
                    session=session, now=clock.now(), shop_id=shop_id, read_only=read_only
                )
                tokens[key] = (record["id"], secret)
        yield Client(pg, tokens), kvitka, other, stranger


class Client:
    def __init__(self, pg: Playground, tokens: dict) -> None:
        self.pg, self.tokens = pg, tokens

    async def __call__(self, method, path, who="owner", json=None, **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who][1]}"
        url = self.pg.settings.public_base + path
        async with aiohttp.ClientSession() as http:
            async with http.request(method, url, json=json, headers=headers, **kwargs) as r:
                body = await r.json(content_type=None) if r.status != 204 else None
                return r.status, r.headers, body


async def test_without_a_good_token_nothing_is_answered(api):
    call, kvitka, _other, _stranger = api
    status, headers, body = await call("GET", "/api/v1/shops", who=None)
    assert status == 401 and headers["Content-Type"].startswith("application/problem+json")
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert body["type"] == "urn:nudge:problem:unauthorized" and body["status"] == 401
    forged = {"Authorization": "Bearer nudge_" + "A" * 43}
    assert (await call("GET", "/api/v1/shops", who=None, headers=forged))[0] == 401
    async with transaction(call.pg.services.sessions) as session:
        await revoke_token(
            session=session, token_id=call.tokens["kvitka"][0], now=call.pg.clock.now()
        )
    assert (await call("GET", f"/api/v1/shops/{kvitka.id}", who="kvitka"))[0] == 401


async def test_a_shop_token_sees_its_shop_and_nothing_of_another(api):
    call, kvitka, other, stranger = api
    status, _, shops = await call("GET", "/api/v1/shops", who="kvitka")
    assert status == 200 and [s["id"] for s in shops] == [kvitka.id]
    assert [s["id"] for s in (await call("GET", "/api/v1/shops"))[2]] == [kvitka.id, other.id]
    for path in (
        f"/api/v1/shops/{other.id}",
        f"/api/v1/shops/{other.id}/customers",
        f"/api/v1/shops/{kvitka.id}/customers/{stranger.id}",
        f"/api/v1/shops/{kvitka.id}/customers/{stranger.id}/export",
        "/api/v1/shops/999999/campaigns",
        f"/api/v1/shops/{kvitka.id}/customers/abc",
    ):
        status, _, body = await call("GET", path, who="kvitka")
        assert (status, body["type"]) == (404, "urn:nudge:problem:not-found"), path
    status, _, _ = await call(
        "DELETE", f"/api/v1/shops/{kvitka.id}/customers/{stranger.id}", who="kvitka"
    )
    assert status == 404


async def test_a_read_only_token_reads_but_changes_nothing(api):
    call, kvitka, _other, _stranger = api
    assert (await call("GET", f"/api/v1/shops/{kvitka.id}/customers", who="reader"))[0] == 200
    status, _, body = await call(
        "PATCH", f"/api/v1/shops/{kvitka.id}", who="reader", json={"frequency_cap": 2}
    )
    assert (status, body["type"]) == (403, "urn:nudge:problem:read-only")


async def test_settings_change_all_or_nothing_with_the_reason(api):
    call, kvitka, _other, _stranger = api
    path = f"/api/v1/shops/{kvitka.id}"
    status, _, body = await call(
        "PATCH", path, json={"frequency_cap": 2, "quiet_hours_start": "25:00"}
    )
    assert status == 422 and "quiet_hours_start" in body["detail"]
    assert (await call("GET", path))[2]["settings"]["frequency_cap"] == 1  # nothing applied
    status, _, shop = await call("PATCH", path, json={"frequency_cap": 2})
    assert status == 200 and shop["settings"]["frequency_cap"] == 2
    status, _, body = await call(
        "PATCH", path, data=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert (status, body["type"]) == (400, "urn:nudge:problem:malformed-json")
    status, _, body = await call(
        "PATCH", path, data=b"x=1", headers={"Content-Type": "text/plain"}
    )
    assert status == 415
    before = shop["webhook_secret"]
    status, _, shop = await call("POST", f"{path}/webhook-secret")
    assert status == 200 and shop["webhook_secret"] != before and len(shop["webhook_secret"]) >= 32


async def test_customers_are_found_shown_exported_and_erased(api):
    call, kvitka, _other, _stranger = api
    base = f"/api/v1/shops/{kvitka.id}/customers"
    status, _, found = await call("GET", base + "?query=олена")
    assert status == 200 and [c["name"] for c in found] == ["Олена"]
    cid = found[0]["id"]
    assert (await call("GET", f"{base}/{cid}"))[2]["profile"]["first_name"] == "Олена"
    assert (await call("GET", f"{base}/{cid}/export"))[2]["customer_id"] == cid
    assert (await call("GET", base + "?limit=0"))[0] == 422
    status, _, erased = await call("DELETE", f"{base}/{cid}")
    assert status == 200 and erased["customer_ids"] == [cid]
    assert (await call("GET", base + "?query=олена"))[2] == []


async def test_segments_and_a_campaign_through_the_api(api):
    call, kvitka, _other, _stranger = api
    shop = f"/api/v1/shops/{kvitka.id}"
    ukrainians = {"field": "locale", "op": "=", "value": "uk"}
    status, _, saved = await call("PUT", f"{shop}/segments/ua", json=ukrainians)
    assert status == 200 and saved["name"] == "ua"
    status, _, body = await call(
        "PUT", f"{shop}/segments/bad", json={"field": "colour", "op": "=", "value": 1}
    )
    assert status == 422 and "colour" in body["detail"]
    status, _, preview = await call("POST", f"{shop}/segments/preview", json=ukrainians)
    assert status == 200 and preview["count"] == 2

    raw = {
        "name": "Весна",
        "segment": "ua",
        "topic": "shoes",
        "messages": {"uk": {"text": "{first_name}, весняний розпродаж!"}},
    }
    status, _, created = await call("POST", f"{shop}/campaigns", json=raw)
    assert status == 201 and created["status"] == "draft"
    campaign = f"{shop}/campaigns/{created['id']}"
    status, _, shown = await call("GET", f"{campaign}/preview")
    assert status == 200 and shown["audience"]["total"] == 2
    assert shown["missing_translations"]["A"] == ["en", "ru", "pl"]
    status, _, body = await call("POST", f"{campaign}/send", json={"at": "tomorrow"})
    assert status == 422 and "at:" in body["detail"]
    status, _, sent = await call("POST", f"{campaign}/send", json={})
    assert status == 200 and sent["scheduled"] == 2 and sent["status"] == "sent"
    assert (await call("POST", f"{campaign}/pause"))[2]["rows"] == 2
    assert (await call("POST", f"{campaign}/cancel"))[2]["status"] == "cancelled"
    status, _, report = await call("GET", f"{campaign}/report")
    assert status == 200 and report["skipped_by_reason"] == {"campaign_cancelled": 2}
    status, _, body = await call("POST", f"{shop}/campaigns", json={**raw, "colour": 1})
    assert status == 422 and "unknown key 'colour'" in body["detail"]
    assert (await call("GET", f"{shop}/campaigns"))[2][0]["id"] == created["id"]
    # another shop's token cannot reach it, even knowing the id
    assert (await call("GET", f"{campaign}/report", who="other"))[0] == 404
    other_path = f"/api/v1/shops/{_other.id}/campaigns/{created['id']}/report"
    assert (await call("GET", other_path, who="other"))[0] == 404
    assert (await call("DELETE", f"{shop}/segments/ua"))[0] == 204
    assert (await call("DELETE", f"{shop}/segments/ua"))[0] == 404


async def test_the_openapi_document_describes_every_route(api):
    call, *_ = api
    url = call.pg.settings.public_base + "/api/openapi.json"
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        doc = await r.json()
    assert doc["openapi"] == "3.1.0" and doc["components"]["securitySchemes"]["bearer"]
    from bot.api import OPERATIONS

    for op in OPERATIONS:
        item = doc["paths"][op.path][op.method.lower()]
        assert item["summary"] and "401" in item["responses"]
        documented = {str(op.status), *map(str, op.errors())}
        assert set(item["responses"]) - documented <= {"405"}  # a literal path before a template
        assert ("404" in item["responses"]) == ("{" in op.path)
    ids = [item["operationId"] for path in doc["paths"].values() for item in path.values()]
    assert len(ids) == len(set(ids))
    status, headers, _body = await call("GET", "/api/v1/nothing")
    assert status == 404 and headers["Content-Type"].startswith("application/problem+json")


async def test_only_the_owner_connects_a_store(api):
    call, *_ = api
    body = {"platform": "woocommerce", "name": "Sklep", "country": "PL"}
    status, _, problem = await call("POST", "/api/v1/shops", who="kvitka", json=body)
    assert (status, problem["type"]) == (403, "urn:nudge:problem:forbidden")
    status, _, shop = await call("POST", "/api/v1/shops", json=body)
    assert status == 201 and (shop["currency"], shop["locale"]) == ("PLN", "pl")
    assert shop["webhook_url"].endswith(f"/hooks/woocommerce/{shop['id']}")
    status, _, problem = await call("POST", "/api/v1/shops", json={**body, "platform": "ebay"})
    assert status == 422 and "platform" in problem["detail"]
    status, _, problem = await call("POST", "/api/v1/shops", json={**body, "extra": 1})
    assert status == 422

"""Fuzzed bodies and headers against the real endpoint: never a 5xx, never a partial write."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import fixture_json, signed_headers
from sqlalchemy import func, select

from bot.models import Inbox
from integrations import ADAPTERS

FIXTURES = {
    "shopify": {
        "checkouts/create": "shopify/checkouts/create.json",
        "orders/create": "shopify/orders/create.json",
        "customers/update": "shopify/customers/update.json",
        "customers/redact": "shopify/customers/redact.json",
        "carts/update": "shopify/carts/update.json",
    },
    "woocommerce": {
        "order.updated": "woocommerce/order.updated.json",
        "customer.created": "woocommerce/customer.created.json",
        "product.created": "woocommerce/product.created.json",
    },
    "generic": {
        "cart.updated": "generic/cart.updated.json",
        "order.placed": "generic/order.placed.json",
        "product.viewed": "generic/product.viewed.json",
    },
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=300),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
header_names = st.sampled_from(
    [
        "X-Shopify-Topic",
        "X-Shopify-Event-Id",
        "X-WC-Webhook-Topic",
        "X-Nudge-Topic",
        "X-Shopify-Triggered-At",
        "X-WC-Webhook-Delivery-ID",
        "Content-Type",
        "X-Anything",
    ]
)
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


@st.composite
def deliveries(draw):
    platform = draw(st.sampled_from(sorted(FIXTURES)))
    topic = draw(st.sampled_from(sorted(FIXTURES[platform])) | header_values)
    source = FIXTURES[platform].get(topic) or draw(
        st.sampled_from(sorted(FIXTURES[platform].values()))
    )
    payload = fixture_json(source)
    kind = draw(st.sampled_from(["mutate", "mutate", "json", "bytes"]))
    if kind == "mutate":
        target = payload["data"] if platform == "generic" and draw(st.booleans()) else payload
        for key in draw(st.lists(st.sampled_from(sorted(target)), max_size=4)):
            target[key] = draw(json_values)
        body = json.dumps(payload).encode()
    elif kind == "json":
        body = json.dumps(draw(json_values)).encode()
    else:
        body = draw(st.binary(max_size=300))
    extra = draw(st.dictionaries(header_names, header_values, max_size=3))
    return platform, topic, body, extra, draw(st.integers(0, 9)) > 0


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cases=st.lists(deliveries(), min_size=1, max_size=4))
async def test_fuzzed_deliveries_never_5xx_nor_half_stored(hooks, client, database, cases):
    shops = {}
    for platform, topic, body, extra, sign in cases:
        if platform not in shops:
            shops[platform] = await hooks.shop(platform)
        shop = shops[platform]
        headers = signed_headers(shop, topic, body) if sign else {"X-Nudge-Topic": topic}
        headers.update(extra)
        before = await _stored(database)
        async with client.post(f"/hooks/{platform}/{shop.id}", data=body, headers=headers) as r:
            assert r.status < 500, await r.text()
            answer = await r.json()
        after = await _stored(database)
        kept = r.status == 200 and answer.get("status") in ("stored", "parked")
        assert after == before + (1 if kept else 0), (r.status, answer)
        if not sign and r.status != 200:
            assert r.status == 401 or platform not in ADAPTERS
    report = await hooks.worker.run_until_idle()
    assert not report.errors, report.errors
    async with database.sessions() as session:
        states = set((await session.scalars(select(Inbox.state))).all())
    assert states <= {"done", "parked"}


async def _stored(database) -> int:
    async with database.sessions() as session:
        return await session.scalar(select(func.count()).select_from(Inbox))

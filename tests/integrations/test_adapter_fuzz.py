"""Property tests: whatever arrives, adapters answer with events or ParseError, never a crash."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations import ADAPTERS, NotSupported, ParseContext, ParseError, parse_storefront_cart
from integrations.generic import TOPICS as GENERIC_TOPICS

DATA = Path(__file__).resolve().parent.parent / "data"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


SAMPLES: dict[str, list[tuple[str, Any]]] = {
    "shopify": [
        (path.relative_to(DATA / "shopify").with_suffix("").as_posix(), _read(path))
        for path in sorted((DATA / "shopify").glob("*/*.json"))
        if path.parent.name != "exemplars"
    ]
    + [
        ("checkouts/update", _read(path))
        for path in sorted((DATA / "shopify/exemplars").glob("*checkouts*.json"))
    ],
    "woocommerce": [
        (path.stem, _read(path)) for path in sorted((DATA / "woocommerce").glob("*.*.json"))
    ],
    "generic": [
        (topic, json.loads((DATA / "generic" / f"{topic}.json").read_text()))
        for topic in GENERIC_TOPICS
    ],
}
TOPICS = {
    name: [
        *sorted({topic for topic, _ in samples} | set(ADAPTERS[name].subscribe_topics)),
        "unknown/topic",
        "",
    ]
    for name, samples in SAMPLES.items()
}
KNOWN_KEYS = sorted(
    {key for samples in SAMPLES.values() for _, payload in samples for key in payload}
    | {"line_items", "items", "data", "customer", "billing", "price", "quantity", "id"}
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "example string",
            "19.99",
            "-1",
            "1e400",
            "NaN",
            "2019-01-01 00:00:00Z",
            "2025-05-01T12:00:00Z",
            "+380671234567",
            "a@b.co",
            "https://x.y/z",
            "9" * 40,
            "",
            " ",
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)
CTX = ParseContext(default_region="UA", received_at=datetime(2025, 5, 1, tzinfo=UTC))


def _check(events: list) -> None:
    """Assert what every consumer of events relies on."""
    assert isinstance(events, list) and events
    for event in events:
        if isinstance(event, NotSupported):
            continue
        assert event.occurred_at.utcoffset() == timedelta(0)
        assert isinstance(event.resource_id, str)
        for field in ("total", "price"):
            assert isinstance(getattr(event, field, None), Decimal | None)
        for item in getattr(event, "items", ()):
            assert isinstance(item.price, Decimal | None) and item.quantity >= 1


def _parse(name: str, topic: str, payload: Any, ctx: ParseContext | None = CTX) -> None:
    adapter = ADAPTERS[name]
    try:
        events = adapter.parse(topic, {}, payload, ctx)
    except ParseError as error:
        assert str(error)
        return
    _check(events)


@FUZZ
@given(name=st.sampled_from(sorted(ADAPTERS)), data=st.data(), payload=json_values)
def test_random_json_gives_events_or_parse_error(name, data, payload):
    topic = data.draw(st.sampled_from(TOPICS[name]))
    _parse(name, topic, payload, data.draw(st.sampled_from([CTX, None])))


@st.composite
def mutated_samples(draw):
    """Return (adapter, topic, payload): a real sample with keys dropped or retyped."""
    name = draw(st.sampled_from(sorted(SAMPLES)))
    topic, sample = draw(st.sampled_from(SAMPLES[name]))
    payload = copy.deepcopy(sample)
    targets = [payload]
    for key in ("data", "customer", "billing"):
        if isinstance(payload.get(key), dict):
            targets.append(payload[key])
    for key in ("line_items", "items"):
        for container in list(targets):
            lines = container.get(key)
            if isinstance(lines, list) and lines and isinstance(lines[0], dict):
                targets.append(lines[0])
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        target = draw(st.sampled_from(targets))
        if not target:
            continue
        key = draw(st.sampled_from(sorted(target)))
        if draw(st.booleans()):
            del target[key]
        else:
            target[key] = draw(json_values)
    return name, topic, payload


@FUZZ
@given(case=mutated_samples())
def test_samples_with_missing_keys_or_wrong_types_give_events_or_parse_error(case):
    name, topic, payload = case
    _parse(name, topic, payload)


@FUZZ
@given(
    name=st.sampled_from(sorted(ADAPTERS)),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "X-Shopify-Hmac-Sha256",
                "X-WC-Webhook-Signature",
                "X-Nudge-Signature",
                "x-nudge-signature",
            ]
        )
        | st.text(max_size=20),
        st.text(max_size=80)
        | st.integers()
        | st.binary(max_size=40)
        | st.sampled_from(["sha256=", "sha256=" + "0" * 64, "=", "B23tXN681gZ0qIWNRrgtzBE9X"]),
        max_size=4,
    ),
    body=st.binary(max_size=200),
    secret=st.text(max_size=40),
)
def test_verify_never_raises_and_refuses_forgeries(name, headers, body, secret):
    adapter = ADAPTERS[name]
    assert adapter.verify(headers, body, secret) is False
    assert adapter.is_ping(headers, body) in (True, False)


@FUZZ
@given(name=st.sampled_from(sorted(ADAPTERS)), payload=json_values, data=st.data())
def test_delivery_key_is_a_bounded_string_or_parse_error(name, payload, data):
    topic = data.draw(st.sampled_from(TOPICS[name]))
    headers = data.draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "X-Shopify-Event-Id",
                    "X-Shopify-Webhook-Id",
                    "X-WC-Webhook-Delivery-ID",
                    "X-WC-Webhook-ID",
                ]
            ),
            st.text(max_size=300) | st.integers(),
            max_size=3,
        )
    )
    try:
        key = ADAPTERS[name].delivery_key(topic, headers, payload)
    except ParseError:
        assert name == "generic"
        return
    assert isinstance(key, str) and key.startswith(f"{name}:") and len(key) <= 200


@FUZZ
@given(payload=json_values, data=st.data())
def test_storefront_input_gives_a_cart_or_parse_error(payload, data):
    sample = json.loads((DATA / "generic/storefront.cart.json").read_text())
    candidate = data.draw(st.sampled_from(["random", "mutated"]))
    if candidate == "mutated":
        key = data.draw(st.sampled_from(sorted(sample)))
        sample[key] = payload
        payload = sample
    try:
        cart = parse_storefront_cart(payload, CTX)
    except ParseError:
        return
    assert len(cart.items) <= 100
    assert all(len(item.title or "") <= 200 for item in cart.items)

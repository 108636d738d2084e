"""The adapter contract: registry, headers, customer references, value readers, events."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from multidict import CIMultiDict

from integrations import (
    ADAPTERS,
    NotSupported,
    OrderCancelled,
    ParseContext,
    ParseError,
    PlatformAdapter,
    load_json,
)
from integrations.base import bounded_key, header
from integrations.fields import customer_ref, e164, email, money, timestamp


def test_adapters_are_registered_by_platform_name_and_fulfil_the_contract():
    assert set(ADAPTERS) == {"shopify", "woocommerce", "generic"}
    for name, adapter in ADAPTERS.items():
        assert isinstance(adapter, PlatformAdapter)
        assert adapter.name == name
        assert adapter.subscribe_topics


@pytest.mark.parametrize("name", ["shopify", "woocommerce", "generic"])
def test_subscribed_topics_are_understood_and_others_are_not_supported(name):
    adapter = ADAPTERS[name]
    for topic in adapter.subscribe_topics:
        try:
            events = adapter.parse(topic, {}, {})
        except ParseError:
            continue  # understood, and the empty payload is malformed for it
        assert not any(isinstance(e, NotSupported) for e in events), topic
    assert adapter.parse("nudge/never-a-topic", {}, {}) == [NotSupported("nudge/never-a-topic")]


def test_header_lookup_ignores_case_and_accepts_multidicts_and_odd_values():
    assert header({"x-shopify-topic": " orders/create "}, "X-Shopify-Topic") == "orders/create"
    multi = CIMultiDict([("X-WC-Webhook-ID", "1"), ("x-wc-webhook-id", "2")])
    assert header(multi, "x-wc-webhook-id") == "1"
    assert header({"X-WC-Webhook-ID": 535}, "X-WC-Webhook-ID") == "535"
    assert header({"X-Raw": b"caf\xe9"}, "x-raw") == "café"
    assert header({"X-Empty": "  "}, "x-empty") is None
    assert header({}, "X-Missing") is None


@pytest.mark.parametrize(
    ("phone", "region", "expected"),
    [
        ("067 123 45 67", "UA", "+380671234567"),
        ("+380 (67) 123-45-67", "US", "+380671234567"),
        ("0671234567", None, None),  # national number and no region: cannot tell
        ("(415) 555-0134", "us", "+14155550134"),
        ("+48 512 345 678", "UA", "+48512345678"),
        ("555-555-SHIP", "US", None),
        ("not a phone", "UA", None),
        ("", "UA", None),
        ("067 123 45 67", "ZZ-not-a-region", None),
    ],
)
def test_phone_numbers_are_normalized_to_e164(phone, region, expected):
    assert e164(phone, region) == expected


def test_customer_ref_keeps_phone_as_given_and_lower_cases_email():
    ref = customer_ref(
        external_id=706405506930370084,
        email_address="  Olena.Koval@Example.COM ",
        phone=" 067 123 45 67 ",
        first_name="Olena",
        locale_tag="uk_UA",
        accepts_marketing=True,
        default_region="UA",
    )
    assert ref.external_id == "706405506930370084"
    assert ref.email == "olena.koval@example.com"
    assert (ref.phone, ref.phone_e164) == ("067 123 45 67", "+380671234567")
    assert ref.locale == "uk-UA"
    assert ref.accepts_marketing is True
    assert not ref.is_anonymous
    assert customer_ref(first_name="Anonymous").is_anonymous


@pytest.mark.parametrize("value", ["example string", "a@b", "two@@example.com", "x y@ex.com", 5])
def test_implausible_emails_are_dropped(value):
    assert email(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("19.99", Decimal("19.99")),
        (19.99, Decimal("19.99")),
        (3, Decimal(3)),
        (" 421.88 ", Decimal("421.88")),
        ("example string", None),
        ("NaN", None),
        (float("inf"), None),
        ("1e5", None),
        ("-1.00", None),
        (True, None),
        (None, None),
        ({"amount": "1.00"}, None),
    ],
)
def test_money_reader_keeps_numbers_and_drops_garbage(value, expected):
    assert money(value) == expected


def test_timestamps_are_aware_utc():
    assert timestamp("2021-12-31T19:00:00-05:00") == datetime(2022, 1, 1, tzinfo=UTC)
    assert timestamp("2017-03-22T19:28:08") == datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC)
    assert timestamp("example string") is None
    assert timestamp("0001-01-01T00:00:00+01:00") is None  # before year 1 in UTC


def test_events_are_immutable_and_hashable():
    event = OrderCancelled(order_id="1", occurred_at=datetime(2025, 1, 1, tzinfo=UTC))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.order_id = "2"  # type: ignore[misc]
    assert len({event, dataclasses.replace(event)}) == 1
    assert event.resource_id == "1"


def test_parse_context_requires_an_aware_received_at():
    with pytest.raises(ValueError, match="timezone-aware"):
        ParseContext(received_at=datetime(2025, 1, 1))
    kyiv = timezone(timedelta(hours=3))
    assert ParseContext(received_at=datetime(2025, 1, 1, tzinfo=kyiv)).received_at


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"\xff\xfe\x00", "body is not valid JSON"),
        (b"webhook_id=15", "body is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"1" * 5000, "body is not valid JSON"),
    ],
)
def test_load_json_turns_bad_bodies_into_parse_errors(raw, reason):
    with pytest.raises(ParseError, match=reason):
        load_json(raw)


def test_delivery_keys_are_bounded():
    assert bounded_key("shopify", "b54557e4-bdd9") == "shopify:b54557e4-bdd9"
    long = bounded_key("shopify", "x" * 5000)
    odd = bounded_key("woocommerce", "order.updated", "1", "2017 03 22")
    for key in (long, odd):
        assert key.startswith(("shopify:sha256:", "woocommerce:sha256:")) and len(key) < 100


def test_adapters_are_pure_no_bot_database_or_network_imports():
    code = (
        "import sys, integrations; "
        "heavy = {'bot', 'sqlalchemy', 'sqlmodel', 'aiohttp', 'aiogram', 'asyncpg', 'redis'}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"

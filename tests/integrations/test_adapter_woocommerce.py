"""WooCommerce adapter: signature, ping, status routing, documented payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from multidict import CIMultiDict

from integrations import (
    ADAPTERS,
    CartUpdated,
    CheckoutStarted,
    CustomerUpserted,
    NotSupported,
    OrderCancelled,
    OrderPlaced,
    ParseError,
    ProductUpserted,
)
from integrations.base import payload_digest
from integrations.woocommerce import signature, wp_specialchars_decode

woo = ADAPTERS["woocommerce"]
GUESSED_SECRETS = [
    "",
    "secret",
    "woocommerce",
    "test",
    "password",
    "535",
    "142",
    "consumer_secret",
]


def _compact(payload) -> bytes:
    """Return the body as WooCommerce sends it: compact JSON with "/" escaped."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


# --- verify and ping ----------------------------------------------------------------------


def test_signature_matches_woocommerce_core_vector(load):
    vectors = {v["id"]: v for v in load("woocommerce/signature_vectors.json")["vectors"]}
    core = vectors["woocommerce-core/test_generate_signature"]
    assert signature(core["body"].encode(), core["secret"]) == core["header"]
    swapped = vectors["woocommerce-core/swapped-key-and-body"]
    assert signature(swapped["body"].encode(), swapped["secret"]) != swapped["header"]


def test_verify_refuses_an_empty_secret_even_when_the_signature_matches(load):
    core = load("woocommerce/signature_vectors.json")["vectors"][0]
    headers = {"X-WC-Webhook-Signature": core["header"]}
    assert not woo.verify(headers, core["body"].encode(), core["secret"])


def test_verify_accepts_a_correct_signature_and_rejects_a_flipped_byte(load):
    body = _compact(load("woocommerce/order.updated.json"))
    headers = CIMultiDict({"x-wc-webhook-signature": signature(body, "wc_secret_1")})
    assert woo.verify(headers, body, "wc_secret_1")
    tampered = body.replace(b'"29.35"', b'"29.36"')
    assert tampered != body and not woo.verify(headers, tampered, "wc_secret_1")
    assert not woo.verify(headers, body, "wc_secret_2")
    assert not woo.verify({}, body, "wc_secret_1")


def test_secret_is_html_entity_decoded_like_wordpress_does():
    assert wp_specialchars_decode("a&amp;b&lt;c&#039;d&#x27;e&quot;f&#38;g") == "a&b<c'd'e\"f&g"
    assert wp_specialchars_decode("&amp;lt;") == "&lt;"  # one pass, like strtr
    body = b'{"id":1}'
    stored = "p&amp;ss"  # as WordPress may store it; it signs with "p&ss"
    headers = {"X-WC-Webhook-Signature": signature(body, stored)}
    assert signature(body, stored) == signature(body, "p&ss")
    assert woo.verify(headers, body, stored)
    assert woo.verify(headers, body, "p&ss")


@pytest.mark.parametrize("secret", GUESSED_SECRETS)
def test_recorded_deliveries_are_rejected_with_any_guessed_secret(secret, load):
    deliveries = load("woocommerce/recorded_deliveries.json")
    assert len(deliveries) == 4
    for delivery in deliveries:
        assert delivery["secret"] is None
        assert not woo.verify(delivery["request_headers"], delivery["body"].encode(), secret)


def test_recorded_deliveries_route_and_key_without_crashing(load, ctx):
    for delivery in load("woocommerce/recorded_deliveries.json"):
        headers = delivery["request_headers"]  # integer header values included
        topic = woo.topic(headers)
        payload = json.loads(delivery["body"])
        assert woo.delivery_key(topic, headers, payload).startswith(f"woocommerce:{topic}:")
        events = woo.parse(topic, headers, payload, ctx)
        if topic.startswith("action."):
            assert events == [NotSupported(topic, occurred_at=ctx.received_at)]
        else:  # the legacy {"order": {...}} body of API v1
            (order,) = events
            assert isinstance(order, OrderPlaced)
            assert order.order_id == "118"
            assert order.currency == "BRL"
            assert order.total == Decimal("14.00")
            assert order.customer.email == "john.doe@claudiosmweb.com"
            assert order.items[0].title == "Woo Single #2"
            updated_at = payload["order"]["updated_at"]  # e.g. "2016-05-16T03:30:30Z"
            assert order.occurred_at == datetime.fromisoformat(updated_at)


def test_activation_ping_is_recognized():
    ping_headers = {
        "User-Agent": "WooCommerce/8.0 Hookshot (WordPress/6.3)",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    assert woo.is_ping(ping_headers, b"webhook_id=15")
    assert woo.is_ping({"X-WC-Webhook-Topic": "action.woocommerce_add_to_cart"}, b"webhook_id=7")
    assert not woo.is_ping({"X-WC-Webhook-Topic": "order.created"}, b"webhook_id=15")
    assert not woo.is_ping({}, b'{"webhook_id": 15}')
    assert not woo.is_ping({}, b"webhook_id=15&x=1")
    assert not woo.is_ping({}, b"")
    assert not ADAPTERS["shopify"].is_ping({}, b"webhook_id=15")


# --- topics and keys ----------------------------------------------------------------------


def test_delivery_key_is_resource_topic_and_modification_time(load):
    created = load("woocommerce/order.created.json")
    updated = load("woocommerce/order.updated.json")
    headers = {"X-WC-Webhook-Delivery-ID": "54", "X-WC-Webhook-Topic": "order.updated"}
    key = woo.delivery_key("order.updated", headers, updated)
    assert key == "woocommerce:order.updated:727:2017-03-22T19:30:35:" + payload_digest(updated)
    assert woo.delivery_key("order.updated", headers, created) != key  # same Delivery-ID
    assert woo.delivery_key("order.updated", {"X-WC-Webhook-Delivery-ID": "99"}, updated) == key
    same_second = dict(updated, status="processing")  # same date_modified_gmt, other content
    assert woo.delivery_key("order.updated", headers, same_second) != key
    assert woo.delivery_key("order.deleted", {}, {"id": 727}) == "woocommerce:order.deleted:727"


# --- parse --------------------------------------------------------------------------------


def test_processing_order_is_placed(load, ctx):
    (order,) = woo.parse("order.created", {}, load("woocommerce/order.created.json"), ctx)
    assert isinstance(order, OrderPlaced)
    assert order.order_id == "727"
    assert order.name == "727"
    assert order.status == "processing"
    assert order.total == Decimal("29.35")
    assert order.currency == "USD"
    assert order.checkout_token == "wc_order_58d2d042d1d"
    assert order.occurred_at == datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC)
    assert order.placed_at == datetime(2017, 3, 22, 19, 28, 2, tzinfo=UTC)
    first, second = order.items
    assert (first.product_id, first.variant_id, first.title) == ("93", None, "Woo Single #1")
    assert (first.price, first.quantity) == (Decimal(3), 2)
    assert (second.product_id, second.variant_id, second.sku) == ("22", "23", "Bar3")
    assert second.title == "Ship Your Idea – Color: Black, Size: M Test"  # &ndash; unescaped
    customer = order.customer
    assert customer.external_id is None  # customer_id 0: a guest
    assert customer.email == "john.doe@example.com"
    assert customer.phone == "(555) 555-5555"
    assert (customer.first_name, customer.last_name) == ("John", "Doe")


def test_completed_update_is_the_same_order_later(load, ctx):
    (created,) = woo.parse("order.created", {}, load("woocommerce/order.created.json"), ctx)
    (updated,) = woo.parse("order.updated", {}, load("woocommerce/order.updated.json"), ctx)
    assert updated.order_id == created.order_id and updated.status == "completed"
    assert updated.occurred_at > created.occurred_at


@pytest.mark.parametrize("status", ["processing", "completed", "on-hold", "wc-on-hold"])
def test_paid_statuses_are_order_placed(status, load, ctx):
    payload = dict(load("woocommerce/order.updated.json"), status=status)
    assert [type(e) for e in woo.parse("order.updated", {}, payload, ctx)] == [OrderPlaced]


@pytest.mark.parametrize("status", ["cancelled", "refunded", "failed"])
def test_cancelled_statuses_are_order_cancelled(status, load, ctx):
    payload = dict(load("woocommerce/order.updated.json"), status=status)
    assert woo.parse("order.updated", {}, payload, ctx) == [
        OrderCancelled(
            order_id="727",
            reason=status,
            occurred_at=datetime(2017, 3, 22, 19, 30, 35, tzinfo=UTC),
        )
    ]


def test_pending_order_is_an_abandonable_checkout_keyed_by_the_order_key(load, ctx):
    payload = dict(
        load("woocommerce/order.created.json"),
        status="pending",
        payment_url="https://example.com/checkout/order-pay/727/?pay_for_order=true&key=k",
    )
    started, cart = woo.parse("order.created", {}, payload, ctx)
    assert isinstance(started, CheckoutStarted) and isinstance(cart, CartUpdated)
    assert started.token == cart.token == "wc_order_58d2d042d1d"
    assert cart.recovery_url == payload["payment_url"]
    assert cart.total == Decimal("29.35") and len(cart.items) == 2
    assert cart.customer.email == "john.doe@example.com"


def test_unknown_status_is_not_supported_with_the_reason(load, ctx):
    payload = dict(load("woocommerce/order.updated.json"), status="wc-shipped-custom")
    (event,) = woo.parse("order.updated", {}, payload, ctx)
    assert isinstance(event, NotSupported)
    assert event.reason == "order status 'shipped-custom'"


def test_deleted_order_is_cancelled_at_receipt_time(ctx, received_at):
    assert woo.parse("order.deleted", {}, {"id": 727}, ctx) == [
        OrderCancelled(order_id="727", reason="deleted", occurred_at=received_at)
    ]


@pytest.mark.parametrize("topic", ["customer.created", "customer.updated"])
def test_customer_upserted(topic, load, ctx):
    (event,) = woo.parse(topic, {}, load(f"woocommerce/{topic}.json"), ctx)
    assert isinstance(event, CustomerUpserted)
    assert event.customer.external_id == "25"
    assert event.customer.email == "john.doe@example.com"
    expected_first = "John" if topic == "customer.created" else "James"
    assert event.customer.first_name == expected_first
    assert event.customer.phone == "(555) 555-5555"


def test_us_phone_is_normalized_with_the_region_it_was_written_for(load, ctx):
    payload = load("woocommerce/customer.created.json")
    payload["billing"]["phone"] = "(415) 555-0134"
    (event,) = woo.parse("customer.created", {}, payload, ctx)  # a Ukrainian shop
    assert event.customer.phone_e164 is None
    from integrations import ParseContext

    us = ParseContext(default_region="US", received_at=ctx.received_at)
    (event,) = woo.parse("customer.created", {}, payload, us)
    assert event.customer.phone_e164 == "+14155550134"


def test_product_upserted(load, ctx):
    (product,) = woo.parse("product.created", {}, load("woocommerce/product.created.json"), ctx)
    assert product == ProductUpserted(
        product_id="794",
        title="Premium Quality",
        category="Clothing",
        sku=None,
        price=Decimal("21.99"),
        url="https://example.com/product/premium-quality-19/",
        image="https://example.com/wp-content/uploads/2017/03/T_2_front-4.jpg",
        occurred_at=datetime(2017, 3, 23, 20, 1, 14, tzinfo=UTC),
    )


@pytest.mark.parametrize("topic", ["coupon.created", "customer.deleted", "product.deleted", ""])
def test_unknown_topics_are_not_supported(topic):
    assert woo.parse(topic, {}, {"id": 1}) == [NotSupported(topic)]


def test_malformed_payloads_raise_parse_error_with_the_reason(ctx):
    with pytest.raises(ParseError, match=r"order.updated: the order has no 'id'"):
        woo.parse("order.updated", {}, {"status": "completed"}, ctx)
    with pytest.raises(ParseError, match=r"order.updated: the order has no 'status'"):
        woo.parse("order.updated", {}, {"id": 5, "date_modified_gmt": "2024-01-01T00:00:00"}, ctx)
    with pytest.raises(ParseError, match=r"product.updated: the payload must be a JSON object"):
        woo.parse("product.updated", {}, "webhook_id=1", ctx)

"""Shopify adapter: signatures, routing by topic, normalization of Shopify's own samples."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from multidict import CIMultiDict

from integrations import (
    ADAPTERS,
    AppUninstalled,
    CartUpdated,
    CheckoutStarted,
    CustomerDataRequest,
    CustomerRedact,
    CustomerUpserted,
    NotSupported,
    OrderCancelled,
    OrderPlaced,
    ParseContext,
    ParseError,
    ShopRedact,
)

shopify = ADAPTERS["shopify"]
EXEMPLARS = [
    "2024-01_checkouts_1",
    "2024-01_checkouts_2",
    "2024-01_checkouts_3",
    "2024-01_checkouts_5",
    "2024-01_checkouts_6",
    "2025-04_carts_1",
    "2025-04_checkouts_1",
    "2025-04_customers_1",
    "2025-04_orders_1",
]


def _vectors(load):
    return load("shopify/hmac_vectors.json")["vectors"]


def _sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


# --- verify -------------------------------------------------------------------------------


def test_every_published_hmac_vector_gives_its_expected_result(load):
    vectors = _vectors(load)
    assert len(vectors) == 10
    for vector in vectors:
        headers = {"X-Shopify-Hmac-Sha256": vector["header"]}
        ok = shopify.verify(headers, vector["body"].encode(), vector["secret"])
        assert ok is vector["valid"], vector["id"]


def test_a_flipped_byte_in_body_or_signature_fails(load):
    vector = next(v for v in _vectors(load) if v["id"] == "shopify-api-js/valid")
    body = bytearray(vector["body"].encode())
    headers = {"X-Shopify-Hmac-Sha256": vector["header"]}
    assert shopify.verify(headers, bytes(body), vector["secret"])
    for index in range(len(body)):
        tampered = bytearray(body)
        tampered[index] ^= 0x01
        assert not shopify.verify(headers, bytes(tampered), vector["secret"])
    signature = bytearray(vector["header"].encode())
    signature[3] ^= 0x01
    assert not shopify.verify(
        {"X-Shopify-Hmac-Sha256": signature.decode()}, bytes(body), vector["secret"]
    )


def test_verify_reads_headers_in_any_case_and_from_a_multidict(load):
    vector = next(v for v in _vectors(load) if v["id"] == "shopify-api-php/valid")
    body, secret = vector["body"].encode(), vector["secret"]
    assert shopify.verify({"x-shopify-hmac-sha256": vector["header"]}, body, secret)
    assert shopify.verify(CIMultiDict({"X-SHOPIFY-HMAC-SHA256": vector["header"]}), body, secret)


def test_verify_refuses_missing_header_wrong_secret_and_empty_secret(data_dir):
    body = (data_dir / "shopify/orders/create.json").read_bytes()
    header = {"X-Shopify-Hmac-Sha256": _sign(body, "shpss_right")}
    assert shopify.verify(header, body, "shpss_right")
    assert not shopify.verify({}, body, "shpss_right")
    assert not shopify.verify(header, body, "shpss_wrong")
    assert not shopify.verify({"X-Shopify-Hmac-Sha256": _sign(body, "")}, body, "")


def test_a_realistic_body_is_verified_on_its_raw_bytes_not_on_reserialized_json(data_dir):
    raw = (data_dir / "shopify/orders/create.json").read_bytes()
    header = {"X-Shopify-Hmac-Sha256": _sign(raw, "s3cret")}
    assert shopify.verify(header, raw, "s3cret")
    compact = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    assert not shopify.verify(header, compact, "s3cret")


# --- topics and keys ----------------------------------------------------------------------


def test_topic_and_delivery_key_come_from_the_headers():
    headers = CIMultiDict(
        {
            "X-Shopify-Topic": "Orders/Create",
            "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
            "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        }
    )
    assert shopify.topic(headers) == "orders/create"
    assert shopify.topic({}) == ""
    key = shopify.delivery_key("orders/create", headers, {})
    assert key == "shopify:orders/create:98880550-7158-44d4-b7cd-2c97c8a091b5"
    assert shopify.delivery_key("orders/create", headers, {"id": 1}) == key  # Shopify: same event
    assert shopify.delivery_key("orders/paid", headers, {}) != key  # one event, two topics
    fallback = {"X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"}
    assert shopify.delivery_key("orders/create", fallback, {}) == (
        "shopify:orders/create:b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    )


def test_without_delivery_headers_the_key_is_stable_and_tells_updates_apart(load):
    order = load("shopify/orders/create.json")
    first = shopify.delivery_key("orders/create", {}, order)
    assert first == shopify.delivery_key("orders/create", {}, load("shopify/orders/create.json"))
    newer = dict(order, updated_at="2022-01-02T00:00:00-05:00")
    assert shopify.delivery_key("orders/create", {}, newer) != first
    assert shopify.delivery_key("orders/paid", {}, order) != first
    same_second = dict(order, financial_status="paid")  # same updated_at, other content
    assert shopify.delivery_key("orders/create", {}, same_second) != first


def test_subscribe_topics_are_all_parsed_to_something_other_than_not_supported(load, ctx):
    samples = {"app/uninstalled": "app/uninstalled"}
    for topic in shopify.subscribe_topics:
        payload = load(f"shopify/{samples.get(topic, topic)}.json")
        events = shopify.parse(topic, {}, payload, ctx)
        assert events and not any(isinstance(e, NotSupported) for e in events), topic


# --- parse: Shopify's samples -------------------------------------------------------------


@pytest.mark.parametrize("topic", ["checkouts/create", "checkouts/update"])
def test_checkout_gives_checkout_started_and_cart_updated(topic, load, ctx):
    started, cart = shopify.parse(topic, {}, load(f"shopify/{topic}.json"), ctx)
    assert isinstance(started, CheckoutStarted)
    assert isinstance(cart, CartUpdated)
    recover = (
        "https://checkout.local/548380009/checkouts/123123123/recover?key=example-secret-token"
    )
    assert started.token == cart.token == "123123123"
    assert started.cart_token == cart.cart_token == "eeafa272cebfd4b22385bc4b645e762c"
    assert started.recovery_url == cart.recovery_url == recover
    assert cart.total == Decimal("421.88")
    assert cart.currency == "USD"
    assert cart.completed is False
    assert [(i.product_id, i.variant_id, i.title, i.price, i.quantity) for i in cart.items] == [
        ("632910392", "808950810", "IPod Nano - 8GB", Decimal("199.00"), 1)
    ] * 2
    customer = cart.customer
    assert customer is not None and customer == started.customer
    assert customer.external_id == "603851970716743426"  # from the gid: the number is rounded
    assert customer.email == "john@example.com"
    assert (customer.first_name, customer.last_name) == ("John", "Smith")
    assert customer.accepts_marketing is False
    assert cart.occurred_at == datetime(2022, 1, 1, 0, 0, tzinfo=UTC)  # -05:00 → UTC


def test_completed_checkout_is_a_completed_cart_without_checkout_started(load, ctx):
    payload = dict(load("shopify/checkouts/update.json"), completed_at="2022-01-01T01:00:00Z")
    (cart,) = shopify.parse("checkouts/update", {}, payload, ctx)
    assert isinstance(cart, CartUpdated) and cart.completed


@pytest.mark.parametrize("topic", ["carts/create", "carts/update"])
def test_cart_keeps_token_items_and_currency_without_customer(topic, load, ctx):
    (cart,) = shopify.parse(topic, {}, load(f"shopify/{topic}.json"), ctx)
    assert isinstance(cart, CartUpdated)
    assert cart.token == cart.cart_token == "exampleCartId"
    assert cart.customer is None
    assert cart.currency == "USD"  # from the line's price_set: carts have no currency field
    (item,) = cart.items
    assert item.title == "Example T-Shirt - Small"
    assert (item.price, item.quantity, item.sku) == (Decimal("19.99"), 3, "example-shirt-s")
    assert cart.total == Decimal("59.97")
    assert cart.occurred_at == datetime(2022, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("topic", ["orders/create", "orders/paid"])
def test_created_and_paid_orders_are_the_same_order_placed(topic, load, ctx):
    (order,) = shopify.parse(topic, {}, load(f"shopify/{topic}.json"), ctx)
    assert isinstance(order, OrderPlaced)
    assert order.order_id == "820982911946154508"
    assert order.name == "#9999"
    assert order.total == Decimal("404.95")
    assert order.currency == "USD"
    assert [i.title for i in order.items] == [
        "Aviator sunglasses",
        "Lens Protection Plan (2 Year)",
        "Premium Leather Case",
        "Mid-century lounger",
        "Coffee table",
    ]
    assert order.items[0].price == Decimal("89.99")
    assert order.customer is not None
    assert order.customer.external_id == "115310627314723954"
    assert order.customer.email == "john@example.com"
    assert order.customer.locale == "en"
    assert order.customer.accepts_marketing is True
    assert order.discount_codes == ()
    assert order.checkout_token is None and order.cart_token is None


def test_paid_after_create_is_idempotent_on_order_id(load, ctx):
    created = shopify.parse("orders/create", {}, load("shopify/orders/create.json"), ctx)
    paid = shopify.parse("orders/paid", {}, load("shopify/orders/paid.json"), ctx)
    assert created == paid


def test_order_carries_discount_codes_and_the_checkout_it_came_from(load, ctx):
    payload = dict(
        load("shopify/orders/create.json"),
        checkout_token="123123123",
        cart_token="eeafa272cebfd4b22385bc4b645e762c",
        discount_codes=[{"code": "SPRING10", "amount": "10.00", "type": "percentage"}],
    )
    (order,) = shopify.parse("orders/create", {}, payload, ctx)
    assert order.discount_codes == ("SPRING10",)
    assert order.checkout_token == "123123123"
    assert order.cart_token == "eeafa272cebfd4b22385bc4b645e762c"


def test_line_item_category_is_the_product_type(load, ctx):
    payload = load("shopify/orders/create.json")
    payload["line_items"][0]["product_type"] = "Sunglasses"
    (order,) = shopify.parse("orders/create", {}, payload, ctx)
    assert order.items[0].category == "Sunglasses"
    assert order.items[1].category is None


def test_cancelled_order(load, ctx):
    (event,) = shopify.parse("orders/cancelled", {}, load("shopify/orders/cancelled.json"), ctx)
    assert event == OrderCancelled(
        order_id="820982911946154508",
        reason="customer",
        occurred_at=datetime(2022, 1, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize("topic", ["customers/create", "customers/update"])
def test_customer_upserted(topic, load, ctx):
    (event,) = shopify.parse(topic, {}, load(f"shopify/{topic}.json"), ctx)
    assert isinstance(event, CustomerUpserted)
    assert event.resource_id == event.customer.external_id == "706405506930370084"
    assert event.customer.email == "bob@biller.com"
    assert (event.customer.first_name, event.customer.last_name) == ("Bob", "Biller")
    assert event.customer.phone == "555-555-5555"  # the default address's, as given
    assert event.customer.phone_e164 is None  # not a valid number anywhere


def test_customer_marketing_consent_and_e164_phone(load, ctx):
    payload = dict(
        load("shopify/customers/update.json"),
        email="Bob@Biller.COM",
        phone="+1 613-555-0142",
        email_marketing_consent={"state": "subscribed", "opt_in_level": "single_opt_in"},
    )
    (event,) = shopify.parse("customers/update", {}, payload, ctx)
    assert event.customer.email == "bob@biller.com"
    assert event.customer.phone_e164 == "+16135550142"
    assert event.customer.accepts_marketing is True


def test_compliance_topics(load, ctx, received_at):
    (redact,) = shopify.parse("customers/redact", {}, load("shopify/customers/redact.json"), ctx)
    assert isinstance(redact, CustomerRedact)
    assert redact.customer.external_id == "191167"
    assert redact.customer.email == "john@example.com"
    assert redact.customer.phone == "555-625-1199"
    assert redact.order_ids == ("299938", "280263", "220458")
    assert redact.occurred_at == received_at

    payload = load("shopify/customers/data_request.json")
    (request,) = shopify.parse("customers/data_request", {}, payload, ctx)
    assert isinstance(request, CustomerDataRequest)
    assert request.request_id == "9999"
    assert request.order_ids == ("299938", "280263", "220458")

    (shop,) = shopify.parse("shop/redact", {}, load("shopify/shop/redact.json"), ctx)
    assert shop == ShopRedact(
        shop_id="954889", shop_domain="{shop}.myshopify.com", occurred_at=received_at
    )


def test_compliance_time_comes_from_triggered_at_header_first(load, ctx):
    headers = {"X-Shopify-Triggered-At": "2023-03-29T18:00:27.877041743Z"}
    (event,) = shopify.parse("shop/redact", headers, load("shopify/shop/redact.json"), ctx)
    assert event.occurred_at == datetime(2023, 3, 29, 18, 0, 27, 877041, tzinfo=UTC)


def test_compliance_without_any_time_is_a_parse_error(load):
    with pytest.raises(ParseError, match="no usable timestamp"):
        shopify.parse("shop/redact", {}, load("shopify/shop/redact.json"))


def test_redact_without_any_customer_identity_is_a_parse_error(ctx):
    with pytest.raises(ParseError, match="customers/redact: 'customer' has no id, email"):
        shopify.parse("customers/redact", {}, {"shop_id": 1, "customer": {}}, ctx)


def test_app_uninstalled(load, ctx, received_at):
    headers = {"X-Shopify-Shop-Domain": "super-toys.myshopify.com"}
    (event,) = shopify.parse("app/uninstalled", headers, load("shopify/app/uninstalled.json"), ctx)
    assert event == AppUninstalled(
        shop_id="548380009", shop_domain="super-toys.myshopify.com", occurred_at=received_at
    )


@pytest.mark.parametrize(
    "topic", ["checkouts/delete", "orders/updated", "orders/fulfilled", "products/create", ""]
)
def test_unknown_topics_are_not_supported(topic, ctx):
    assert shopify.parse(topic, {}, {"id": 1}, ctx) == [
        NotSupported(topic, occurred_at=ctx.received_at)
    ]


def test_marketing_consent_topic_is_not_supported(load):
    payload = load("shopify/customers_marketing_consent/update.json")
    (event,) = shopify.parse("customers_marketing_consent/update", {}, payload)
    assert event == NotSupported("customers_marketing_consent/update")


# --- parse: anonymized real deliveries ----------------------------------------------------


@pytest.mark.parametrize("name", EXEMPLARS)
def test_exemplars_parse_and_garbage_prices_become_none(name, load, ctx):
    kind = name.split("_")[1]
    topic = {
        "checkouts": "checkouts/update",
        "carts": "carts/update",
        "customers": "customers/update",
        "orders": "orders/paid",
    }[kind]
    events = shopify.parse(topic, {}, load(f"shopify/exemplars/{name}.json"), ctx)
    assert events
    for event in events:
        for item in getattr(event, "items", ()):
            assert item.price is None  # "example string"
            assert item.quantity == 123
        if isinstance(event, CartUpdated | OrderPlaced):
            assert event.total is None
            assert event.currency is None  # "example string" is not a currency


def test_exemplar_with_garbage_timestamps_falls_back_to_received_at(load, ctx, received_at):
    payload = load("shopify/exemplars/2024-01_checkouts_1.json")
    assert payload["updated_at"] == payload["created_at"] == "example string"
    events = shopify.parse("checkouts/update", {}, payload, ctx)
    assert {e.occurred_at for e in events} == {received_at}
    with pytest.raises(ParseError, match="checkouts/update: no usable timestamp"):
        shopify.parse("checkouts/update", {}, payload, ParseContext(default_region="UA"))


def test_exemplar_customer_email_is_kept_and_garbage_phone_has_no_e164(load, ctx):
    payload = load("shopify/exemplars/2025-04_customers_1.json")
    (event,) = shopify.parse("customers/update", {}, payload, ctx)
    assert event.customer.external_id == "123"  # the gid there is a URL: ignored
    assert event.customer.email == "eallam@example.com"
    assert event.customer.phone == "example string"
    assert event.customer.phone_e164 is None


def test_malformed_payloads_raise_parse_error_with_the_reason(ctx):
    with pytest.raises(ParseError, match="orders/create: the payload must be a JSON object"):
        shopify.parse("orders/create", {}, [1, 2], ctx)
    with pytest.raises(ParseError, match="orders/create: the order has no 'id'"):
        shopify.parse("orders/create", {}, {"total_price": "1.00"}, ctx)
    with pytest.raises(ParseError, match="checkouts/create: the checkout has neither"):
        shopify.parse("checkouts/create", {}, {"token": None}, ctx)
    with pytest.raises(ParseError, match="customers/create: the customer has no 'id'"):
        shopify.parse("customers/create", {}, {"id": True}, ctx)


def test_prices_as_numbers_and_strings_are_read_exactly(load, ctx):
    payload = load("shopify/carts/create.json")
    payload["line_items"][0]["price"] = 19.99
    payload["line_items"].append(dict(payload["line_items"][0], price="5", quantity="2"))
    (cart,) = shopify.parse("carts/update", {}, payload, ctx)
    assert [i.price for i in cart.items] == [Decimal("19.99"), Decimal("5")]
    assert [i.quantity for i in cart.items] == [3, 2]
    assert cart.total == Decimal("69.97")

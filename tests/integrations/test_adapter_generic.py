"""Generic adapter and storefront carts: the documented format, its schema and its errors."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from integrations import (
    ADAPTERS,
    CartUpdated,
    CustomerUpserted,
    NotSupported,
    OrderCancelled,
    OrderPlaced,
    ParseContext,
    ParseError,
    ProductViewed,
    parse_storefront_cart,
)
from integrations.generic import TOPICS, StorefrontCart, sign

generic = ADAPTERS["generic"]
PACKAGE = Path(__file__).resolve().parents[2] / "integrations"
SCHEMA = PACKAGE / "schemas" / "generic-webhook.schema.json"
GUIDE = PACKAGE / "GENERIC.md"


def _guide_examples() -> list[tuple[str, dict]]:
    """Return (section heading, JSON example) pairs from GENERIC.md."""
    examples, heading = [], ""
    blocks = re.split(
        r"^```(\w*)\n(.*?)^```\n", GUIDE.read_text(encoding="utf-8"), flags=re.M | re.S
    )
    # re.split yields: text, lang, body, text, lang, body, ...
    for index in range(0, len(blocks) - 2, 3):
        headings = re.findall(r"^##+ (.+)$", blocks[index], flags=re.M)
        heading = headings[-1] if headings else heading
        if blocks[index + 1] == "json":
            examples.append((heading.strip(), json.loads(blocks[index + 2])))
    return examples


# --- the documented examples ----------------------------------------------------------------


def test_every_topic_example_parses(load, ctx):
    payload = load("generic/customer.upserted.json")
    (customer,) = generic.parse("customer.upserted", {}, payload, ctx)
    assert isinstance(customer, CustomerUpserted)
    assert customer.customer.email == "olena.koval@example.com"
    assert customer.customer.phone == "067 123 45 67"
    assert customer.customer.phone_e164 == "+380671234567"
    assert customer.customer.locale == "uk"
    assert customer.birthday.isoformat() == "1990-06-15"
    assert customer.occurred_at == datetime(2025, 5, 1, 6, 30, tzinfo=UTC)

    (cart,) = generic.parse("cart.updated", {}, load("generic/cart.updated.json"), ctx)
    assert isinstance(cart, CartUpdated)
    assert cart.token == "7f3a9c2e" and cart.currency == "EUR"
    assert [(i.product_id, i.price, i.quantity) for i in cart.items] == [
        ("501", Decimal("49.90"), 2),
        ("502", Decimal(5), 1),
    ]
    assert cart.total == Decimal("104.80")  # computed: no total given
    assert cart.items[0].category == "Shirts"

    (order,) = generic.parse("order.placed", {}, load("generic/order.placed.json"), ctx)
    assert isinstance(order, OrderPlaced)
    assert (order.order_id, order.total, order.discount_codes) == (
        "9001",
        Decimal("104.80"),
        ("SPRING10",),
    )
    assert order.cart_token == "7f3a9c2e"
    assert order.customer.phone_e164 == "+380671234567"

    (cancelled,) = generic.parse("order.cancelled", {}, load("generic/order.cancelled.json"), ctx)
    assert cancelled == OrderCancelled(
        order_id="9001", reason="customer", occurred_at=datetime(2025, 5, 2, 8, tzinfo=UTC)
    )

    (viewed,) = generic.parse("product.viewed", {}, load("generic/product.viewed.json"), ctx)
    assert isinstance(viewed, ProductViewed)
    assert (viewed.product_id, viewed.price, viewed.cart_token) == (
        "501",
        Decimal("49.9"),
        "7f3a9c2e",
    )


def test_the_guide_examples_parse_under_their_headings(ctx):
    examples = _guide_examples()
    topics = [heading for heading, _ in examples if heading in TOPICS]
    assert sorted(topics) == sorted(TOPICS)
    for heading, example in examples:
        if heading in TOPICS:
            (event,) = generic.parse(heading, {}, example, ctx)
            assert not isinstance(event, NotSupported)
        else:
            assert heading.startswith("Storefront")
            assert parse_storefront_cart(example, ctx).items


def test_the_guide_examples_are_the_fixture_files(load):
    by_topic = dict(_guide_examples())
    for topic in TOPICS:
        assert by_topic[topic] == load(f"generic/{topic}.json"), topic


def test_the_guide_signature_example_is_what_verify_accepts():
    guide = GUIDE.read_text(encoding="utf-8")
    body = re.search(r"^BODY='(.*)'$", guide, flags=re.M).group(1).encode()
    secret = re.search(r"^SECRET='(.*?)'", guide, flags=re.M).group(1)
    documented = re.search(r"X-Nudge-Signature: (sha256=[0-9a-f]{64})", guide).group(1)
    assert sign(body, secret) == documented
    assert generic.verify({"X-Nudge-Signature": documented}, body, secret)
    assert generic.verify(
        {"x-nudge-signature": documented.upper().replace("SHA256", "sha256")}, body, secret
    )
    assert not generic.verify(
        {"X-Nudge-Signature": documented.removeprefix("sha256=")}, body, secret
    )
    assert not generic.verify({"X-Nudge-Signature": documented}, body + b" ", secret)
    assert not generic.verify({"X-Nudge-Signature": documented}, body, secret + "x")
    assert not generic.verify({"X-Nudge-Signature": sign(body, "")}, body, "")
    (event,) = generic.parse("order.cancelled", {}, json.loads(body))
    assert event.order_id == "9001"


# --- the schema file --------------------------------------------------------------------------


def test_schema_is_draft_2020_12_json_and_in_step_with_the_validators():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    defs = schema["$defs"]
    assert set(schema["required"]) == {"id", "occurred_at", "data"}
    refs = {entry["$ref"] for entry in schema["properties"]["data"]["anyOf"]}
    assert refs == {f"#/$defs/{topic}" for topic in TOPICS}
    models = {topic: spec.model for topic, spec in TOPICS.items()}
    models["storefront_cart"] = StorefrontCart
    for name, model in models.items():
        shape = defs[name]
        if "allOf" in shape:  # customer.upserted = customer + required id
            base = defs[shape["allOf"][0]["$ref"].rsplit("/", 1)[1]]
            required = set(shape["allOf"][1]["required"])
            shape = base
        else:
            required = set(shape["required"])
        assert set(shape["properties"]) == set(model.model_fields), name
        model_required = {n for n, f in model.model_fields.items() if f.is_required()}
        assert required >= model_required, name
        assert shape["additionalProperties"] is False
    item_fields = set(defs["item"]["properties"])
    assert item_fields == set(
        TOPICS["cart.updated"].model.model_fields["items"].annotation.__args__[0].model_fields
    )


# --- errors a developer would see -------------------------------------------------------------


def _with(payload, path, value):
    changed = copy.deepcopy(payload)
    target = changed
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("data", "items"), KeyError, "cart.updated: data.items: Field required"),
        (("data", "items", 0, "price"), "12,50", "data.items.0.price: must be an amount ≥ 0"),
        (("data", "items", 0, "price"), -1, "data.items.0.price: must be between 0 and"),
        (("data", "items", 0, "price"), True, "data.items.0.price: must be a number, not a bool"),
        (("data", "items", 0, "quantity"), 0, "data.items.0.quantity: Input should be greater"),
        (("data", "items", 0, "quantity"), "2", "data.items.0.quantity: Input should be a valid"),
        (("data", "currency"), "euro", "data.currency: must be an ISO 4217 code"),
        (("data", "recovery_url"), "javascript:alert(1)", "data.recovery_url: must be an abs"),
        (("data", "colour"), "red", "data.colour: Extra inputs are not permitted"),
        (("data", "customer", "email"), "not-an-email", "data.customer.email: must be an email"),
        (("data", "customer"), {"first_name": "O"}, "data.customer: a customer needs at least"),
        (("occurred_at",), "2025-05-01T12:00:00", "occurred_at: must include a UTC offset"),
        (("occurred_at",), 1714564800, "occurred_at: must be an ISO 8601 string"),
        (("id",), "has spaces", "id: must be a string of 1-128"),
        (("data",), [], "data: Input should be a valid dictionary"),
    ],
)
def test_bad_cart_updated_is_a_parse_error_naming_the_field(path, value, message, load, ctx):
    payload = _with(load("generic/cart.updated.json"), path, value)
    with pytest.raises(ParseError) as caught:
        generic.parse("cart.updated", {}, payload, ctx)
    assert message in str(caught.value)


def test_customer_upserted_needs_an_id(load, ctx):
    payload = _with(load("generic/customer.upserted.json"), ("data", "id"), KeyError)
    with pytest.raises(ParseError, match=r"customer.upserted: data.id: is required"):
        generic.parse("customer.upserted", {}, payload, ctx)


def test_too_many_items_is_refused(load, ctx):
    payload = load("generic/cart.updated.json")
    payload["data"]["items"] = payload["data"]["items"][:1] * 101
    with pytest.raises(ParseError, match=r"data.items: List should have at most 100 items"):
        generic.parse("cart.updated", {}, payload, ctx)


def test_body_must_be_an_object():
    with pytest.raises(ParseError, match=r"order.placed: the body must be a JSON object"):
        generic.parse("order.placed", {}, ["id"])


def test_topic_header_and_delivery_key(load):
    payload = load("generic/order.placed.json")
    assert generic.topic({"x-nudge-topic": "Order.Placed"}) == "order.placed"
    assert generic.delivery_key("order.placed", {}, payload) == "generic:evt-order-9001"
    assert generic.delivery_key("order.placed", {}, dict(payload, id=42)) == "generic:42"
    with pytest.raises(ParseError, match=r"order.placed: id: must be a string"):
        generic.delivery_key("order.placed", {}, {"data": {}})


def test_unknown_topic_is_not_supported(load):
    assert generic.parse("cart.deleted", {}, load("generic/cart.updated.json")) == [
        NotSupported("cart.deleted")
    ]


# --- storefront -------------------------------------------------------------------------------


@pytest.fixture
def shop_ctx(received_at) -> ParseContext:
    """Return the context of a storefront report to shop.example.com."""
    return ParseContext(
        default_region="US", received_at=received_at, allowed_hosts=frozenset({"shop.example.com"})
    )


def test_storefront_cart_is_normalized(load, shop_ctx, received_at):
    cart = parse_storefront_cart(load("generic/storefront.cart.json"), shop_ctx)
    assert cart.token == cart.cart_token == "c1-8d0f2b7e"
    assert cart.customer is None
    assert cart.recovery_url == "https://shop.example.com/cart"
    assert cart.total == Decimal("199.00") and cart.currency == "USD"
    assert cart.occurred_at == received_at
    (item,) = cart.items
    assert (item.product_id, item.variant_id, item.title) == (
        "632910392",
        "808950810",
        "IPod Nano - 8GB",
    )


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("items", 0, "title"), "x" * 201, "items.0.title: must be a string of 1-200 characters"),
        (("items", 0, "price"), "1e9", "items.0.price: must be an amount"),
        (("items", 0, "price"), 1_000_000_001, "items.0.price: must be between 0 and"),
        (("items", 0, "price"), "0.00001", "items.0.price: must be an amount"),
        (("items", 0, "quantity"), 10_001, "items.0.quantity: Input should be less than"),
        (("items", 0, "url"), "/products/ipod", "items.0.url: must be an absolute http(s) URL"),
        (("cart_token",), "has space", "cart_token: must be 1-256 printable ASCII"),
        (("cart_token",), "t" * 257, "cart_token: must be 1-256 printable ASCII"),
        (("url",), "https://evil.example.net/cart", "url: is not on the shop's domain"),
        (("items", 0, "url"), "https://evil.example.net/p", "items.0.url: is not on the shop"),
        (("customer",), {"email": "a@b.co"}, "customer: Extra inputs are not permitted"),
        (("items",), None, "items: Input should be a valid list"),
    ],
)
def test_storefront_rejects_out_of_bounds_input(path, value, message, load, shop_ctx):
    payload = _with(load("generic/storefront.cart.json"), path, value)
    with pytest.raises(ParseError) as caught:
        parse_storefront_cart(payload, shop_ctx)
    assert message in str(caught.value)
    assert str(caught.value).startswith("storefront cart: ")


def test_storefront_rejects_more_than_100_items(load, shop_ctx):
    payload = load("generic/storefront.cart.json")
    payload["items"] = payload["items"] * 101
    with pytest.raises(ParseError, match="items: List should have at most 100 items"):
        parse_storefront_cart(payload, shop_ctx)
    payload["items"] = payload["items"][:100]
    assert len(parse_storefront_cart(payload, shop_ctx).items) == 100


def test_storefront_accepts_subdomains_and_needs_received_at(load, received_at):
    payload = _with(
        load("generic/storefront.cart.json"), ("url",), "https://www.shop.example.com/c"
    )
    hosts = frozenset({"shop.example.com"})
    ctx = ParseContext(received_at=received_at, allowed_hosts=hosts)
    assert parse_storefront_cart(payload, ctx).recovery_url == "https://www.shop.example.com/c"
    with pytest.raises(ValueError, match="received_at"):
        parse_storefront_cart(payload, ParseContext(allowed_hosts=hosts))

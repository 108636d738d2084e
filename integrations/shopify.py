"""Shopify webhooks: HMAC check, topic routing and normalization into ShopEvents.

Choices worth knowing:
- Ids are strings. Where a resource carries `admin_graphql_api_id` ("gid://shopify/Order/…")
  its numeric tail is preferred: it is exact even where a JSON producer rounded the number.
- Prices are read leniently: numbers and numeric strings become Decimal; anything else
  ("example string" in Shopify's anonymized exemplars) becomes None, never 0 and never an error.
  A missing total is the sum of the line prices when every line price is known, else None.
- Money is in the shop currency (`currency`, `price`, `total_price`).
- Category is the line item's `product_type` when present (vendor is a brand, not a category).
- `occurred_at` is the payload's `updated_at` (else `created_at`), else the
  `X-Shopify-Triggered-At` header, else `ParseContext.received_at`.
- Dedupe key: topic + `X-Shopify-Event-Id` (else `X-Shopify-Webhook-Id`). Shopify documents
  that the same event id on two webhooks means a duplicate, so a redelivery whose body differs
  (another subscription's `include_fields`, another serialization) is still the same event and
  is dropped. The topic is part of the key because one event may be delivered under several
  topics (an order created already paid: `orders/create` and `orders/paid`), and those must
  all be kept. Without those headers (never from Shopify itself) the key is topic + resource id
  + `updated_at` + a digest of the body: `updated_at` has one-second resolution, and two
  different bodies are never duplicates.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from integrations.base import (
    AppUninstalled,
    CartUpdated,
    CheckoutStarted,
    CustomerDataRequest,
    CustomerRedact,
    CustomerRef,
    CustomerUpserted,
    Headers,
    LineItem,
    NotSupported,
    OrderCancelled,
    OrderPlaced,
    OrderRefunded,
    ParseContext,
    ParseError,
    ShopEvent,
    ShopRedact,
    bounded_key,
    header,
    hmac_sha256,
    payload_digest,
    signature_matches,
    storable,
)
from integrations.fields import (
    best_phone,
    currency,
    customer_ref,
    email,
    first,
    first_timestamp,
    flag,
    ident,
    idents,
    money,
    obj,
    objects,
    place,
    quantity,
    tag_list,
    text,
    timestamp,
    url,
)

MAX_ITEMS = 250
_GID = re.compile(r"gid://shopify/([A-Za-z]+)/(\d{1,20})")
_CONSENT = {
    "subscribed": True,
    "unsubscribed": False,
    "not_subscribed": False,
    "redacted": False,
    "invalid": False,
}


@dataclass(frozen=True, slots=True)
class _Delivery:
    """One Shopify delivery being parsed."""

    topic: str
    payload: Mapping[str, Any]
    region: str | None
    fallback_time: datetime | None
    shop_domain: str | None

    def occurred_at(self, *values: Any) -> datetime:
        """Return the first readable timestamp among `values`, else the delivery's fallback."""
        return first_timestamp(*values, fallback=self.fallback_time, what=self.topic)


def resource_id(resource: Mapping[str, Any], kind: str) -> str | None:
    """Return the exact id of a Shopify resource: the gid's tail, else `id`."""
    gid = resource.get("admin_graphql_api_id")
    if isinstance(gid, str):
        match = _GID.fullmatch(gid.strip())
        if match and match.group(1) == kind:
            return match.group(2)
    return ident(resource.get("id"))


def _accepts_marketing(customer: Mapping[str, Any]) -> bool | None:
    consent = obj(customer.get("email_marketing_consent")).get("state")
    if isinstance(consent, str) and consent.lower() in _CONSENT:
        return _CONSENT[consent.lower()]
    return flag(customer.get("accepts_marketing"))


def _buyer(owner: Mapping[str, Any], region: str | None) -> CustomerRef | None:
    """Return who placed a checkout or order, from its customer, contact and billing data."""
    customer = obj(owner.get("customer"))
    billing = obj(owner.get("billing_address"))
    marketing = _accepts_marketing(customer)
    country, city = place(customer.get("default_address"), owner.get("shipping_address"), billing)
    ref = customer_ref(
        external_id=resource_id(customer, "Customer"),
        email_address=first(
            email(customer.get("email")),
            email(owner.get("email")),
            email(owner.get("contact_email")),
        ),
        phone=best_phone(
            customer.get("phone"),
            owner.get("phone"),
            owner.get("sms_marketing_phone"),
            billing.get("phone"),
            default_region=region,
        ),
        first_name=first(text(customer.get("first_name")), text(billing.get("first_name"))),
        last_name=first(text(customer.get("last_name")), text(billing.get("last_name"))),
        locale_tag=owner.get("customer_locale"),
        accepts_marketing=marketing
        if marketing is not None
        else flag(owner.get("buyer_accepts_marketing")),
        default_region=region,
        country=country,
        city=city,
    )
    return None if ref.is_anonymous else ref


def _line_items(owner: Mapping[str, Any]) -> tuple[LineItem, ...]:
    items = []
    for line in objects(owner.get("line_items"))[:MAX_ITEMS]:
        count = quantity(line.get("quantity"))
        if count == 0:
            continue
        image = line.get("image")
        items.append(
            LineItem(
                product_id=ident(line.get("product_id")),
                variant_id=ident(line.get("variant_id")),
                title=first(text(line.get("title")), text(line.get("name"))),
                category=text(line.get("product_type"), 100),
                sku=text(line.get("sku"), 100),
                price=money(line.get("price")),
                quantity=1 if count is None else count,
                url=url(line.get("url")),
                image=url(obj(image).get("src") if isinstance(image, Mapping) else image),
            )
        )
    return tuple(items)


def _total(value: Any, items: tuple[LineItem, ...]) -> Decimal | None:
    """Return the stated total, else the sum of the lines when every price is known."""
    stated = money(value)
    if stated is not None:
        return stated
    if any(item.price is None for item in items):
        return None
    return sum((item.price * item.quantity for item in items if item.price), Decimal(0))


def _cart_currency(cart: Mapping[str, Any]) -> str | None:
    for line in objects(cart.get("line_items")):
        code = currency(obj(obj(line.get("price_set")).get("shop_money")).get("currency_code"))
        if code:
            return code
    return currency(cart.get("currency"))


def _checkout(d: _Delivery) -> list[ShopEvent]:
    p = d.payload
    token = first(ident(p.get("token")), ident(p.get("id")))
    if token is None:
        raise ParseError(f"{d.topic}: the checkout has neither 'token' nor 'id'")
    occurred_at = d.occurred_at(p.get("updated_at"), p.get("created_at"))
    customer = _buyer(p, d.region)
    recovery_url = url(p.get("abandoned_checkout_url"))
    cart_token = ident(p.get("cart_token"))
    items = _line_items(p)
    completed = timestamp(p.get("completed_at")) is not None
    cart = CartUpdated(
        token=token,
        cart_token=cart_token,
        items=items,
        total=_total(p.get("total_price"), items),
        currency=currency(p.get("currency")),
        recovery_url=recovery_url,
        customer=customer,
        completed=completed,
        occurred_at=occurred_at,
    )
    if completed:
        return [cart]
    started = CheckoutStarted(
        token=token,
        cart_token=cart_token,
        recovery_url=recovery_url,
        customer=customer,
        occurred_at=occurred_at,
    )
    return [started, cart]


def _cart(d: _Delivery) -> list[ShopEvent]:
    p = d.payload
    token = first(ident(p.get("token")), ident(p.get("id")))
    if token is None:
        raise ParseError(f"{d.topic}: the cart has neither 'token' nor 'id'")
    items = _line_items(p)
    return [
        CartUpdated(
            token=token,
            cart_token=token,
            items=items,
            total=_total(p.get("total_price"), items),
            currency=_cart_currency(p),
            occurred_at=d.occurred_at(p.get("updated_at"), p.get("created_at")),
        )
    ]


def _order_id(d: _Delivery) -> str:
    order_id = resource_id(d.payload, "Order")
    if order_id is None:
        raise ParseError(f"{d.topic}: the order has no 'id'")
    return order_id


def _order_placed(d: _Delivery) -> list[ShopEvent]:
    p = d.payload
    items = _line_items(p)
    codes = (text(code.get("code"), 100) for code in objects(p.get("discount_codes")))
    return [
        OrderPlaced(
            order_id=_order_id(d),
            name=text(p.get("name"), 100),
            items=items,
            total=_total(p.get("total_price"), items),
            currency=currency(p.get("currency")),
            customer=_buyer(p, d.region),
            discount_codes=tuple(code for code in codes if code),
            checkout_token=ident(p.get("checkout_token")),
            cart_token=ident(p.get("cart_token")),
            status=text(p.get("financial_status"), 40),
            order_url=url(p.get("order_status_url")),
            placed_at=timestamp(p.get("processed_at")) or timestamp(p.get("created_at")),
            occurred_at=d.occurred_at(p.get("updated_at"), p.get("created_at")),
        ),
        *_embedded_refunds(d),
    ]


def _order_cancelled(d: _Delivery) -> list[ShopEvent]:
    p = d.payload
    return [
        OrderCancelled(
            order_id=_order_id(d),
            reason=text(p.get("cancel_reason"), 100),
            occurred_at=d.occurred_at(p.get("updated_at"), p.get("cancelled_at")),
        ),
        *_embedded_refunds(d),
    ]


def _refunded_money(refund: Mapping[str, Any]) -> tuple[Decimal | None, str | None]:
    """Return the money given back: the refund's successful refund transactions.

    A refund can move no money (a restock only): that is 0. Without a `transactions` list, or
    with an amount that cannot be read, the amount is unknown (None), never guessed.
    """
    transactions = refund.get("transactions")
    if not isinstance(transactions, list):
        return None, None
    total, code = Decimal(0), None
    for transaction in objects(transactions):
        kind = str(transaction.get("kind") or "").lower()
        status = str(transaction.get("status") or "").lower()
        if kind != "refund" or status != "success":
            continue
        amount = money(transaction.get("amount"))
        if amount is None:
            return None, None
        total += amount
        code = code or currency(transaction.get("currency"))
    return total, code


def _refund(d: _Delivery, refund: Mapping[str, Any], order_id: str | None) -> OrderRefunded:
    refund_id = resource_id(refund, "Refund")
    if refund_id is None:
        raise ParseError(f"{d.topic}: the refund has no 'id'")
    order_id = order_id or ident(refund.get("order_id"))
    if order_id is None:
        raise ParseError(f"{d.topic}: the refund has no 'order_id'")
    amount, code = _refunded_money(refund)
    return OrderRefunded(
        order_id=order_id,
        refund_id=refund_id,
        amount=amount,
        currency=code,
        reason=text(refund.get("note"), 200),
        occurred_at=d.occurred_at(refund.get("processed_at"), refund.get("created_at")),
    )


def _embedded_refunds(d: _Delivery) -> list[ShopEvent]:
    """Return the refunds an order payload lists (each counted once, by its id)."""
    order_id = _order_id(d)
    found: list[ShopEvent] = []
    for refund in objects(d.payload.get("refunds"))[:MAX_ITEMS]:
        if resource_id(refund, "Refund") is not None:
            found.append(_refund(d, refund, order_id))
    return found


def _refund_created(d: _Delivery) -> list[ShopEvent]:
    return [_refund(d, d.payload, None)]


def _customer(d: _Delivery) -> list[ShopEvent]:
    p = d.payload
    customer_id = resource_id(p, "Customer")
    if customer_id is None:
        raise ParseError(f"{d.topic}: the customer has no 'id'")
    address = obj(p.get("default_address"))
    addresses = objects(p.get("addresses"))
    country, city = place(address, *addresses[:1])
    customer = customer_ref(
        external_id=customer_id,
        email_address=p.get("email"),
        phone=best_phone(p.get("phone"), address.get("phone"), default_region=d.region),
        first_name=p.get("first_name"),
        last_name=p.get("last_name"),
        locale_tag=p.get("locale"),
        accepts_marketing=_accepts_marketing(p),
        default_region=d.region,
        country=country,
        city=city,
        tags=tag_list(p["tags"]) if "tags" in p else None,
    )
    occurred_at = d.occurred_at(p.get("updated_at"), p.get("created_at"))
    return [CustomerUpserted(customer=customer, occurred_at=occurred_at)]


def _compliance_customer(d: _Delivery) -> CustomerRef:
    raw = obj(d.payload.get("customer"))
    ref = customer_ref(
        external_id=raw.get("id"),
        email_address=raw.get("email"),
        phone=raw.get("phone"),
        default_region=d.region,
    )
    if ref.is_anonymous and ref.phone is None:
        raise ParseError(f"{d.topic}: 'customer' has no id, email or phone")
    return ref


def _customer_redact(d: _Delivery) -> list[ShopEvent]:
    return [
        CustomerRedact(
            customer=_compliance_customer(d),
            order_ids=idents(d.payload.get("orders_to_redact")),
            occurred_at=d.occurred_at(),
        )
    ]


def _customer_data_request(d: _Delivery) -> list[ShopEvent]:
    return [
        CustomerDataRequest(
            customer=_compliance_customer(d),
            order_ids=idents(d.payload.get("orders_requested")),
            request_id=ident(obj(d.payload.get("data_request")).get("id")),
            occurred_at=d.occurred_at(),
        )
    ]


def _shop_redact(d: _Delivery) -> list[ShopEvent]:
    p = d.payload
    return [
        ShopRedact(
            shop_id=ident(p.get("shop_id")),
            shop_domain=first(text(p.get("shop_domain"), 255), d.shop_domain),
            occurred_at=d.occurred_at(),
        )
    ]


def _app_uninstalled(d: _Delivery) -> list[ShopEvent]:
    p = d.payload
    return [
        AppUninstalled(
            shop_id=ident(p.get("id")),
            shop_domain=first(
                text(p.get("myshopify_domain"), 255), text(p.get("domain"), 255), d.shop_domain
            ),
            occurred_at=d.occurred_at(p.get("updated_at")),
        )
    ]


_PARSERS: dict[str, Callable[[_Delivery], list[ShopEvent]]] = {
    "checkouts/create": _checkout,
    "checkouts/update": _checkout,
    "carts/create": _cart,
    "carts/update": _cart,
    "orders/create": _order_placed,
    "orders/paid": _order_placed,
    "orders/cancelled": _order_cancelled,
    "refunds/create": _refund_created,
    "customers/create": _customer,
    "customers/update": _customer,
    "app/uninstalled": _app_uninstalled,
    "customers/redact": _customer_redact,
    "customers/data_request": _customer_data_request,
    "shop/redact": _shop_redact,
}


class ShopifyAdapter:
    """Shopify: `X-Shopify-Hmac-Sha256`, `X-Shopify-Topic`, `X-Shopify-Event-Id`."""

    name = "shopify"
    answers_errors = False
    subscribe_topics: tuple[str, ...] = (
        "checkouts/create",
        "checkouts/update",
        "carts/create",
        "carts/update",
        "orders/create",
        "orders/paid",
        "orders/cancelled",
        "refunds/create",
        "customers/create",
        "customers/update",
        "app/uninstalled",
    )
    compliance_topics: tuple[str, ...] = (
        "customers/data_request",
        "customers/redact",
        "shop/redact",
    )

    def verify(self, headers: Headers, raw_body: bytes, secret: str) -> bool:
        """Check `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw body)."""
        if not secret or not isinstance(raw_body, bytes | bytearray):
            return False
        expected = base64.b64encode(hmac_sha256(secret, bytes(raw_body))).decode("ascii")
        return signature_matches(expected, header(headers, "X-Shopify-Hmac-Sha256"))

    def is_ping(self, headers: Headers, raw_body: bytes) -> bool:
        """Return False: Shopify sends no unsigned pings."""
        return False

    def topic(self, headers: Headers) -> str:
        """Return `X-Shopify-Topic`, lower-cased."""
        return (header(headers, "X-Shopify-Topic") or "").lower()

    def delivery_key(self, topic: str, headers: Headers, payload: Any) -> str:
        """Return topic + event id (`X-Shopify-Event-Id`, else `X-Shopify-Webhook-Id`)."""
        delivery = header(headers, "X-Shopify-Event-Id") or header(headers, "X-Shopify-Webhook-Id")
        if delivery:
            return bounded_key("shopify", topic or "-", delivery)
        p = obj(payload)
        resource = first(ident(p.get("id")), ident(p.get("token"))) or "-"
        changed = text(p.get("updated_at"), 40) or "-"
        return bounded_key("shopify", topic or "-", resource, changed, payload_digest(payload))

    def parse(
        self, topic: str, headers: Headers, payload: Any, ctx: ParseContext | None = None
    ) -> list[ShopEvent]:
        """Turn a Shopify delivery into events; unknown topics give [NotSupported]."""
        ctx = ctx or ParseContext()
        topic = topic.strip().lower()
        reader = _PARSERS.get(topic)
        if reader is None:
            return [NotSupported(topic, occurred_at=ctx.received_at)]
        if not isinstance(payload, Mapping):
            raise ParseError(f"{topic}: the payload must be a JSON object")
        delivery = _Delivery(
            topic=topic,
            payload=payload,
            region=ctx.default_region,
            fallback_time=timestamp(header(headers, "X-Shopify-Triggered-At")) or ctx.received_at,
            shop_domain=text(header(headers, "X-Shopify-Shop-Domain"), 255),
        )
        return storable(reader(delivery), topic)


adapter = ShopifyAdapter()

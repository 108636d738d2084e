"""WooCommerce webhooks: signature, activation ping, topic/status routing into ShopEvents.

Choices worth knowing:
- Order topics are routed by the order's `status`: completed/processing/on-hold → OrderPlaced;
  cancelled/refunded/failed → OrderCancelled (a fully refunded order counts for nothing);
  pending/checkout-draft (created, not paid: an abandoned payment) → CheckoutStarted +
  CartUpdated keyed by the order key, whose pending reminders the later OrderPlaced
  (checkout_token = order key) cancels; any other status → NotSupported. order.deleted →
  OrderCancelled(reason="deleted").
- The refunds a placed, cancelled or refunded order lists (`refunds`: id, reason, total as a
  negative string) follow as OrderRefunded events, at the order's modification time; the store
  counts each refund id once, so every later delivery listing it again is harmless.
- The customer's country and city come from the shipping address, else the billing address.
- Times come from the `*_gmt` fields (naive, GMT); the site-local `date_modified` is never used.
- The legacy v1–v3 body shape `{"order": {...}}` is unwrapped and its field names understood.
- Names are HTML-unescaped ("Ship Your Idea &ndash; Black" → "Ship Your Idea – Black").
- Dedupe key: topic + resource id + `date_modified_gmt` + a digest of the body (canonical
  JSON). WooCommerce's Delivery-ID is not an event id (it can repeat) and `date_modified_gmt`
  has one-second resolution: `order.updated` pending then processing in the same second share
  it, so only the body tells them apart. An identical body is a duplicate whatever the
  Delivery-ID (WooCommerce fires some hooks twice per save); a differing body never is. A
  `*.deleted` delivery without a modification time is keyed by topic + id: a deletion is final,
  two of them are one event.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from integrations.base import (
    CartUpdated,
    CheckoutStarted,
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
    ProductUpserted,
    ShopEvent,
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
    money,
    obj,
    objects,
    place,
    positive_ident,
    quantity,
    text,
    timestamp,
    url,
)

MAX_ITEMS = 250
PLACED_STATUSES = frozenset({"completed", "processing", "on-hold"})
CANCELLED_STATUSES = frozenset({"cancelled", "refunded", "failed"})
UNPAID_STATUSES = frozenset({"pending", "checkout-draft"})

_PING = re.compile(rb"\s*webhook_id=\d{1,20}\s*")
_ENTITY = re.compile(r"&(lt|gt|amp|quot);|&#0*(60|62|38|34|39);|&#[xX]0*(26|22|27);")
_ENTITY_CHAR = {
    "lt": "<",
    "gt": ">",
    "amp": "&",
    "quot": '"',
    "60": "<",
    "62": ">",
    "38": "&",
    "34": '"',
    "39": "'",
    "26": "&",
    "22": '"',
    "27": "'",
}


def signature(raw_body: bytes, secret: str) -> str:
    """Return the X-WC-Webhook-Signature WooCommerce computes for `raw_body`."""
    return base64.b64encode(hmac_sha256(wp_specialchars_decode(secret), raw_body)).decode("ascii")


def wp_specialchars_decode(secret: str) -> str:
    """Decode the HTML entities WordPress decodes before keying the HMAC (ENT_QUOTES)."""
    return _ENTITY.sub(lambda m: _ENTITY_CHAR[next(g for g in m.groups() if g)], secret)


@dataclass(frozen=True, slots=True)
class _Delivery:
    """One WooCommerce delivery being parsed."""

    topic: str
    payload: Mapping[str, Any]
    region: str | None
    received_at: datetime | None

    def occurred_at(self) -> datetime:
        """Return when the resource last changed, from the GMT fields."""
        p = self.payload
        return first_timestamp(
            p.get("date_modified_gmt"),
            p.get("updated_at"),
            p.get("date_created_gmt"),
            p.get("created_at"),
            fallback=self.received_at,
            what=self.topic,
        )

    def resource_id(self, kind: str) -> str:
        """Return the resource's id, raising ParseError when it has none."""
        found = positive_ident(self.payload.get("id"))
        if found is None:
            raise ParseError(f"{self.topic}: the {kind} has no 'id'")
        return found


def _unwrap(payload: Any) -> Mapping[str, Any]:
    """Return the resource, unwrapping the legacy `{"order": {...}}` body."""
    p = obj(payload)
    if len(p) == 1 and "id" not in p:
        (inner,) = p.values()
        if isinstance(inner, Mapping):
            return inner
    return p


def _line_items(order: Mapping[str, Any]) -> tuple[LineItem, ...]:
    items = []
    for line in objects(order.get("line_items"))[:MAX_ITEMS]:
        count = quantity(line.get("quantity"))
        if count == 0:
            continue
        items.append(
            LineItem(
                product_id=positive_ident(line.get("product_id")),
                variant_id=positive_ident(line.get("variation_id")),
                title=text(line.get("name"), unescape=True),
                sku=text(line.get("sku"), 100),
                price=money(line.get("price")),
                quantity=1 if count is None else count,
                image=url(obj(line.get("image")).get("src")),
            )
        )
    return tuple(items)


def _place(resource: Mapping[str, Any]) -> tuple[str | None, str | None]:
    shipping = obj(resource.get("shipping")) or obj(resource.get("shipping_address"))
    billing = obj(resource.get("billing")) or obj(resource.get("billing_address"))
    return place(shipping, billing)


def _buyer(order: Mapping[str, Any], region: str | None) -> CustomerRef | None:
    billing = obj(order.get("billing")) or obj(order.get("billing_address"))
    legacy = obj(order.get("customer"))
    country, city = _place(order)
    ref = customer_ref(
        external_id=positive_ident(first(order.get("customer_id"), legacy.get("id"))),
        email_address=first(email(billing.get("email")), email(legacy.get("email"))),
        phone=best_phone(billing.get("phone"), default_region=region),
        first_name=first(text(billing.get("first_name")), text(legacy.get("first_name"))),
        last_name=first(text(billing.get("last_name")), text(legacy.get("last_name"))),
        default_region=region,
        country=country,
        city=city,
    )
    return None if ref.is_anonymous else ref


def _refunds(d: _Delivery, order_id: str, *, full: bool) -> list[ShopEvent]:
    """Return the refunds the order lists; WooCommerce writes their totals negative."""
    found: list[ShopEvent] = []
    for refund in objects(d.payload.get("refunds"))[:MAX_ITEMS]:
        refund_id = positive_ident(refund.get("id"))
        if refund_id is None:
            continue
        total = refund.get("total")
        if isinstance(total, str):
            total = total.strip().removeprefix("-")
        elif isinstance(total, int | float) and not isinstance(total, bool):
            total = abs(total)
        found.append(
            OrderRefunded(
                order_id=order_id,
                refund_id=refund_id,
                amount=money(total),
                currency=currency(d.payload.get("currency")),
                full=full,
                reason=text(first(refund.get("reason"), refund.get("refund")), 200),
                occurred_at=d.occurred_at(),
            )
        )
    return found


def _order(d: _Delivery) -> list[ShopEvent]:
    p = d.payload
    order_id = d.resource_id("order")
    status = text(p.get("status"), 40)
    if status is None:
        raise ParseError(f"{d.topic}: the order has no 'status'")
    status = status.lower().removeprefix("wc-")
    occurred_at = d.occurred_at()
    if status in CANCELLED_STATUSES:
        return [
            OrderCancelled(order_id=order_id, reason=status, occurred_at=occurred_at),
            *_refunds(d, order_id, full=status == "refunded"),
        ]
    if status not in PLACED_STATUSES | UNPAID_STATUSES:
        return [NotSupported(d.topic, reason=f"order status {status!r}", occurred_at=occurred_at)]
    items = _line_items(p)
    total = money(p.get("total"))
    code = currency(p.get("currency"))
    customer = _buyer(p, d.region)
    order_key = text(p.get("order_key"), 100)
    if status in UNPAID_STATUSES:
        token = order_key or f"order-{order_id}"
        recovery_url = url(p.get("payment_url"))
        return [
            CheckoutStarted(
                token=token, recovery_url=recovery_url, customer=customer, occurred_at=occurred_at
            ),
            CartUpdated(
                token=token,
                items=items,
                total=total,
                currency=code,
                recovery_url=recovery_url,
                customer=customer,
                occurred_at=occurred_at,
            ),
        ]
    codes = (text(line.get("code"), 100) for line in objects(p.get("coupon_lines")))
    return [
        OrderPlaced(
            order_id=order_id,
            name=positive_ident(first(p.get("number"), p.get("order_number"))),
            items=items,
            total=total,
            currency=code,
            customer=customer,
            discount_codes=tuple(c for c in codes if c),
            checkout_token=order_key,
            status=status,
            order_url=url(p.get("view_order_url")),
            placed_at=timestamp(p.get("date_created_gmt")) or timestamp(p.get("created_at")),
            occurred_at=occurred_at,
        ),
        *_refunds(d, order_id, full=False),
    ]


def _order_deleted(d: _Delivery) -> list[ShopEvent]:
    return [
        OrderCancelled(
            order_id=d.resource_id("order"), reason="deleted", occurred_at=d.occurred_at()
        )
    ]


def _customer(d: _Delivery) -> list[ShopEvent]:
    p = d.payload
    billing = obj(p.get("billing")) or obj(p.get("billing_address"))
    country, city = _place(p)
    customer = customer_ref(
        external_id=d.resource_id("customer"),
        email_address=first(email(p.get("email")), email(billing.get("email"))),
        phone=best_phone(billing.get("phone"), default_region=d.region),
        first_name=first(text(p.get("first_name")), text(billing.get("first_name"))),
        last_name=first(text(p.get("last_name")), text(billing.get("last_name"))),
        default_region=d.region,
        country=country,
        city=city,
    )
    return [CustomerUpserted(customer=customer, occurred_at=d.occurred_at())]


def _product(d: _Delivery) -> list[ShopEvent]:
    p = d.payload
    categories = [c for c in objects(p.get("categories")) if text(c.get("name"))]
    images = [i for i in objects(p.get("images")) if url(i.get("src"))]
    return [
        ProductUpserted(
            product_id=d.resource_id("product"),
            title=text(p.get("name"), unescape=True),
            category=text(categories[0].get("name"), 100, unescape=True) if categories else None,
            sku=text(p.get("sku"), 100),
            price=money(p.get("price")),
            url=url(first(p.get("permalink"), p.get("permalink_url"))),
            image=url(images[0].get("src")) if images else None,
            occurred_at=d.occurred_at(),
        )
    ]


_PARSERS: dict[str, Callable[[_Delivery], list[ShopEvent]]] = {
    "order.created": _order,
    "order.updated": _order,
    "order.deleted": _order_deleted,
    "customer.created": _customer,
    "customer.updated": _customer,
    "product.created": _product,
    "product.updated": _product,
}


class WooCommerceAdapter:
    """WooCommerce: `X-WC-Webhook-Signature`, `X-WC-Webhook-Topic`, the activation ping."""

    name = "woocommerce"
    answers_errors = False
    subscribe_topics: tuple[str, ...] = tuple(_PARSERS)  # every topic parsed is one to subscribe

    def verify(self, headers: Headers, raw_body: bytes, secret: str) -> bool:
        """Check `X-WC-Webhook-Signature` (base64 HMAC-SHA256 of the raw body)."""
        if not secret or not isinstance(raw_body, bytes | bytearray):
            return False
        return signature_matches(
            signature(bytes(raw_body), secret), header(headers, "X-WC-Webhook-Signature")
        )

    def is_ping(self, headers: Headers, raw_body: bytes) -> bool:
        """Recognize the unsigned `webhook_id=N` ping WooCommerce sends when a hook is saved."""
        if not isinstance(raw_body, bytes | bytearray) or not _PING.fullmatch(raw_body):
            return False
        topic = self.topic(headers)
        return topic == "" or topic.startswith("action.")

    def topic(self, headers: Headers) -> str:
        """Return `X-WC-Webhook-Topic`, lower-cased."""
        return (header(headers, "X-WC-Webhook-Topic") or "").lower()

    def delivery_key(self, topic: str, headers: Headers, payload: Any) -> str:
        """Return topic + resource id + `date_modified_gmt` + body digest (see the module)."""
        p = _unwrap(payload)
        resource = positive_ident(p.get("id"))
        modified = first(text(p.get("date_modified_gmt"), 40), text(p.get("updated_at"), 40))
        if resource and not modified and topic.endswith(".deleted"):
            return bounded_key("woocommerce", topic, resource)
        digest = payload_digest(payload)
        return bounded_key("woocommerce", topic, resource or "-", modified or "-", digest)

    def parse(
        self, topic: str, headers: Headers, payload: Any, ctx: ParseContext | None = None
    ) -> list[ShopEvent]:
        """Turn a WooCommerce delivery into events; unknown topics give [NotSupported]."""
        ctx = ctx or ParseContext()
        topic = topic.strip().lower()
        reader = _PARSERS.get(topic)
        if reader is None:
            return [NotSupported(topic, occurred_at=ctx.received_at)]
        if not isinstance(payload, Mapping):
            raise ParseError(f"{topic}: the payload must be a JSON object")
        delivery = _Delivery(
            topic=topic,
            payload=_unwrap(payload),
            region=ctx.default_region,
            received_at=ctx.received_at,
        )
        return storable(reader(delivery), topic)


adapter = WooCommerceAdapter()

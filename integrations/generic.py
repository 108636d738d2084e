"""Nudge's own webhook format for any platform or custom shop, and the public storefront cart.

The format is documented in `integrations/GENERIC.md` and described by
`integrations/schemas/generic-webhook.schema.json`; the pydantic models below are the validator
that runs (no jsonschema dependency), so keep the three in step.

- Signature: `X-Nudge-Signature: sha256=<lower-case hex HMAC-SHA256 of the raw body>`.
- Topic: the `X-Nudge-Topic` header (customer.upserted, cart.updated, order.placed,
  order.cancelled, order.refunded, product.viewed).
- Body: `{"id": <idempotency key>, "occurred_at": <ISO 8601 with offset>, "data": {...}}`;
  the `id` is covered by the signature and is the inbox dedupe key. The sender promises that
  one `id` names one change: a repeated `id` with the same content (compared as canonical
  JSON, `payload_digest`) is a duplicate; a repeated `id` with other content is a sender bug
  that the web layer answers 409 rather than drop silently (`answers_errors`: this sender reads
  4xx answers).

Validation is strict (unknown fields are refused) because the sender is a developer who wants
to hear about a typo at once; every failure is a ParseError naming the field.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from yarl import URL

from integrations.base import (
    CartUpdated,
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
    ProductViewed,
    ShopEvent,
    header,
    moment_problem,
    normalize_tags,
    signature_matches,
    storable,
    tags_problem,
    text_problem,
    url_problem,
    utc,
)
from integrations.fields import country_code, e164

MAX_ITEMS = 100
MAX_PRICE = Decimal(1_000_000_000)
_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_MONEY = re.compile(r"\d{1,10}(\.\d{1,4})?")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,252}\.[^@\s.]{1,63}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_LOCALE = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,256}")


# ---------------------------------------------------------------------------------------------
# Field types


def _identifier(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**20:
        return str(value)
    if isinstance(value, str) and _ID.fullmatch(value):
        return value
    raise ValueError("must be a string of 1-128 letters, digits or ._:@/+=- or an integer ≥ 0")


def _amount(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    try:
        if isinstance(value, int):
            amount = Decimal(value)
        elif isinstance(value, float):
            amount = Decimal(repr(value))
        elif isinstance(value, str) and _MONEY.fullmatch(value):
            amount = Decimal(value)
        else:
            raise ValueError
    except (ValueError, InvalidOperation):
        raise ValueError('must be an amount ≥ 0 such as 19.99 or "19.99"') from None
    if not amount.is_finite() or not 0 <= amount <= MAX_PRICE:
        raise ValueError("must be between 0 and 1000000000")
    if amount.as_tuple().exponent < -4:  # type: ignore[operator]
        raise ValueError("must have at most 4 decimal places")
    return amount


def _moment(value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError('must be an ISO 8601 string such as "2025-05-01T12:00:00Z"')
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError('must be an ISO 8601 string such as "2025-05-01T12:00:00Z"') from None
    if moment.utcoffset() is None:
        raise ValueError('must include a UTC offset ("Z" or "+02:00")')
    try:
        moment = utc(moment)
    except OverflowError:
        raise ValueError("is out of range") from None
    problem = moment_problem(moment)
    if problem:
        raise ValueError(f"must be between 1970-01-01 and 2099-12-31, not {value}")
    return moment


def _day(value: Any) -> date:
    try:
        if isinstance(value, str) and len(value) == 10:
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise ValueError('must be a date "YYYY-MM-DD"')


def _storable_text(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(f"must be text that can be stored: it {problem}")
    return value


def _email(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 254 or not _EMAIL.fullmatch(value.strip()):
        raise ValueError("must be an email address")
    return _storable_text(value.strip().lower())


def _http_url(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an absolute http(s) URL of at most 2048 characters")
    problem = url_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _text(limit: int, shortest: int = 1) -> Any:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not shortest <= len(value.strip()) <= limit:
            raise ValueError(f"must be a string of {shortest}-{limit} characters")
        return _storable_text(value.strip())

    return Annotated[str, BeforeValidator(check)]


def _country(value: Any) -> str:
    code = country_code(value) if isinstance(value, str) and len(value) == 2 else None
    if code is None:
        raise ValueError('must be an ISO 3166-1 alpha-2 country code such as "UA"')
    return code


def _tags(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise ValueError("must be a list of strings")
    tags = normalize_tags(value)
    problem = tags_problem(tags)
    if problem:
        raise ValueError(f"tag {problem}" if problem[0].isdigit() else problem)
    return tags


def _matching(pattern: re.Pattern[str], explanation: str) -> Any:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(explanation)
        return value

    return Annotated[str, BeforeValidator(check)]


Identifier = Annotated[str, BeforeValidator(_identifier)]
Money = Annotated[Decimal, BeforeValidator(_amount)]
Moment = Annotated[datetime, BeforeValidator(_moment)]
Birthday = Annotated[date, BeforeValidator(_day)]
Email = Annotated[str, BeforeValidator(_email)]
Url = Annotated[str, BeforeValidator(_http_url)]
Title = _text(200)
Name = _text(100)
Phone = _text(40, shortest=3)
Currency = _matching(_CURRENCY, 'must be an ISO 4217 code in capitals such as "EUR"')
Locale = _matching(_LOCALE, 'must be a language tag such as "uk" or "pt-BR"')
Token = _matching(_TOKEN, "must be 1-256 printable ASCII characters without spaces")
Quantity = Annotated[int, Field(strict=True, ge=1, le=10_000)]
Country = Annotated[str, BeforeValidator(_country)]
City = _text(200)
Tags = Annotated[tuple[str, ...], BeforeValidator(_tags)]
Flag = Annotated[bool, Field(strict=True)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# Payload models (mirror schemas/generic-webhook.schema.json)


class Customer(_Model):
    """A customer as the shop knows them; at least one of id, email, phone."""

    id: Identifier | None = None
    email: Email | None = None
    phone: Phone | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    locale: Locale | None = None
    accepts_marketing: Flag | None = None
    birthday: Birthday | None = None
    country: Country | None = None
    city: City | None = None
    tags: Tags | None = None

    @model_validator(mode="after")
    def _identified(self) -> Customer:
        if self.id is None and self.email is None and self.phone is None:
            raise ValueError("a customer needs at least one of id, email or phone")
        return self

    def ref(self, region: str | None) -> CustomerRef:
        """Return the normalized customer reference."""
        return CustomerRef(
            external_id=self.id,
            email=self.email,
            phone=self.phone,
            phone_e164=e164(self.phone, region),
            first_name=self.first_name,
            last_name=self.last_name,
            locale=self.locale.replace("_", "-") if self.locale else None,
            accepts_marketing=self.accepts_marketing,
            country=self.country,
            city=self.city,
            tags=self.tags,
        )


class Item(_Model):
    """One line of a cart or order."""

    product_id: Identifier
    variant_id: Identifier | None = None
    title: Title
    category: Name | None = None
    sku: Name | None = None
    price: Money
    quantity: Quantity
    url: Url | None = None
    image: Url | None = None

    def line(self) -> LineItem:
        """Return the normalized line item."""
        return LineItem(
            product_id=self.product_id,
            variant_id=self.variant_id,
            title=self.title,
            category=self.category,
            sku=self.sku,
            price=self.price,
            quantity=self.quantity,
            url=self.url,
            image=self.image,
        )


Items = Annotated[list[Item], Field(max_length=MAX_ITEMS)]


class Envelope(_Model):
    """Every generic delivery: idempotency key, time, topic-specific data."""

    id: Identifier
    occurred_at: Moment
    data: dict[str, Any]


class CartData(_Model):
    """data of cart.updated."""

    token: Token
    items: Items
    total: Money | None = None
    currency: Currency
    recovery_url: Url | None = None
    customer: Customer | None = None
    completed: Flag = False


class OrderData(_Model):
    """data of order.placed."""

    order_id: Identifier
    name: Name | None = None
    items: Items
    total: Money
    currency: Currency
    customer: Customer | None = None
    discount_codes: Annotated[list[Name], Field(max_length=20)] = []
    cart_token: Token | None = None
    checkout_token: Token | None = None
    order_url: Url | None = None
    placed_at: Moment | None = None


class CancelData(_Model):
    """data of order.cancelled."""

    order_id: Identifier
    reason: Name | None = None


class RefundData(_Model):
    """data of order.refunded: one refund, named by `refund_id` (counted once)."""

    order_id: Identifier
    refund_id: Identifier
    amount: Money
    currency: Currency | None = None
    full: Flag = False
    reason: Name | None = None


class ProductViewData(_Model):
    """data of product.viewed."""

    product_id: Identifier
    variant_id: Identifier | None = None
    title: Title | None = None
    category: Name | None = None
    price: Money | None = None
    currency: Currency | None = None
    url: Url | None = None
    image: Url | None = None
    customer: Customer | None = None
    cart_token: Token | None = None


class StorefrontCart(_Model):
    """Body the storefront snippet posts to the public endpoint (no secret)."""

    cart_token: Token
    items: Items
    currency: Currency
    url: Url


M = TypeVar("M", bound=BaseModel)


def _explain(error: ValidationError, where: str, prefix: str) -> str:
    reasons = []
    for item in error.errors(include_url=False)[:5]:
        path = ".".join(str(part) for part in (prefix, *item["loc"]) if part != "")
        message = item["msg"].removeprefix("Value error, ")
        reasons.append(f"{path or 'body'}: {message}")
    more = error.error_count() - len(reasons)
    suffix = f" (and {more} more)" if more > 0 else ""
    return f"{where}: " + "; ".join(reasons) + suffix


def validate(model: type[M], payload: Any, where: str, prefix: str = "") -> M:
    """Validate `payload` against `model`, raising ParseError that names the bad fields."""
    if not isinstance(payload, Mapping):
        raise ParseError(f"{where}: {prefix or 'the body'} must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise ParseError(_explain(error, where, prefix)) from None


def _lines(items: list[Item]) -> tuple[LineItem, ...]:
    return tuple(item.line() for item in items)


def _sum(items: list[Item]) -> Decimal:
    return sum((item.price * item.quantity for item in items), Decimal(0))


# ---------------------------------------------------------------------------------------------
# Topics


@dataclass(frozen=True, slots=True)
class _Topic:
    """How one generic topic is validated and normalized."""

    model: type[BaseModel]
    build: Callable[[Envelope, Any, str | None], ShopEvent]


def _customer_upserted(envelope: Envelope, data: Customer, region: str | None) -> ShopEvent:
    if data.id is None:
        raise ParseError("customer.upserted: data.id: is required")
    return CustomerUpserted(
        customer=data.ref(region), birthday=data.birthday, occurred_at=envelope.occurred_at
    )


def _cart_updated(envelope: Envelope, data: CartData, region: str | None) -> ShopEvent:
    return CartUpdated(
        token=data.token,
        cart_token=data.token,
        items=_lines(data.items),
        total=data.total if data.total is not None else _sum(data.items),
        currency=data.currency,
        recovery_url=data.recovery_url,
        customer=data.customer.ref(region) if data.customer else None,
        completed=data.completed,
        occurred_at=envelope.occurred_at,
    )


def _order_placed(envelope: Envelope, data: OrderData, region: str | None) -> ShopEvent:
    return OrderPlaced(
        order_id=data.order_id,
        name=data.name,
        items=_lines(data.items),
        total=data.total,
        currency=data.currency,
        customer=data.customer.ref(region) if data.customer else None,
        discount_codes=tuple(data.discount_codes),
        checkout_token=data.checkout_token,
        cart_token=data.cart_token,
        order_url=data.order_url,
        placed_at=data.placed_at or envelope.occurred_at,
        occurred_at=envelope.occurred_at,
    )


def _order_cancelled(envelope: Envelope, data: CancelData, region: str | None) -> ShopEvent:
    return OrderCancelled(
        order_id=data.order_id, reason=data.reason, occurred_at=envelope.occurred_at
    )


def _order_refunded(envelope: Envelope, data: RefundData, region: str | None) -> ShopEvent:
    return OrderRefunded(
        order_id=data.order_id,
        refund_id=data.refund_id,
        amount=data.amount,
        currency=data.currency,
        full=data.full,
        reason=data.reason,
        occurred_at=envelope.occurred_at,
    )


def _product_viewed(envelope: Envelope, data: ProductViewData, region: str | None) -> ShopEvent:
    return ProductViewed(
        product_id=data.product_id,
        variant_id=data.variant_id,
        title=data.title,
        category=data.category,
        price=data.price,
        currency=data.currency,
        url=data.url,
        image=data.image,
        customer=data.customer.ref(region) if data.customer else None,
        cart_token=data.cart_token,
        occurred_at=envelope.occurred_at,
    )


TOPICS: dict[str, _Topic] = {
    "customer.upserted": _Topic(Customer, _customer_upserted),
    "cart.updated": _Topic(CartData, _cart_updated),
    "order.placed": _Topic(OrderData, _order_placed),
    "order.cancelled": _Topic(CancelData, _order_cancelled),
    "order.refunded": _Topic(RefundData, _order_refunded),
    "product.viewed": _Topic(ProductViewData, _product_viewed),
}


def sign(raw_body: bytes, secret: str) -> str:
    """Return the `X-Nudge-Signature` value for `raw_body`: "sha256=<hex>"."""
    digest = hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class GenericAdapter:
    """Nudge's own format: `X-Nudge-Signature`, `X-Nudge-Topic`, body `id` as the key."""

    name = "generic"
    subscribe_topics: tuple[str, ...] = tuple(TOPICS)
    answers_errors = True

    def verify(self, headers: Headers, raw_body: bytes, secret: str) -> bool:
        """Check `X-Nudge-Signature: sha256=<hex HMAC-SHA256 of the raw body>`."""
        if not secret or not isinstance(raw_body, bytes | bytearray):
            return False
        given = header(headers, "X-Nudge-Signature")
        return signature_matches(sign(bytes(raw_body), secret), given.lower() if given else None)

    def is_ping(self, headers: Headers, raw_body: bytes) -> bool:
        """Return False: the generic format has no unsigned pings."""
        return False

    def topic(self, headers: Headers) -> str:
        """Return `X-Nudge-Topic`, lower-cased."""
        return (header(headers, "X-Nudge-Topic") or "").lower()

    def delivery_key(self, topic: str, headers: Headers, payload: Any) -> str:
        """Return "generic:" + the body's `id`; raise ParseError when it is missing."""
        key = payload.get("id") if isinstance(payload, Mapping) else None
        try:
            return f"generic:{_identifier(key)}"
        except ValueError as error:
            raise ParseError(f"{topic or 'delivery'}: id: {error}") from None

    def parse(
        self, topic: str, headers: Headers, payload: Any, ctx: ParseContext | None = None
    ) -> list[ShopEvent]:
        """Validate a generic delivery and normalize it; unknown topics give [NotSupported]."""
        ctx = ctx or ParseContext()
        topic = topic.strip().lower()
        spec = TOPICS.get(topic)
        if spec is None:
            return [NotSupported(topic, occurred_at=ctx.received_at)]
        envelope = validate(Envelope, payload, topic)
        data = validate(spec.model, envelope.data, topic, prefix="data")
        return storable([spec.build(envelope, data, ctx.default_region)], topic)


def _host_allowed(link: str, allowed_hosts: frozenset[str]) -> bool:
    host = (URL(link).host or "").lower()
    return any(host == h or host.endswith("." + h) for h in (a.lower() for a in allowed_hosts))


def parse_storefront_cart(payload: Any, ctx: ParseContext) -> CartUpdated:
    """Validate a public storefront cart report (bounded sizes) and normalize it.

    `ctx.received_at` is required (the body carries no time); when `ctx.allowed_hosts` is set,
    the cart URL and item URLs must be on those hosts.
    """
    if ctx.received_at is None:
        raise ValueError("parse_storefront_cart needs ParseContext.received_at")
    cart = validate(StorefrontCart, payload, "storefront cart")
    if ctx.allowed_hosts:
        links = [("url", cart.url)] + [
            (f"items.{n}.url", item.url) for n, item in enumerate(cart.items) if item.url
        ]
        for where, link in links:
            if not _host_allowed(link, ctx.allowed_hosts):
                raise ParseError(f"storefront cart: {where}: is not on the shop's domain")
    event = CartUpdated(
        token=cart.cart_token,
        cart_token=cart.cart_token,
        items=_lines(cart.items),
        total=_sum(cart.items),
        currency=cart.currency,
        recovery_url=cart.url,
        occurred_at=utc(ctx.received_at),
    )
    storable([event], "storefront cart")
    return event


adapter = GenericAdapter()

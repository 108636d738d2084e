"""Normalized shop events and the contract every platform adapter fulfils.

Adapters turn a platform's webhook into a list of `ShopEvent`s: a closed set of frozen
dataclasses that the profile store applies. Everything here is pure: no database, no network,
no clock (time comes in through `ParseContext.received_at`).

Conventions shared by every event:
- ids are strings (platform ids can exceed 2**53 and must not pass through floats);
- money is `Decimal | None`: None means the platform sent nothing usable, never "free";
- `occurred_at` is an aware UTC datetime: when the platform says the resource last changed
  (its `updated_at`), so the store can refuse an update older than what it already holds.

Every adapter's `parse` ends with `storable(events, topic)`: the one place that refuses values
no database column can hold, whatever the platform (`InvalidValue`, a ParseError): text with
NUL characters (PostgreSQL refuses them) or lone surrogates (not Unicode: no driver encodes
them), amounts beyond NUMERIC(14,4) (|x| ≤ 9999999999.9999 after rounding to 4 places),
counts beyond a 32-bit integer, times outside 1970-01-01…2099-12-31 (flows add delays to them),
and URLs that a redirect could not serve (`url_problem`). Such a delivery can never be
applied, so it is refused at the door (generic: 400) or stored parked (Shopify, WooCommerce),
never retried.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeAlias, runtime_checkable

from yarl import URL

Headers: TypeAlias = Mapping[str, Any]
"""Request headers: a dict or aiohttp's CIMultiDict; names are matched case-insensitively."""


class ParseError(ValueError):
    """An authentic payload that cannot be understood; `str(error)` is the human reason."""


class InvalidValue(ParseError):
    """An authentic payload holding a value no database can store; never worth a retry."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ParseContext:
    """What parsing needs to know about the shop and the delivery.

    - `default_region`: the shop's country (ISO 3166-1 alpha-2, e.g. "UA"), used to read phone
      numbers written without a country code.
    - `received_at`: when the web layer received the delivery (aware). Used as `occurred_at`
      when the payload carries no usable timestamp (compliance topics, storefront carts).
    - `allowed_hosts`: storefront only; when non-empty, cart and product URLs must be on one of
      these hosts (or their subdomains).
    """

    default_region: str | None = None
    received_at: datetime | None = None
    allowed_hosts: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.received_at is not None and self.received_at.utcoffset() is None:
            raise ValueError("ParseContext.received_at must be timezone-aware")


# ---------------------------------------------------------------------------------------------
# Value types


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerRef:
    """Who the event is about, as the platform knows them.

    `country` is what the platform says (the store keeps it only when it is an ISO 3166-1
    alpha-2 code, `integrations.fields.country_code`); `city` comes from the same address.
    `tags` are the shop's tags of the customer, normalized (`normalize_tags`): None when the
    payload says nothing about tags, () when it says there are none.
    """

    external_id: str | None = None
    email: str | None = None
    phone: str | None = None
    phone_e164: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    locale: str | None = None
    accepts_marketing: bool | None = None
    country: str | None = None
    city: str | None = None
    tags: tuple[str, ...] | None = None

    @property
    def is_anonymous(self) -> bool:
        """Return True when nothing identifies the customer."""
        return not (self.external_id or self.email or self.phone_e164)


@dataclass(frozen=True, slots=True, kw_only=True)
class LineItem:
    """One product line in a cart or an order."""

    product_id: str | None = None
    variant_id: str | None = None
    title: str | None = None
    category: str | None = None
    sku: str | None = None
    price: Decimal | None = None
    quantity: int = 1
    url: str | None = None
    image: str | None = None


# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerUpserted:
    """A customer account was created or changed."""

    customer: CustomerRef
    birthday: date | None = None
    occurred_at: datetime

    @property
    def resource_id(self) -> str:
        """Return the platform's customer id."""
        return self.customer.external_id or ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CartUpdated:
    """The content of a cart or checkout changed; the abandoned-cart flow starts from here.

    `token` identifies this cart in the store (checkout token for a checkout, cart token for a
    cart); `cart_token` is the storefront cart token when known, so a cart reported by the
    storefront snippet and the checkout made from it can be matched. `completed` is True when
    the platform says the checkout was finished (an order follows).
    """

    token: str
    cart_token: str | None = None
    items: tuple[LineItem, ...] = ()
    total: Decimal | None = None
    currency: str | None = None
    recovery_url: str | None = None
    customer: CustomerRef | None = None
    completed: bool = False
    occurred_at: datetime

    @property
    def resource_id(self) -> str:
        """Return the cart or checkout token."""
        return self.token


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckoutStarted:
    """A customer reached the checkout (usually with contact details)."""

    token: str
    cart_token: str | None = None
    recovery_url: str | None = None
    customer: CustomerRef | None = None
    occurred_at: datetime

    @property
    def resource_id(self) -> str:
        """Return the checkout token."""
        return self.token


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPlaced:
    """An order exists and counts as a purchase; repeated deliveries carry the same order_id.

    `checkout_token` / `cart_token` name the cart the order came from, when known, so its
    pending reminders can be cancelled.
    """

    order_id: str
    name: str | None = None
    items: tuple[LineItem, ...] = ()
    total: Decimal | None = None
    currency: str | None = None
    customer: CustomerRef | None = None
    discount_codes: tuple[str, ...] = ()
    checkout_token: str | None = None
    cart_token: str | None = None
    status: str | None = None
    order_url: str | None = None
    placed_at: datetime | None = None
    occurred_at: datetime

    @property
    def resource_id(self) -> str:
        """Return the platform's order id."""
        return self.order_id


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCancelled:
    """An order was cancelled, refunded, failed or deleted."""

    order_id: str
    reason: str | None = None
    occurred_at: datetime

    @property
    def resource_id(self) -> str:
        """Return the platform's order id."""
        return self.order_id


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRefunded:
    """Money was given back on an order; `refund_id` names the refund, so a redelivered refund
    counts once. `amount` is what was returned (None: the platform did not say), in `currency`
    (None: the order's). `full` is True when the platform says the whole order is refunded;
    the store also treats an order as fully refunded once its refunds reach its total.
    """

    order_id: str
    refund_id: str
    amount: Decimal | None = None
    currency: str | None = None
    full: bool = False
    reason: str | None = None
    occurred_at: datetime

    @property
    def resource_id(self) -> str:
        """Return the platform's order id."""
        return self.order_id


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductViewed:
    """A visitor or customer looked at a product (generic platform only for now)."""

    product_id: str
    variant_id: str | None = None
    title: str | None = None
    category: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    url: str | None = None
    image: str | None = None
    customer: CustomerRef | None = None
    cart_token: str | None = None
    occurred_at: datetime

    @property
    def resource_id(self) -> str:
        """Return the product id."""
        return self.product_id


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductUpserted:
    """A catalogue product was created or changed (WooCommerce)."""

    product_id: str
    title: str | None = None
    category: str | None = None
    sku: str | None = None
    price: Decimal | None = None
    url: str | None = None
    image: str | None = None
    occurred_at: datetime

    @property
    def resource_id(self) -> str:
        """Return the product id."""
        return self.product_id


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerRedact:
    """Erase what is stored about a customer (GDPR; Shopify customers/redact)."""

    customer: CustomerRef
    order_ids: tuple[str, ...] = ()
    occurred_at: datetime

    @property
    def resource_id(self) -> str:
        """Return the customer id, else the email."""
        return self.customer.external_id or self.customer.email or ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerDataRequest:
    """Report what is stored about a customer to the shop owner (Shopify data_request)."""

    customer: CustomerRef
    order_ids: tuple[str, ...] = ()
    request_id: str | None = None
    occurred_at: datetime

    @property
    def resource_id(self) -> str:
        """Return the customer id, else the email."""
        return self.customer.external_id or self.customer.email or ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopRedact:
    """Erase everything about the shop (sent 48 hours after uninstall)."""

    shop_id: str | None = None
    shop_domain: str | None = None
    occurred_at: datetime

    @property
    def resource_id(self) -> str:
        """Return the platform's shop id, else its domain."""
        return self.shop_id or self.shop_domain or ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AppUninstalled:
    """The shop removed the app: stop sending, keep data until ShopRedact."""

    shop_id: str | None = None
    shop_domain: str | None = None
    occurred_at: datetime

    @property
    def resource_id(self) -> str:
        """Return the platform's shop id, else its domain."""
        return self.shop_id or self.shop_domain or ""


@dataclass(frozen=True, slots=True)
class NotSupported:
    """A topic (or a status within it) that Nudge does not act on; acknowledge and drop."""

    topic: str
    reason: str | None = None
    occurred_at: datetime | None = None

    @property
    def resource_id(self) -> str:
        """Return an empty id: nothing is stored."""
        return ""


ShopEvent: TypeAlias = (
    CustomerUpserted
    | CartUpdated
    | CheckoutStarted
    | OrderPlaced
    | OrderCancelled
    | OrderRefunded
    | ProductViewed
    | ProductUpserted
    | CustomerRedact
    | CustomerDataRequest
    | ShopRedact
    | AppUninstalled
    | NotSupported
)


# ---------------------------------------------------------------------------------------------
# The adapter contract


@runtime_checkable
class PlatformAdapter(Protocol):
    """One shop platform: verify, route, dedupe and parse its webhooks.

    Web-layer order: `is_ping` (answer 200, stop) → `verify` on the raw bytes (401 on False) →
    `load_json` → `topic` → `delivery_key` (inbox unique key) → `parse` (ParseError → 400).
    """

    name: str
    subscribe_topics: tuple[str, ...]
    answers_errors: bool
    """True when the sender reads 4xx answers and fixes its request (generic); False when any
    non-2xx only makes the platform retry and, in the end, disable the webhook (Shopify,
    WooCommerce): those get 200 and an unreadable delivery is stored parked."""

    def verify(self, headers: Headers, raw_body: bytes, secret: str) -> bool:
        """Return True when the delivery is signed with `secret`; never raise."""
        ...

    def is_ping(self, headers: Headers, raw_body: bytes) -> bool:
        """Return True for an unsigned set-up ping that must be answered 200 and ignored."""
        ...

    def topic(self, headers: Headers) -> str:
        """Return the delivery's topic, lower-cased; "" when absent."""
        ...

    def delivery_key(self, topic: str, headers: Headers, payload: Any) -> str:
        """Return the inbox dedupe key: equal for redeliveries of the same event.

        Deliveries with different bodies must get different keys unless the platform
        guarantees that its delivery id names one event (each adapter's docstring says how).
        """
        ...

    def parse(
        self, topic: str, headers: Headers, payload: Any, ctx: ParseContext | None = None
    ) -> list[ShopEvent]:
        """Turn a verified payload into events; raise ParseError when it is malformed."""
        ...


# ---------------------------------------------------------------------------------------------
# Helpers shared by adapters


def header(headers: Headers, name: str) -> str | None:
    """Return the first value of header `name` (any case), stripped, or None."""
    wanted = name.lower()
    try:
        items = headers.items()
    except AttributeError:
        return None
    for key, value in items:
        if isinstance(key, str) and key.lower() == wanted:
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            text = str(value).strip()
            return text or None
    return None


def hmac_sha256(secret: str, raw_body: bytes) -> bytes:
    """Return the HMAC-SHA256 digest of `raw_body` keyed with the UTF-8 `secret`."""
    return hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).digest()


def signature_matches(expected: str, given: str | None) -> bool:
    """Compare two signature strings in constant time; False when `given` is missing."""
    if not given:
        return False
    try:
        return hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8"))
    except UnicodeError:
        return False


def load_json(raw_body: bytes) -> Any:
    """Decode a verified body as JSON, raising ParseError with the reason when it is not."""
    try:
        return json.loads(raw_body)
    except RecursionError:
        raise ParseError("body is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, too many int digits
        raise ParseError(f"body is not valid JSON: {error}") from None


_SAFE_KEY = re.compile(r"[A-Za-z0-9._:@/+=-]{1,160}")


def bounded_key(prefix: str, *parts: str) -> str:
    """Join key parts; hash them when they are long or contain unusual characters."""
    raw = ":".join(parts)
    if _SAFE_KEY.fullmatch(raw):
        return f"{prefix}:{raw}"
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}:sha256:{digest}"


def payload_digest(payload: Any) -> str:
    """Return a short SHA-256 of the payload's canonical JSON (sorted keys)."""
    try:
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError, RecursionError):
        canonical = repr(type(payload))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def utc(moment: datetime) -> datetime:
    """Return `moment` in UTC; a naive value is taken to be UTC already."""
    if moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# ---------------------------------------------------------------------------------------------
# What a database can store (see the module docstring)

MAX_STORED_MONEY = Decimal("9999999999.9999")
MAX_STORED_INT = 2**31 - 1
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2100, 1, 1, tzinfo=UTC)
MAX_URL = 2048
_URL_FIELDS = frozenset({"url", "image", "recovery_url", "order_url"})
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_CENTS = Decimal("0.0001")


def text_problem(value: str) -> str | None:
    """Return why a string cannot be stored (NUL, lone surrogate), or None when it can."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode)"
    return None


MAX_TAGS = 250
MAX_TAG = 200


def normalize_tags(values: Sequence[str]) -> tuple[str, ...]:
    """Return tags trimmed, inner spaces collapsed, lower-cased, without empties or repeats.

    Lower-cased because segments match tags case-insensitively and SQLite's lower() knows only
    ASCII: "VIP" and "vip" are one tag, and so are "Постійний" and "постійний".
    """
    seen: dict[str, None] = {}
    for value in values:
        tag = " ".join(value.split()).lower()
        if tag:
            seen.setdefault(tag, None)
    return tuple(seen)


def tags_problem(tags: Sequence[str]) -> str | None:
    """Return why a set of tags cannot be stored (too many, too long, bad text), or None."""
    if len(tags) > MAX_TAGS:
        return f"has {len(tags)} tags; at most {MAX_TAGS} are kept"
    for n, tag in enumerate(tags):
        problem = text_problem(tag)
        if problem is None and len(tag) > MAX_TAG:
            problem = f"is {len(tag)} characters long; at most {MAX_TAG}"
        if problem:
            return f"{n}: {problem}"
    return None


def money_problem(amount: Decimal) -> str | None:
    """Return why an amount does not fit NUMERIC(14,4), or None when it does."""
    if not amount.is_finite():
        return "is not a finite number"
    if abs(amount) >= Decimal(10) ** 11 or abs(amount.quantize(_CENTS)) > MAX_STORED_MONEY:
        return f"{amount:f}"[:40] + f" is more than the largest amount stored ({MAX_STORED_MONEY})"
    return None


def moment_problem(moment: datetime) -> str | None:
    """Return why a time cannot be used (no offset, outside 1970–2099), or None."""
    if moment.utcoffset() is None:
        return "has no UTC offset"
    if not EARLIEST_TIME <= moment < LATEST_TIME:
        return f"{moment.isoformat()} is outside 1970-01-01 to 2099-12-31"
    return None


def _host_problem(host: str) -> str | None:
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    labels = host.lower().removesuffix(".").split(".")
    if len(host) > 253 or len(labels) < 2 or labels[-1].isdigit():
        return "must name a real host"
    if not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return "must name a real host"
    return None


def url_problem(value: str, limit: int = MAX_URL) -> str | None:
    """Return why a URL may not be stored and redirected to, or None when it may.

    Strict on purpose: http(s) only, a real host (DNS name or IP address), no credentials, no
    backslash (browsers read it as "/", so `https://evil.example\\@shop.example.com` would lead
    to evil.example), no spaces or control characters.
    """
    if len(value) > limit:
        return f"must be an absolute http(s) URL of at most {limit} characters"
    problem = text_problem(value)
    if problem:
        return problem
    if any(ch.isspace() or ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in value):
        return "must not contain spaces or control characters"
    if "\\" in value:
        return "must not contain a backslash"
    try:
        parsed = URL(value)
        host = parsed.raw_host
    except (ValueError, TypeError):
        return "must be an absolute http(s) URL"
    if parsed.scheme not in ("http", "https") or not parsed.absolute or not host:
        return "must be an absolute http(s) URL"
    if parsed.raw_user is not None or parsed.raw_password is not None:
        return "must not contain a user name or password"
    return _host_problem(host)


def _value_problem(value: Any, name: str) -> str | None:
    if isinstance(value, str):
        return url_problem(value) if name in _URL_FIELDS else text_problem(value)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if abs(value) <= MAX_STORED_INT else f"{value} is too large"
    if isinstance(value, Decimal):
        return money_problem(value)
    if isinstance(value, datetime):
        return moment_problem(value)
    return None


def _first_problem(value: Any, path: str) -> str | None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for spec in dataclasses.fields(value):
            inner = f"{path}.{spec.name}" if path else spec.name
            if spec.name == "tags" and getattr(value, spec.name) is not None:
                problem = tags_problem(getattr(value, spec.name))
                if problem:
                    return f"{inner}{'.' if problem[0].isdigit() else ': '}{problem}"
            found = _first_problem(getattr(value, spec.name), inner)
            if found:
                return found
        return None
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        for n, item in enumerate(value):
            found = _first_problem(item, f"{path}.{n}")
            if found:
                return found
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return None
    problem = _value_problem(value, path.rsplit(".", 1)[-1])
    return f"{path}: {problem}" if problem else None


def storable(events: list[ShopEvent], where: str) -> list[ShopEvent]:
    """Return the events unchanged; raise InvalidValue naming the first value none can store."""
    for event in events:
        if isinstance(event, NotSupported):
            continue
        problem = _first_problem(event, "")
        if problem:
            raise InvalidValue(f"{where}: {problem}")
    return events


def printable(reason: str, limit: int = 2000) -> str:
    """Return a reason safe to store, log and answer: NUL, controls and surrogates escaped."""
    escaped = reason.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(
        ch if ch.isprintable() or ch in "\n\t" else f"\\x{ord(ch):02x}" for ch in escaped
    )[:limit]

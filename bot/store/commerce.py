"""What shops tell us, applied to the profile store: customers, products, carts and orders.

Every function takes one normalized event's values and changes rows in the caller's
transaction. Platforms retry and reorder deliveries, so every resource keeps the platform's
`platform_updated_at`: an update older than what is stored changes nothing (`stale`).
Customer references embedded in carts and orders only fill in what a profile lacks; a customer
resource (`authoritative`) overwrites. A redacted identity stays redacted: its tombstone is
returned and nothing personal is written to it.

Geography and tags: the country is kept only as an ISO 3166-1 alpha-2 code (anything else is
dropped with a log line, the rest of the event applies); a customer resource overwrites the
country and the city it names, a cart or an order fills them while the profile has neither.
A customer resource that says anything about tags replaces the customer's whole set.

Refunds are rows of `order_refunds`, one per platform refund id, so a redelivered refund counts
once; one may arrive before its order and waits for it. After every change of an order or its
refunds, `settle_refunds` recomputes the order's `refunded_total` (refunds in its currency, at
most its total) and its status: a placed order refunded in full (the platform says so, or the
refunds reach its total) is REFUNDED and counts for nothing, like a cancelled one.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import (
    Cart,
    CartItem,
    CartStatus,
    Customer,
    CustomerTag,
    Order,
    OrderItem,
    OrderRefund,
    OrderStatus,
    Product,
)
from integrations.base import MAX_STORED_MONEY, CustomerRef, LineItem
from integrations.fields import country_code, e164

log = logging.getLogger(__name__)

STOREFRONT_PREFIX = "sf:"
MAX_TOKEN = 128
MAX_URL = 2000


def cart_key(token: str) -> str:
    """Return how a cart token is stored: as is, or hashed when longer than the column."""
    if len(token) <= MAX_TOKEN:
        return token
    return "sha256:" + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _fit(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else value


def _link(value: str | None) -> str | None:
    return value if value and len(value) <= MAX_URL else None


@dataclass(slots=True)
class Applied:
    """What applying one event did; flows receive it as `FlowContext.applied`."""

    customer: Customer | None = None
    cart: Cart | None = None
    order: Order | None = None
    product: Product | None = None
    stale: bool = False
    converted: list[Cart] = field(default_factory=list)
    export: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """A customer's normalized identifiers: external id, lower-cased e-mail, E.164 phone."""

    external_id: str | None = None
    email: str | None = None
    phone: str | None = None

    def __bool__(self) -> bool:
        return bool(self.external_id or self.email or self.phone)

    def hashes(self, shop_id: int) -> list[str]:
        """Return the redaction hashes of every identifier present."""
        pairs = (("external_id", self.external_id), ("email", self.email), ("phone", self.phone))
        return [redaction_hash(shop_id, kind, value) for kind, value in pairs if value]


def redaction_hash(shop_id: int, kind: str, value: str) -> str:
    """Return sha256(shop id, identifier kind, normalized identifier) as hex."""
    return hashlib.sha256(f"{shop_id}\x1f{kind}\x1f{value}".encode()).hexdigest()


def normalize_email(value: str | None) -> str | None:
    """Return the e-mail stripped and lower-cased, or None."""
    cleaned = (value or "").strip().lower()
    return cleaned[:320] or None


def identity_of(ref: CustomerRef, region: str | None) -> Identity:
    """Normalize a reference: e-mail lower-cased, phone to E.164 with the shop's country."""
    phone = ref.phone_e164 or e164(ref.phone, region)
    external_id = (ref.external_id or "").strip()[:128] or None
    return Identity(external_id=external_id, email=normalize_email(ref.email), phone=phone)


async def hold_write_lock(*, session: AsyncSession) -> None:
    """On SQLite, lock now so a read-then-write transaction cannot fail midway."""
    if session.bind.dialect.name == "sqlite":
        await session.execute(text("UPDATE shops SET id = id WHERE 0"))


# ------------------------------------------------------------------------------- customers


async def find_tombstone(
    *, session: AsyncSession, shop_id: int, identity: Identity
) -> Customer | None:
    """Return the redacted tombstone of any of these identifiers, if one exists."""
    hashes = identity.hashes(shop_id)
    if not hashes:
        return None
    query = select(Customer).where(
        Customer.shop_id == shop_id,
        Customer.redacted_hash.in_(hashes),  # type: ignore[union-attr]
    )
    return (await session.scalars(query.order_by(Customer.id).limit(1))).first()  # type: ignore[arg-type]


async def match_customer(
    *, session: AsyncSession, shop_id: int, identity: Identity
) -> Customer | None:
    """Find the customer by external id, then e-mail, then phone (never another platform id)."""
    if identity.external_id:
        query = select(Customer).where(
            Customer.shop_id == shop_id, Customer.external_id == identity.external_id
        )
        found = (await session.scalars(query)).first()
        if found is not None:
            return found
    for column, value in ((Customer.email, identity.email), (Customer.phone, identity.phone)):
        if not value:
            continue
        query = select(Customer).where(Customer.shop_id == shop_id, column == value)
        if identity.external_id:
            query = query.where(Customer.external_id.is_(None))  # type: ignore[union-attr]
        found = (await session.scalars(query.order_by(Customer.id).limit(1))).first()  # type: ignore[arg-type]
        if found is not None:
            return found
    return None


async def upsert_customer(
    *,
    session: AsyncSession,
    shop_id: int,
    region: str | None,
    ref: CustomerRef,
    occurred_at: datetime,
    now: datetime,
    authoritative: bool = False,
    birthday: date | None = None,
) -> tuple[Customer | None, bool]:
    """Create or update the customer a reference names; return (customer, stale).

    A redacted identity returns its tombstone unchanged; an anonymous reference returns None.
    """
    identity = identity_of(ref, region)
    if not identity:
        return None, False
    tombstone = await find_tombstone(session=session, shop_id=shop_id, identity=identity)
    if tombstone is not None:
        return tombstone, False
    customer = await match_customer(session=session, shop_id=shop_id, identity=identity)
    country = country_code(ref.country)
    if ref.country and country is None:
        log.info(
            "shop %s: country %r of customer %s is not an ISO 3166-1 alpha-2 code; not stored",
            shop_id,
            ref.country[:20],
            identity.external_id or (customer.id if customer else "(new)"),
        )
    values: dict[str, Any] = {
        "external_id": identity.external_id,
        "email": identity.email,
        "phone": identity.phone,
        "first_name": _fit(ref.first_name, 200),
        "last_name": _fit(ref.last_name, 200),
        "locale": ref.locale[:8] if ref.locale else None,
        "birthday": birthday,
    }
    if customer is None:
        customer = Customer(
            shop_id=shop_id,
            created_at=now,
            updated_at=now,
            platform_updated_at=occurred_at if authoritative else None,
            **{key: value for key, value in values.items() if value is not None},
        )
        _note_marketing(customer, ref)
        _note_place(customer, country, ref.city, authoritative=True)
        session.add(customer)
        await session.flush()
        if authoritative and ref.tags:
            assert customer.id is not None
            await replace_tags(
                session=session, shop_id=shop_id, customer_id=customer.id, tags=ref.tags
            )
        return customer, False
    newer = customer.platform_updated_at is None or occurred_at >= customer.platform_updated_at
    if authoritative and not newer:
        return customer, True
    for key, value in values.items():
        if value is None:
            continue
        if key == "locale" and customer.telegram_chat_id is not None:
            continue  # a linked chat's language was settled at linking, or chosen in /settings
        if authoritative or getattr(customer, key) is None:
            setattr(customer, key, value)
    if authoritative:
        customer.platform_updated_at = occurred_at
        _note_marketing(customer, ref)
    _note_place(customer, country, ref.city, authoritative=authoritative)
    customer.updated_at = now
    session.add(customer)
    await session.flush()
    if authoritative and ref.tags is not None:
        assert customer.id is not None
        await replace_tags(
            session=session, shop_id=shop_id, customer_id=customer.id, tags=ref.tags
        )
    return customer, False


def _note_place(
    customer: Customer, country: str | None, city: str | None, *, authoritative: bool
) -> None:
    """Write the country and city a reference names: over the profile's when authoritative,
    else only into a profile that has neither (so a city never joins another address)."""
    city = _fit(city, 200)
    if not authoritative and (customer.country is not None or customer.city is not None):
        return
    if country is not None:
        customer.country = country
    if city is not None:
        customer.city = city


async def replace_tags(
    *, session: AsyncSession, shop_id: int, customer_id: int, tags: Sequence[str]
) -> None:
    """Make the customer's tags exactly `tags` (already normalized): remove, then add."""
    wanted = list(dict.fromkeys(tag[:200] for tag in tags))
    query = select(CustomerTag.tag).where(
        CustomerTag.shop_id == shop_id, CustomerTag.customer_id == customer_id
    )
    stored = set((await session.scalars(query)).all())
    gone = stored.difference(wanted)
    if gone:
        await session.execute(
            delete(CustomerTag).where(
                CustomerTag.shop_id == shop_id,  # type: ignore[arg-type]
                CustomerTag.customer_id == customer_id,  # type: ignore[arg-type]
                CustomerTag.tag.in_(gone),  # type: ignore[attr-defined]
            )
        )
    for tag in wanted:
        if tag not in stored:
            session.add(CustomerTag(shop_id=shop_id, customer_id=customer_id, tag=tag))
    await session.flush()


def _note_marketing(customer: Customer, ref: CustomerRef) -> None:
    if ref.accepts_marketing is not None:
        customer.attributes = {**customer.attributes, "accepts_marketing": ref.accepts_marketing}


def usable(customer: Customer | None) -> Customer | None:
    """Return the customer unless it is a redacted tombstone."""
    if customer is None or customer.redacted_hash is not None:
        return None
    return customer


# -------------------------------------------------------------------------------- products


async def upsert_product(
    *,
    session: AsyncSession,
    shop_id: int,
    external_id: str,
    occurred_at: datetime,
    now: datetime,
    authoritative: bool,
    title: str | None = None,
    category: str | None = None,
    url: str | None = None,
    image_url: str | None = None,
    price: Decimal | None = None,
    currency: str | None = None,
) -> tuple[Product, bool]:
    """Create or update a product (a view only fills gaps); return (product, stale)."""
    query = select(Product).where(Product.shop_id == shop_id, Product.external_id == external_id)
    product = (await session.scalars(query)).first()
    values = {
        "title": _fit(title, 500),
        "category": _fit(category, 200),
        "url": _link(url),
        "image_url": _link(image_url),
        "price": price,
        "currency": _fit(currency, 3),
    }
    if product is None:
        product = Product(shop_id=shop_id, external_id=external_id, updated_at=now)
        product.title = title or ""
    elif (
        authoritative and product.platform_updated_at and occurred_at < product.platform_updated_at
    ):
        return product, True
    for key, value in values.items():
        if value is None or (key == "title" and not value):
            continue
        current = getattr(product, key)
        if authoritative or current is None or current == "":
            setattr(product, key, value)
    if authoritative:
        product.platform_updated_at = occurred_at
    product.updated_at = now
    session.add(product)
    await session.flush()
    return product, False


# ----------------------------------------------------------------------------------- carts


async def find_cart(*, session: AsyncSession, shop_id: int, token: str) -> Cart | None:
    """Return the shop's cart with this token."""
    query = select(Cart).where(Cart.shop_id == shop_id, Cart.token == cart_key(token))
    return (await session.scalars(query)).first()


async def apply_cart(
    *,
    session: AsyncSession,
    shop_id: int,
    token: str,
    items: Sequence[LineItem],
    occurred_at: datetime,
    now: datetime,
    customer: Customer | None = None,
    currency: str | None = None,
    total: Decimal | None = None,
    recovery_url: str | None = None,
    completed: bool = False,
    supersedes: str | None = None,
) -> tuple[Cart, bool]:
    """Store a cart's full content unless a newer version is stored; return (cart, stale).

    `supersedes` names the storefront cart a checkout was made from: it becomes REPLACED.
    """
    cart = await find_cart(session=session, shop_id=shop_id, token=token)
    if cart is not None and cart.platform_updated_at and occurred_at < cart.platform_updated_at:
        if customer is not None and cart.customer_id is None:
            cart.customer_id = customer.id
            session.add(cart)
        return cart, True
    if cart is None:
        cart = Cart(shop_id=shop_id, token=cart_key(token), created_at=now)
    if customer is not None:
        cart.customer_id = customer.id
    cart.currency = _fit(currency, 3) or cart.currency
    cart.total = total
    cart.recovery_url = _link(recovery_url) or cart.recovery_url
    cart.platform_updated_at = occurred_at
    cart.updated_at = now
    if cart.status != CartStatus.CONVERTED:
        if completed:
            cart.status = CartStatus.CONVERTED
        else:
            cart.status = CartStatus.OPEN if items else CartStatus.EMPTIED
    session.add(cart)
    await session.flush()
    await session.execute(delete(CartItem).where(CartItem.cart_id == cart.id))  # type: ignore[arg-type]
    for position, item in enumerate(items):
        session.add(
            CartItem(
                shop_id=shop_id,
                cart_id=cart.id,  # type: ignore[arg-type]
                position=position,
                product_external_id=_fit(item.product_id, 128),
                variant_external_id=_fit(item.variant_id, 128),
                title=_fit(item.title, 500) or "",
                category=_fit(item.category, 200),
                price=item.price,
                quantity=item.quantity,
                url=_link(item.url),
                image_url=_link(item.image),
            )
        )
    if cart.status == CartStatus.OPEN:
        await _replace_older_carts(session, cart, supersedes, occurred_at, now)
    await session.flush()
    return cart, False


async def _replace_older_carts(
    session: AsyncSession, cart: Cart, supersedes: str | None, occurred_at: datetime, now: datetime
) -> None:
    """Mark the carts this one replaces: its storefront cart, and the customer's older ones."""
    conditions = []
    if supersedes and cart_key(supersedes) != cart.token:
        conditions.append(Cart.token == cart_key(supersedes))
    if cart.customer_id is not None:
        conditions.append(Cart.customer_id == cart.customer_id)
    if not conditions:
        return
    query = select(Cart).where(
        Cart.shop_id == cart.shop_id,
        Cart.id != cart.id,
        Cart.status == CartStatus.OPEN,
        or_(*conditions),
        or_(Cart.platform_updated_at.is_(None), Cart.platform_updated_at <= occurred_at),  # type: ignore[union-attr, operator]
    )
    for older in (await session.scalars(query)).all():
        older.status = CartStatus.REPLACED
        older.updated_at = now
        session.add(older)


async def attach_cart_customer(
    *,
    session: AsyncSession,
    shop_id: int,
    token: str,
    customer: Customer | None,
    recovery_url: str | None,
    now: datetime,
) -> Cart | None:
    """Note who is checking out a known cart and where to recover it."""
    cart = await find_cart(session=session, shop_id=shop_id, token=token)
    if cart is None:
        return None
    if customer is not None:
        cart.customer_id = customer.id
    cart.recovery_url = _link(recovery_url) or cart.recovery_url
    cart.updated_at = now
    session.add(cart)
    await session.flush()
    return cart


async def customer_of_cart(
    *, session: AsyncSession, shop_id: int, tokens: Iterable[str]
) -> Customer | None:
    """Return the customer bound to the first cart with one of these tokens."""
    wanted = [cart_key(token) for token in tokens if token]
    if not wanted:
        return None
    query = (
        select(Customer)
        .join(Cart, Cart.customer_id == Customer.id)  # type: ignore[arg-type]
        .where(Cart.shop_id == shop_id, Cart.token.in_(wanted))  # type: ignore[attr-defined]
        .order_by(Cart.id)
        .limit(1)
    )
    return (await session.scalars(query)).first()


# ---------------------------------------------------------------------------------- orders


async def find_order(*, session: AsyncSession, shop_id: int, external_id: str) -> Order | None:
    """Return the shop's order with this platform id."""
    query = select(Order).where(Order.shop_id == shop_id, Order.external_id == external_id)
    return (await session.scalars(query)).first()


async def apply_order(
    *,
    session: AsyncSession,
    shop_id: int,
    external_id: str,
    items: Sequence[LineItem],
    occurred_at: datetime,
    now: datetime,
    customer: Customer | None = None,
    total: Decimal | None = None,
    currency: str | None = None,
    discount_codes: Sequence[str] = (),
    cart_tokens: Sequence[str] = (),
    placed_at: datetime | None = None,
) -> tuple[Order, bool, list[Cart]]:
    """Store a placed order and mark the cart it came from converted; return (order, stale, carts).

    A cancellation stored with the same or a newer time keeps the order cancelled.
    """
    order = await find_order(session=session, shop_id=shop_id, external_id=external_id)
    if order is not None and order.platform_updated_at and occurred_at < order.platform_updated_at:
        return order, True, []
    if order is None:
        order = Order(shop_id=shop_id, external_id=external_id, placed_at=placed_at or occurred_at)
    elif order.status == OrderStatus.CANCELLED and order.platform_updated_at == occurred_at:
        pass
    else:
        order.status = OrderStatus.PLACED
    if customer is not None:
        order.customer_id = customer.id
    tokens = [token for token in cart_tokens if token]
    order.cart_token = tokens[0][:128] if tokens else order.cart_token
    order.total = total
    order.currency = _fit(currency, 3) or order.currency
    order.discount_codes = list(discount_codes)
    order.placed_at = placed_at or order.placed_at or occurred_at
    order.platform_updated_at = occurred_at
    order.updated_at = now
    session.add(order)
    await session.flush()
    await session.execute(delete(OrderItem).where(OrderItem.order_id == order.id))  # type: ignore[arg-type]
    for item in items:
        session.add(
            OrderItem(
                shop_id=shop_id,
                order_id=order.id,  # type: ignore[arg-type]
                product_external_id=_fit(item.product_id, 128),
                title=_fit(item.title, 500) or "",
                category=_fit(item.category, 200),
                price=item.price,
                quantity=item.quantity,
            )
        )
    converted = await convert_carts(
        session=session,
        order=order,
        tokens=tokens,
        customer_id=order.customer_id,
        before=occurred_at,
        now=now,
    )
    await settle_refunds(session=session, order=order)
    await session.flush()
    return order, False, converted


async def convert_carts(
    *,
    session: AsyncSession,
    order: Order,
    tokens: Sequence[str],
    customer_id: int | None,
    before: datetime,
    now: datetime,
) -> list[Cart]:
    """Mark the order's carts converted: by cart/checkout token, else the customer's open carts."""
    carts: list[Cart] = []
    if tokens:
        query = select(Cart).where(
            Cart.shop_id == order.shop_id,
            Cart.token.in_([cart_key(t) for t in tokens]),  # type: ignore[attr-defined]
            Cart.status != CartStatus.CONVERTED,
        )
        carts = list((await session.scalars(query)).all())
    if not carts and customer_id is not None:
        query = select(Cart).where(
            Cart.shop_id == order.shop_id,
            Cart.customer_id == customer_id,
            Cart.status == CartStatus.OPEN,
            or_(Cart.platform_updated_at.is_(None), Cart.platform_updated_at <= before),  # type: ignore[union-attr, operator]
        )
        carts = list((await session.scalars(query)).all())
    for cart in carts:
        cart.status = CartStatus.CONVERTED
        cart.order_id = order.id
        cart.updated_at = now
        session.add(cart)
    return carts


async def cancel_order(
    *, session: AsyncSession, shop_id: int, external_id: str, occurred_at: datetime, now: datetime
) -> tuple[Order, bool]:
    """Mark an order cancelled (creating a placeholder when it is not known yet)."""
    order = await find_order(session=session, shop_id=shop_id, external_id=external_id)
    if order is not None and order.platform_updated_at and occurred_at < order.platform_updated_at:
        return order, True
    if order is None:
        order = Order(shop_id=shop_id, external_id=external_id, placed_at=occurred_at)
    order.status = OrderStatus.CANCELLED
    order.platform_updated_at = occurred_at
    order.updated_at = now
    session.add(order)
    await session.flush()
    await settle_refunds(session=session, order=order)
    return order, False


# --------------------------------------------------------------------------------- refunds


async def apply_refund(
    *,
    session: AsyncSession,
    shop_id: int,
    order_external_id: str,
    refund_external_id: str,
    occurred_at: datetime,
    now: datetime,
    amount: Decimal | None = None,
    currency: str | None = None,
    full: bool = False,
    reason: str | None = None,
) -> tuple[Order | None, bool, bool]:
    """Store a refund once per refund id and settle its order; return (order, new, changed).

    `new`: the refund was not stored before. `changed` is False for a refund already stored as
    it is (a redelivery); a stored one may still turn `full` (WooCommerce lists earlier
    refunds again once the order is refunded in full). An unknown order returns None: the
    refund is kept and counts when its order arrives.
    """
    order_key = order_external_id[:128]
    query = select(OrderRefund).where(
        OrderRefund.shop_id == shop_id,
        OrderRefund.order_external_id == order_key,
        OrderRefund.external_id == refund_external_id[:128],
    )
    refund = (await session.scalars(query)).first()
    new = refund is None
    changed = new or (full and not refund.full)  # type: ignore[union-attr]
    if refund is None:
        refund = OrderRefund(
            shop_id=shop_id,
            order_external_id=order_key,
            external_id=refund_external_id[:128],
            amount=amount,
            currency=_fit(currency, 3),
            full=full,
            reason=_fit(reason, 200),
            refunded_at=occurred_at,
            created_at=now,
        )
    elif full:
        refund.full = True
    if not changed:
        order = await find_order(session=session, shop_id=shop_id, external_id=order_key)
        return order, False, False
    session.add(refund)
    await session.flush()
    order = await find_order(session=session, shop_id=shop_id, external_id=order_key)
    if order is not None:
        await settle_refunds(session=session, order=order)
        order.updated_at = now
        session.add(order)
        await session.flush()
    return order, new, True


async def settle_refunds(*, session: AsyncSession, order: Order) -> None:
    """Recompute the order's refunded_total and whether it is refunded in full."""
    query = select(OrderRefund.amount, OrderRefund.currency, OrderRefund.full).where(
        OrderRefund.shop_id == order.shop_id,
        OrderRefund.order_external_id == order.external_id,
    )
    rows = (await session.execute(query)).all()
    if not rows:
        return
    refunded = sum(
        (
            amount
            for amount, code, _ in rows
            if amount is not None
            and (code is None or not order.currency or code == order.currency)
        ),
        Decimal(0),
    )
    total = order.total
    refunded = min(refunded, total if total is not None else MAX_STORED_MONEY)
    full = any(flag for _, _, flag in rows) or (
        total is not None and total > 0 and refunded >= total
    )
    order.refunded_total = refunded
    if order.status in (OrderStatus.PLACED, OrderStatus.REFUNDED):
        order.status = OrderStatus.REFUNDED if full else OrderStatus.PLACED
    session.add(order)


# ------------------------------------------------------------------------------ storefront


async def storefront_customer(
    *, session: AsyncSession, shop_id: int, cart_token: str, now: datetime
) -> tuple[Customer, Cart | None]:
    """Return the anonymous customer bound to a storefront cart token, creating it if needed."""
    cart = await find_cart(session=session, shop_id=shop_id, token=cart_token)
    if cart is not None and cart.customer_id is not None:
        customer = await session.get(Customer, cart.customer_id)
        if customer is not None and customer.redacted_hash is None:
            return customer, cart
    customer = Customer(
        shop_id=shop_id, attributes={"source": "storefront"}, created_at=now, updated_at=now
    )
    session.add(customer)
    await session.flush()
    return customer, cart

"""Compliance: export what is stored about a customer, erase a customer, erase a shop.

Export and erasure walk every table that has a `customer_id` column, so tables added later
are covered without touching this module: orders and promo codes are the shop's records and
are only unlinked; every other row about the customer is deleted.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from bot.models import Cart, CartItem, Consent, Customer, Order, OrderItem, Shop
from bot.store.commerce import Identity, redaction_hash

KEEP_UNLINKED = frozenset({"orders", "promo_codes"})
EXPORT_SECTIONS = {
    "customer_events": "events",
    "carts": "carts",
    "orders": "orders",
    "exclusions": "exclusions",
    "outbox": "outbox",
}
ERASED_COLUMNS: dict[str, Any] = {
    "external_id": None,
    "email": None,
    "phone": None,
    "first_name": None,
    "last_name": None,
    "locale": None,
    "timezone": None,
    "birthday": None,
    "birth_year": None,
    "attributes": {},
    "telegram_chat_id": None,
    "telegram_username": None,
    "consent": Consent.OPTED_OUT.value,
    "consent_source": "redacted",
    "needs_follow_up": False,
    "nps_score": None,
    "platform_updated_at": None,
}


def _tables_with(column: str) -> list[Table]:
    return [t for t in SQLModel.metadata.sorted_tables if column in t.c and t.name != "customers"]


def plain(value: Any) -> Any:
    """Return a JSON-safe rendering of a column value."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _row(mapping: Any) -> dict[str, Any]:
    return {key: plain(value) for key, value in mapping.items()}


async def find_customers(
    *, session: AsyncSession, shop_id: int, identity: Identity
) -> list[Customer]:
    """Return every live customer that any of these identifiers names."""
    found: dict[int, Customer] = {}
    for column, value in (
        (Customer.external_id, identity.external_id),
        (Customer.email, identity.email),
        (Customer.phone, identity.phone),
    ):
        if value:
            query = select(Customer).where(Customer.shop_id == shop_id, column == value)
            for customer in (await session.scalars(query)).all():
                found[customer.id] = customer  # type: ignore[index]
    return [found[key] for key in sorted(found)]


async def export_customer(
    *, session: AsyncSession, shop_id: int, customer_id: int
) -> dict[str, Any] | None:
    """Return everything stored about the customer as JSON-ready data, or None."""
    customer = await session.get(Customer, customer_id)
    if customer is None or customer.shop_id != shop_id:
        return None
    export: dict[str, Any] = {
        "shop_id": shop_id,
        "customer_id": customer_id,
        "profile": _row(customer.model_dump()),
    }
    for table in _tables_with("customer_id"):
        query = select(table).where(table.c.shop_id == shop_id, table.c.customer_id == customer_id)
        rows = [
            _row(r._mapping) for r in (await session.execute(query.order_by(*table.primary_key)))
        ]
        export[EXPORT_SECTIONS.get(table.name, table.name)] = rows
    for section, item_table, key in (
        ("carts", CartItem, "cart_id"),
        ("orders", OrderItem, "order_id"),
    ):
        for record in export.get(section, []):
            query = select(item_table).where(getattr(item_table, key) == record["id"])
            record["items"] = [_row(i.model_dump()) for i in (await session.scalars(query)).all()]
    for section in EXPORT_SECTIONS.values():
        export.setdefault(section, [])
    return export


async def redact_customers(
    *,
    session: AsyncSession,
    shop_id: int,
    identity: Identity,
    order_ids: Sequence[str] = (),
    now: datetime,
) -> list[int]:
    """Erase the customers an identity names and leave hashed tombstones; return their ids.

    Personal columns are cleared, the customer's events, carts, exclusions and messages are
    deleted, orders stay but lose the link, and every identifier's hash is kept so a later
    delivery about the same person stays redacted.
    """
    customers = await find_customers(session=session, shop_id=shop_id, identity=identity)
    own = {c.id: Identity(c.external_id, c.email, c.phone).hashes(shop_id) for c in customers}
    wanted = dict.fromkeys(identity.hashes(shop_id))
    for hashes in own.values():
        wanted.update(dict.fromkeys(hashes))
    ids = [c.id for c in customers if c.id is not None]
    if ids:
        await _erase_rows(session, shop_id, ids)
        await session.execute(
            update(Order)
            .where(Order.shop_id == shop_id, Order.external_id.in_(list(order_ids)))  # type: ignore[attr-defined]
            .values(customer_id=None)
        )
    held = set(
        (
            await session.scalars(
                select(Customer.redacted_hash).where(
                    Customer.shop_id == shop_id,
                    Customer.redacted_hash.in_(list(wanted)),  # type: ignore[union-attr]
                )
            )
        ).all()
    )
    for customer in customers:
        candidates = own[customer.id] or list(wanted)
        free = [h for h in candidates if h not in held]
        customer.redacted_hash = (
            free or candidates or [redaction_hash(shop_id, "id", str(customer.id))]
        )[0]
        held.add(customer.redacted_hash)
        for key, value in ERASED_COLUMNS.items():
            setattr(customer, key, value)
        customer.updated_at = now
        session.add(customer)
    for leftover in (h for h in wanted if h not in held):
        session.add(
            Customer(
                shop_id=shop_id,
                redacted_hash=leftover,
                consent=Consent.OPTED_OUT,
                consent_source="redacted",
                created_at=now,
                updated_at=now,
            )
        )
    await session.flush()
    return ids


async def _erase_rows(session: AsyncSession, shop_id: int, customer_ids: list[int]) -> None:
    carts = select(Cart.id).where(Cart.shop_id == shop_id, Cart.customer_id.in_(customer_ids))  # type: ignore[union-attr]
    await session.execute(delete(CartItem).where(CartItem.cart_id.in_(carts)))  # type: ignore[attr-defined]
    for table in reversed(_tables_with("customer_id")):
        where = (table.c.shop_id == shop_id, table.c.customer_id.in_(customer_ids))
        if table.name in KEEP_UNLINKED:
            await session.execute(update(table).where(*where).values(customer_id=None))
        else:
            await session.execute(delete(table).where(*where))


async def redact_shop(*, session: AsyncSession, shop_id: int) -> None:
    """Delete everything stored for the shop, the shop itself included."""
    for table in reversed(_tables_with("shop_id")):
        await session.execute(delete(table).where(table.c.shop_id == shop_id))
    await session.execute(delete(Customer).where(Customer.shop_id == shop_id))  # type: ignore[arg-type]
    await session.execute(delete(Shop).where(Shop.id == shop_id))  # type: ignore[arg-type]
    session.expunge_all()


async def mark_uninstalled(*, session: AsyncSession, shop_id: int, at: datetime) -> None:
    """Record that the shop removed the app (nothing is sent to its customers after this)."""
    await session.execute(update(Shop).where(Shop.id == shop_id).values(uninstalled_at=at))  # type: ignore[arg-type]

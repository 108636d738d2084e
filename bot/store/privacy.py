"""Compliance: export what is stored about a customer, erase a customer, erase a shop.

`erase_customers` is the one erasure: `nudge customer erase` and Shopify's customers/redact
both call it. Per table:

- customers: every personal column is cleared; the row stays as a tombstone that keeps only a
  hash of one identifier, so a later delivery about the same person stays erased;
- customer_events (survey answers, support messages, links, chat ids): deleted, except NPS
  answers, kept for `nudge report nps` as bare scores without the customer;
- carts and their items: deleted;
- orders: kept for the shop's reports (totals, items, discount codes, attribution) without the
  customer and without the cart token;
- outbox: kept for the reports (state, kind, times) on the tombstone, with the rendered payload,
  errors and Telegram message id cleared; scheduled messages are cancelled;
- exclusions: kept on the tombstone (a topic and a message id: nothing personal);
- clicks, promo codes: kept for the reports, without the customer;
- fsm_states: the customer's conversation with the shop's bot is deleted;
- inbox: every raw delivery that mentions the customer (their e-mail, phone, platform id, one
  of their carts or orders, as the platform adapter reads it) is scrubbed, and so is its
  stored error: an applied delivery's body is replaced by a marker; a delivery still waiting
  (pending or parked) keeps its shape with the personal fields emptied, so it still applies,
  anonymously, and the shop's order totals are not lost;
- a table added later with a `customer_id` column: the customer's rows are deleted.

Deep-link tokens are not stored (they are signed); a token naming an erased customer is refused
when used.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import Table, Text, cast, delete, exists, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from bot.models import (
    Cart,
    CartItem,
    Click,
    Consent,
    Customer,
    CustomerEvent,
    FsmRecord,
    Inbox,
    InboxState,
    Order,
    OrderItem,
    Outbox,
    OutboxState,
    PromoCode,
    Shop,
)
from bot.store.commerce import STOREFRONT_PREFIX, Identity, cart_key, identity_of, redaction_hash

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
    "consent_at": None,
    "unreachable_since": None,
    "promos_paused_until": None,
    "needs_follow_up": False,
    "nps_score": None,
    "platform_updated_at": None,
}
# What a tombstone keeps; every other column of customers is cleared (new ones included).
PROFILE_KEPT = frozenset({"id", "shop_id", "redacted_hash", "created_at", "updated_at"})
# Tables erase_customers handles one by one; any other table with customer_id is deleted from.
HANDLED = frozenset(
    {"customer_events", "carts", "orders", "outbox", "exclusions", "clicks", "promo_codes"}
)
KEPT_EVENTS = {"nps_answered": ("score",)}  # event type -> payload keys kept, anonymized
ERASED_BODY = b'{"erased": true}'
ERASED_ERROR = "[erased with the customer's personal data]"

# Raw delivery fields that hold personal data on any platform (Shopify, WooCommerce, generic).
PERSONAL_OBJECTS = frozenset(
    {
        "billing_address",
        "shipping_address",
        "default_address",
        "addresses",
        "billing",
        "shipping",
        "address",
        "customer_address",
        "client_details",
        "note_attributes",
        "meta_data",
    }
)
PERSONAL_FIELDS = frozenset(
    {
        "email",
        "contact_email",
        "customer_email",
        "phone",
        "phone_number",
        "mobile",
        "sms_marketing_phone",
        "first_name",
        "last_name",
        "full_name",
        "username",
        "display_name",
        "avatar_url",
        "birthday",
        "birth_date",
        "date_of_birth",
        "address1",
        "address2",
        "address_1",
        "address_2",
        "street",
        "city",
        "zip",
        "postcode",
        "postal_code",
        "company",
        "latitude",
        "longitude",
        "browser_ip",
        "customer_ip_address",
        "customer_user_agent",
        "customer_note",
        "note",
    }
)
CUSTOMER_ID_FIELDS = frozenset({"id", "admin_graphql_api_id", "name"})
_PHONE_LIKE = re.compile(r"^[\d\s()+./-]{7,40}$")


def _erased_profile() -> dict[str, Any]:
    """Return the value of every profile column on a tombstone."""
    values = dict(ERASED_COLUMNS)
    for column in Customer.__table__.columns:  # type: ignore[attr-defined]
        if column.name in values or column.name in PROFILE_KEPT:
            continue
        default = column.default.arg if column.default is not None else None
        if column.nullable:
            values[column.name] = None
        elif callable(default):
            values[column.name] = default(None)
        else:
            values[column.name] = default
    return values


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


# ------------------------------------------------------------------------ raw deliveries


@dataclass(slots=True)
class Traces:
    """What a raw delivery about the customer would contain: identifiers, carts, orders."""

    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    external_ids: set[str] = field(default_factory=set)
    cart_tokens: set[str] = field(default_factory=set)
    order_ids: set[str] = field(default_factory=set)

    def add(self, identity: Identity) -> None:
        """Add a customer's normalized identifiers."""
        if identity.email:
            self.emails.add(identity.email.lower())
        if identity.phone:
            self.phones.add(identity.phone)
        if identity.external_id:
            self.external_ids.add(identity.external_id)

    def __bool__(self) -> bool:
        return any((self.emails, self.phones, self.external_ids, self.cart_tokens, self.order_ids))

    def needles(self) -> list[str]:
        """Return substrings a delivery about the customer contains (lower-case)."""
        found = set(self.emails) | self.external_ids | self.cart_tokens | self.order_ids
        for phone in self.phones:
            digits = phone.lstrip("+")
            found.update({digits, digits[-9:]})  # "+380671234567", "0671234567"
        found |= {t.removeprefix(STOREFRONT_PREFIX) for t in self.cart_tokens}
        return sorted(n.lower() for n in found if n and not n.startswith("sha256:"))

    def in_text(self, text: str) -> bool:
        """Tell whether a string holds the customer's e-mail or phone."""
        lowered = text.lower()
        if any(email in lowered for email in self.emails):
            return True
        if any(phone in text for phone in self.phones):
            return True
        if _PHONE_LIKE.match(text):
            digits = "".join(c for c in text if c.isdigit())
            return len(digits) >= 7 and any(
                p.lstrip("+").endswith(digits[-9:]) for p in self.phones
            )
        return False

    def names_customer(self, value: Any) -> bool:
        """Tell whether a platform id value (number, string or gid://…/ID) is the customer's."""
        if isinstance(value, bool) or not isinstance(value, int | str):
            return False
        text = str(value).strip()
        return text in self.external_ids or text.rsplit("/", 1)[-1] in self.external_ids

    def mentioned_by(self, row: Inbox, shop: Shop) -> bool:
        """Tell whether a stored delivery is about the customer."""
        raw = bytes(row.body or b"").lower() + b"\n" + (row.last_error or "").lower().encode()
        if any(email.encode() in raw for email in self.emails):
            return True
        if any(phone.encode() in raw for phone in self.phones):
            return True
        return any(self._event_mentions(event, shop) for event in _parse(row, shop))

    def _event_mentions(self, event: Any, shop: Shop) -> bool:
        ref = getattr(event, "customer", None)
        if ref is not None:
            identity = identity_of(ref, shop.country)
            if (
                identity.external_id in self.external_ids
                or identity.email in self.emails
                or identity.phone in self.phones
            ):
                return True
        for name in ("token", "cart_token", "checkout_token"):
            token = getattr(event, name, None)
            if token and (
                cart_key(token) in self.cart_tokens
                or STOREFRONT_PREFIX + token in self.cart_tokens
            ):
                return True
        order_id = getattr(event, "order_id", None)
        return bool(order_id) and order_id in self.order_ids


def _parse(row: Inbox, shop: Shop) -> list[Any]:
    from integrations import ADAPTERS, ParseContext, load_json

    adapter = ADAPTERS.get(row.platform)
    if adapter is None:
        return []
    context = ParseContext(default_region=shop.country, received_at=row.received_at)
    try:
        return list(adapter.parse(row.topic, row.headers, load_json(row.body), context))
    except Exception:  # an unreadable delivery is matched on its raw bytes only
        return []


def _pg_escape(needle: str) -> str:
    """Return how encode(bytea, 'escape') spells the UTF-8 bytes of a lower-case needle."""
    out = []
    for byte in needle.encode("utf-8").lower():
        if byte == 0 or byte >= 0x80:
            out.append(f"\\{byte:03o}")
        elif byte == 0x5C:
            out.append("\\\\")
        else:
            out.append(chr(byte))
    return "".join(out)


def _contains_any(dialect: str, needles: Sequence[str]) -> Any:
    """Return the condition "the delivery's body or last error holds one of the needles".

    The needles travel as one value (a PostgreSQL array, a JSON list on SQLite) that an EXISTS
    reads: an OR of one test per needle took longer to build and compile than to run (a
    customer with 50 orders has over 100 needles), and was never the same statement twice.
    """
    error = func.lower(func.coalesce(Inbox.last_error, ""))
    if dialect == "postgresql":
        body = func.lower(func.encode(Inbox.body, "escape"))

        def holds(text: Any, values: list[str]) -> Any:
            needle = func.unnest(literal(values, ARRAY(Text))).column_valued("needle")
            return exists().where(func.strpos(text, needle) > 0)

        return or_(holds(body, [_pg_escape(n) for n in needles]), holds(error, list(needles)))
    body = func.lower(cast(Inbox.body, Text))
    ascii_lower = json.dumps([n.encode("utf-8").lower().decode("utf-8") for n in needles])

    def contains(text: Any) -> Any:
        each = func.json_each(literal(ascii_lower)).table_valued("value")
        return exists().where(func.instr(text, each.c.value) > 0)

    return or_(contains(body), contains(error))


async def deliveries_about(*, session: AsyncSession, shop: Shop, traces: Traces) -> list[Inbox]:
    """Return the shop's stored deliveries that mention the customer, oldest first."""
    needles = traces.needles()
    if not needles:
        return []
    dialect = session.bind.dialect.name
    query = select(Inbox).where(Inbox.shop_id == shop.id, _contains_any(dialect, needles))
    found = [row for row in (await session.scalars(query)).all() if traces.mentioned_by(row, shop)]
    return sorted(found, key=lambda row: row.id or 0)


def scrub_payload(value: Any, traces: Traces, key: str | None = None) -> Any:
    """Return a delivery payload with everything personal about the customer emptied."""
    if isinstance(value, dict):
        cleaned: dict[str, Any] = {}
        for name, item in value.items():
            lowered = str(name).lower()
            personal = lowered in PERSONAL_FIELDS or lowered in PERSONAL_OBJECTS
            if lowered == "customer_id" or (key == "customer" and lowered in CUSTOMER_ID_FIELDS):
                personal = personal or traces.names_customer(item) or lowered == "name"
            cleaned[name] = None if personal else scrub_payload(item, traces, lowered)
            left = cleaned[name]
            if lowered == "customer" and isinstance(left, dict):
                if not any(left.get(k) for k in ("id", "email", "phone")):
                    cleaned[name] = None  # nobody is left: the delivery applies as a guest's
        return cleaned
    if isinstance(value, list):
        return [scrub_payload(item, traces, key) for item in value]
    if isinstance(value, str):
        gid = value.startswith("gid://") and traces.names_customer(value)
        return None if gid or traces.in_text(value) else value
    return value


def _scrubbed_body(row: Inbox, traces: Traces) -> bytes:
    if row.state == InboxState.DONE:
        return ERASED_BODY
    try:
        payload = json.loads(row.body)
    except (ValueError, RecursionError):
        return ERASED_BODY
    cleaned = scrub_payload(payload, traces)
    return json.dumps(cleaned, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _scrubbed_error(error: str | None) -> str | None:
    if error is None:
        return None
    kind = error.split(":", 1)[0].strip()
    if re.fullmatch(r"[A-Za-z_][\w.]{0,63}", kind):  # keep the exception's name: it helps
        return f"{kind}: {ERASED_ERROR}"
    return ERASED_ERROR


def _delivery_record(row: Inbox) -> dict[str, Any]:
    try:
        body: Any = json.loads(row.body)
    except (ValueError, RecursionError):
        body = bytes(row.body).decode("utf-8", "replace")
    return {
        "id": row.id,
        "platform": row.platform,
        "topic": row.topic,
        "delivery_key": row.delivery_key,
        "state": row.state,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "received_at": plain(row.received_at),
        "processed_at": plain(row.processed_at),
        "headers": row.headers,
        "body": body,
    }


# ---------------------------------------------------------------------------------- export


async def _traces_of(
    session: AsyncSession, shop_id: int, customers: Iterable[Customer], order_ids: Iterable[str]
) -> Traces:
    traces = Traces(order_ids={str(o) for o in order_ids if o})
    ids = []
    for customer in customers:
        traces.add(Identity(customer.external_id, customer.email, customer.phone))
        ids.append(customer.id)
    if ids:
        carts = select(Cart.token).where(Cart.shop_id == shop_id, Cart.customer_id.in_(ids))  # type: ignore[union-attr]
        traces.cart_tokens.update((await session.scalars(carts)).all())
        orders = select(Order.external_id, Order.cart_token).where(
            Order.shop_id == shop_id,
            Order.customer_id.in_(ids),  # type: ignore[union-attr]
        )
        for external_id, token in await session.execute(orders):
            traces.order_ids.add(external_id)
            if token:
                traces.cart_tokens.add(token)
    return traces


def _bot_id(shop: Shop) -> int | None:
    head = (shop.bot_token or "").split(":", 1)[0]
    return int(head) if head.isdigit() else None


def _conversation(shop: Shop, chat_ids: Sequence[int]) -> Any:
    bot_id = _bot_id(shop)
    if bot_id is None or not chat_ids:
        return None
    return (FsmRecord.bot_id == bot_id) & or_(
        FsmRecord.chat_id.in_(chat_ids),  # type: ignore[attr-defined]
        FsmRecord.user_id.in_(chat_ids),  # type: ignore[attr-defined]
    )


async def export_customer(
    *, session: AsyncSession, shop_id: int, customer_id: int
) -> dict[str, Any] | None:
    """Return everything stored about the customer as JSON-ready data, or None.

    Besides the customer's rows: the raw shop deliveries that mention them (`deliveries`) and
    their conversation state with the shop's bot (`conversation_state`).
    """
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
        records = export.get(section, [])
        items: dict[int, list[dict[str, Any]]] = {record["id"]: [] for record in records}
        for start in range(0, len(records), 500):  # one query per 500 carts or orders
            owners = [record["id"] for record in records[start : start + 500]]
            query = select(item_table).where(getattr(item_table, key).in_(owners))
            for item in (await session.scalars(query.order_by(item_table.id))).all():
                items[getattr(item, key)].append(_row(item.model_dump()))
        for record in records:
            record["items"] = items[record["id"]]
    for section in EXPORT_SECTIONS.values():
        export.setdefault(section, [])
    shop = await session.get(Shop, shop_id)
    assert shop is not None
    traces = await _traces_of(session, shop_id, [customer], ())
    deliveries = await deliveries_about(session=session, shop=shop, traces=traces)
    export["deliveries"] = [_delivery_record(row) for row in deliveries]
    chats = [customer.telegram_chat_id] if customer.telegram_chat_id is not None else []
    where = _conversation(shop, chats)
    states = [] if where is None else (await session.scalars(select(FsmRecord).where(where)))
    export["conversation_state"] = [_row(r.model_dump()) for r in states]
    return export


# --------------------------------------------------------------------------------- erasure


@dataclass(slots=True)
class Erasure:
    """What an erasure removed or anonymized (or would, for a dry run)."""

    shop_id: int
    found: bool
    customer_ids: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    deliveries: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the outcome as JSON-ready data."""
        return {
            "shop_id": self.shop_id,
            "customer_ids": self.customer_ids,
            "erased": dict(self.counts),
            "deliveries": self.deliveries,
        }

    def summary(self) -> str:
        """Describe what is erased in a few words."""
        words = {
            "profiles": ("profile", "profiles"),
            "events": ("event", "events"),
            "carts": ("cart", "carts"),
            "messages": ("message", "messages"),
            "orders_unlinked": ("order kept without the customer", "orders kept without them"),
            "clicks": ("click", "clicks"),
            "promo_codes": ("promo code unlinked", "promo codes unlinked"),
            "conversation_states": ("conversation state", "conversation states"),
            "deliveries": ("raw delivery", "raw deliveries"),
        }
        parts = []
        for key, count in self.counts.items():
            one, many = words.get(key, (f"{key} row", f"{key} rows"))
            if count:
                parts.append(f"{count} {one if count == 1 else many}")
        return ", ".join(parts) or "nothing personal is stored"


async def _count(session: AsyncSession, model: Any, *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def erase_customers(
    *,
    session: AsyncSession,
    shop_id: int,
    identity: Identity = Identity(),
    customer_ids: Sequence[int] = (),
    order_ids: Sequence[str] = (),
    now: datetime,
    dry_run: bool = False,
) -> Erasure:
    """Erase the customers an identity or ids name, everywhere their data is stored.

    Personal data is deleted or overwritten (see the module docstring for each table), what
    the shop's reports need is kept without the person, and every identifier's hash is kept so
    a later delivery about the same person stays erased. With `dry_run` nothing changes and the
    counts say what would be erased. `found` is False when no customer and no earlier erasure
    matches.
    """
    shop = await session.get(Shop, shop_id)
    if shop is None:
        return Erasure(shop_id, found=False)
    customers = await find_customers(session=session, shop_id=shop_id, identity=identity)
    for customer_id in customer_ids:
        customer = await session.get(Customer, customer_id)
        if customer is not None and customer.shop_id == shop_id and customer not in customers:
            customers.append(customer)
    live = [c for c in customers if c.redacted_hash is None]
    ids = [c.id for c in customers if c.id is not None]
    earlier = await _count(
        session,
        Customer,
        Customer.shop_id == shop_id,
        Customer.redacted_hash.in_(identity.hashes(shop_id) or [""]),  # type: ignore[union-attr]
    )
    traces = await _traces_of(session, shop_id, customers, order_ids)
    traces.add(identity)
    deliveries = (
        await deliveries_about(session=session, shop=shop, traces=traces) if traces else []
    )
    chats = [c.telegram_chat_id for c in customers if c.telegram_chat_id is not None]
    conversation = _conversation(shop, chats)
    mine = _tables_with("customer_id")
    where = {t.name: (t.c.shop_id == shop_id, t.c.customer_id.in_(ids)) for t in mine}
    unlinked_orders = (
        Order.shop_id == shop_id,
        or_(
            Order.customer_id.in_(ids),  # type: ignore[union-attr]
            Order.external_id.in_(list(order_ids)) & Order.customer_id.is_not(None),  # type: ignore[attr-defined,union-attr]
        ),
    )
    counts = {
        "profiles": len(live),
        "events": await _count(session, CustomerEvent, *where["customer_events"]),
        "carts": await _count(session, Cart, *where["carts"]),
        "messages": await _count(session, Outbox, *where["outbox"]),
        "orders_unlinked": await _count(session, Order, *unlinked_orders),
        "clicks": await _count(session, Click, *where["clicks"]),
        "promo_codes": await _count(session, PromoCode, *where["promo_codes"]),
        "conversation_states": (
            0 if conversation is None else await _count(session, FsmRecord, conversation)
        ),
    }
    for table in mine:
        if table.name not in HANDLED:
            counts[table.name] = await _count(session, table, *where[table.name])
    counts["deliveries"] = len(deliveries)
    erasure = Erasure(
        shop_id,
        found=bool(customers) or earlier > 0,
        customer_ids=[c.id for c in live if c.id is not None],
        counts=counts,
        deliveries=[row.id for row in deliveries if row.id is not None],
    )
    if dry_run:
        return erasure

    if conversation is not None:
        await session.execute(delete(FsmRecord).where(conversation))
    for row in deliveries:
        await session.execute(
            update(Inbox)
            .where(Inbox.id == row.id)  # type: ignore[arg-type]
            .values(body=_scrubbed_body(row, traces), last_error=_scrubbed_error(row.last_error))
            .execution_options(synchronize_session=False)
        )
    await session.execute(
        update(Order).where(*unlinked_orders).values(customer_id=None, cart_token=None)
    )
    if ids:
        await _erase_rows(session, shop_id, ids, now)
    if chats:  # what they wrote to support before linking, and their topics' names
        await _erase_support(session, shop_id, chats)
    await _leave_tombstones(session, shop_id, identity, customers, now)
    return erasure


async def _erase_support(session: AsyncSession, shop_id: int, chats: list[int]) -> None:
    """Delete the support conversations (with their messages) and topics of these chats."""
    from bot.models import SupportConversation, SupportTopic

    for model in (SupportConversation, SupportTopic):
        table = model.__table__  # type: ignore[attr-defined]
        await session.execute(
            delete(table).where(table.c.shop_id == shop_id, table.c.telegram_user_id.in_(chats))
        )


async def _erase_rows(session: AsyncSession, shop_id: int, ids: list[int], now: datetime) -> None:
    """Delete or anonymize the rows about these customers in every table but customers."""
    for kind, kept in KEPT_EVENTS.items():
        query = select(CustomerEvent).where(
            CustomerEvent.shop_id == shop_id,
            CustomerEvent.customer_id.in_(ids),  # type: ignore[union-attr]
            CustomerEvent.type == kind,
        )
        for event in (await session.scalars(query)).all():
            event.customer_id = None
            event.payload = {key: event.payload.get(key) for key in kept}
            session.add(event)
    await session.flush()
    carts = select(Cart.id).where(Cart.shop_id == shop_id, Cart.customer_id.in_(ids))  # type: ignore[union-attr]
    await session.execute(delete(CartItem).where(CartItem.cart_id.in_(carts)))  # type: ignore[attr-defined]
    await session.execute(
        update(Outbox)
        .where(
            Outbox.shop_id == shop_id,
            Outbox.customer_id.in_(ids),  # type: ignore[attr-defined]
            Outbox.state.in_([OutboxState.SCHEDULED, OutboxState.HELD]),  # type: ignore[attr-defined]
        )
        .values(state=OutboxState.CANCELLED, skip_reason="erased", updated_at=now)
    )
    await session.execute(
        update(Outbox)
        .where(Outbox.shop_id == shop_id, Outbox.customer_id.in_(ids))  # type: ignore[attr-defined]
        .values(payload={}, last_error=None, telegram_message_id=None)
    )
    for table in reversed(_tables_with("customer_id")):
        where = (table.c.shop_id == shop_id, table.c.customer_id.in_(ids))
        if table.name in ("outbox", "exclusions"):
            continue  # kept on the tombstone, personal fields cleared above
        if table.name in KEEP_UNLINKED or table.name == "clicks":
            await session.execute(update(table).where(*where).values(customer_id=None))
        else:
            await session.execute(delete(table).where(*where))


async def _leave_tombstones(
    session: AsyncSession,
    shop_id: int,
    identity: Identity,
    customers: list[Customer],
    now: datetime,
) -> None:
    own = {c.id: Identity(c.external_id, c.email, c.phone).hashes(shop_id) for c in customers}
    wanted = dict.fromkeys(identity.hashes(shop_id))
    for hashes in own.values():
        wanted.update(dict.fromkeys(hashes))
    held = set(
        (
            await session.scalars(
                select(Customer.redacted_hash).where(
                    Customer.shop_id == shop_id,
                    Customer.redacted_hash.in_(list(wanted) or [""]),  # type: ignore[union-attr]
                )
            )
        ).all()
    )
    for customer in customers:
        if customer.redacted_hash is not None:
            held.add(customer.redacted_hash)
            continue
        candidates = own[customer.id] or list(wanted)
        free = [h for h in candidates if h not in held]
        customer.redacted_hash = (
            free or candidates or [redaction_hash(shop_id, "id", str(customer.id))]
        )[0]
        held.add(customer.redacted_hash)
    blank = _erased_profile()
    for customer in customers:
        for key, value in blank.items():
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


async def forget_delivery(*, session: AsyncSession, inbox_id: int) -> None:
    """Overwrite an applied delivery's body and error: it was about an erased customer."""
    await session.execute(
        update(Inbox)
        .where(Inbox.id == inbox_id)  # type: ignore[arg-type]
        .values(body=ERASED_BODY, last_error=None)
        .execution_options(synchronize_session=False)
    )


async def redact_customers(
    *,
    session: AsyncSession,
    shop_id: int,
    identity: Identity,
    order_ids: Sequence[str] = (),
    now: datetime,
) -> list[int]:
    """Erase the customers an identity names (Shopify's customers/redact); return their ids."""
    erasure = await erase_customers(
        session=session, shop_id=shop_id, identity=identity, order_ids=order_ids, now=now
    )
    return erasure.customer_ids


async def redact_shop(*, session: AsyncSession, shop_id: int) -> None:
    """Delete everything stored for the shop, the shop itself included."""
    shop = await session.get(Shop, shop_id)
    bot_id = _bot_id(shop) if shop is not None else None
    if bot_id is not None:
        await session.execute(delete(FsmRecord).where(FsmRecord.bot_id == bot_id))  # type: ignore[arg-type]
    for table in reversed(_tables_with("shop_id")):
        await session.execute(delete(table).where(table.c.shop_id == shop_id))
    await session.execute(delete(Customer).where(Customer.shop_id == shop_id))  # type: ignore[arg-type]
    await session.execute(delete(Shop).where(Shop.id == shop_id))  # type: ignore[arg-type]
    session.expunge_all()


async def mark_uninstalled(*, session: AsyncSession, shop_id: int, at: datetime) -> None:
    """Record that the shop removed the app (nothing is sent to its customers after this)."""
    await session.execute(update(Shop).where(Shop.id == shop_id).values(uninstalled_at=at))  # type: ignore[arg-type]

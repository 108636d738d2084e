"""The profile store's tables. Every row carries shop_id; times are aware UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import DDL, JSON, BigInteger, Column, Index, LargeBinary, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from bot.db import BigId, Money, UTCDateTime


def utcnow() -> datetime:
    """Return the current aware UTC time (for column defaults only; logic uses a clock)."""
    return datetime.now(UTC)


def _id() -> Any:
    return Field(default=None, primary_key=True, sa_type=BigId)


def _shop_fk() -> Any:
    return Field(
        sa_column_kwargs={"nullable": False},
        sa_type=BigId,
        foreign_key="shops.id",
        ondelete="CASCADE",
    )


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_type=UTCDateTime, index=index)
    return Field(default_factory=utcnow, sa_type=UTCDateTime, index=index, nullable=False)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def _json(default_factory: Any = dict) -> Any:
    return Field(default_factory=default_factory, sa_type=JSONType, nullable=False)


class Platform(StrEnum):
    """Shop platforms Nudge has an adapter for."""

    SHOPIFY = "shopify"
    WOOCOMMERCE = "woocommerce"
    GENERIC = "generic"


class Consent(StrEnum):
    """Whether a customer agreed to get messages."""

    UNKNOWN = "unknown"
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"


class CartStatus(StrEnum):
    """Life of a cart: open until ordered, emptied or replaced by a newer one."""

    OPEN = "open"
    CONVERTED = "converted"
    EMPTIED = "emptied"
    REPLACED = "replaced"


class OrderStatus(StrEnum):
    """Life of an order."""

    PLACED = "placed"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"  # placed, then refunded in full: counts for nothing (#13)


class Shop(SQLModel, table=True):
    """A connected store and its bot."""

    __tablename__ = "shops"

    id: int | None = _id()
    name: str = Field(max_length=200)
    platform: str = Field(max_length=32)
    currency: str = Field(default="USD", max_length=3)
    country: str | None = Field(default=None, max_length=2)
    default_locale: str = Field(default="en", max_length=8)
    timezone: str = Field(default="UTC", max_length=64)
    bot_token: str | None = Field(default=None, max_length=128)
    bot_username: str | None = Field(default=None, max_length=64)
    webhook_secret: str = Field(max_length=128)
    settings: dict[str, Any] = _json()
    last_delivery_at: datetime | None = _ts()
    # webhook deliveries refused for a bad signature since the last authentic one (shop check)
    signature_failures: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    last_signature_failure_at: datetime | None = _ts()
    uninstalled_at: datetime | None = _ts()
    # the shop's median days between orders at the last full metrics refresh (bot.lifecycle)
    median_interval_days: float | None = None
    created_at: datetime = _ts(nullable=False)


class Customer(SQLModel, table=True):
    """A shop's customer: identity, contact, preferences and messenger link."""

    __tablename__ = "customers"
    __table_args__ = (
        Index("uq_customers_shop_external", "shop_id", "external_id", unique=True),
        Index("uq_customers_shop_chat", "shop_id", "telegram_chat_id", unique=True),
        Index("ix_customers_shop_email", "shop_id", "email"),
        Index("ix_customers_shop_phone", "shop_id", "phone"),
        Index("ix_customers_shop_redacted", "shop_id", "redacted_hash"),
    )

    id: int | None = _id()
    shop_id: int = _shop_fk()
    external_id: str | None = Field(default=None, max_length=128)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=20)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    locale: str | None = Field(default=None, max_length=8)
    timezone: str | None = Field(default=None, max_length=64)
    birthday: date | None = None
    birth_year: int | None = None
    attributes: dict[str, Any] = _json()
    country: str | None = Field(default=None, max_length=2)
    city: str | None = Field(default=None, max_length=200)
    telegram_chat_id: int | None = Field(default=None, sa_type=BigInteger)
    telegram_username: str | None = Field(default=None, max_length=64)
    linked_at: datetime | None = _ts()
    consent: str = Field(default=Consent.UNKNOWN, max_length=16)
    consent_source: str | None = Field(default=None, max_length=64)
    consent_at: datetime | None = _ts()
    unreachable_since: datetime | None = _ts()
    promos_paused_until: datetime | None = _ts()
    # a support conversation is open (#15): automated promos wait until it is closed
    support_open_since: datetime | None = _ts()
    needs_follow_up: bool = False
    nps_score: int | None = None
    redacted_hash: str | None = Field(default=None, max_length=64)
    platform_updated_at: datetime | None = _ts()
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class CustomerEvent(SQLModel, table=True):
    """Append-only log of what a customer did or was told."""

    __tablename__ = "customer_events"
    __table_args__ = (Index("ix_events_customer_time", "shop_id", "customer_id", "occurred_at"),)

    id: int | None = _id()
    shop_id: int = _shop_fk()
    customer_id: int | None = Field(
        default=None, sa_type=BigId, foreign_key="customers.id", ondelete="CASCADE"
    )
    type: str = Field(max_length=64)
    payload: dict[str, Any] = _json()
    source: str = Field(max_length=32)
    occurred_at: datetime = _ts(nullable=False)


class Product(SQLModel, table=True):
    """A product as the shop last described it."""

    __tablename__ = "products"
    __table_args__ = (Index("uq_products_shop_external", "shop_id", "external_id", unique=True),)

    id: int | None = _id()
    shop_id: int = _shop_fk()
    external_id: str = Field(max_length=128)
    title: str = Field(default="", max_length=500)
    category: str | None = Field(default=None, max_length=200)
    url: str | None = Field(default=None, max_length=2000)
    image_url: str | None = Field(default=None, max_length=2000)
    price: Decimal | None = Field(default=None, sa_type=Money)
    currency: str | None = Field(default=None, max_length=3)
    platform_updated_at: datetime | None = _ts()
    updated_at: datetime = _ts(nullable=False)


class Cart(SQLModel, table=True):
    """A cart or checkout, keyed by the platform's token."""

    __tablename__ = "carts"
    __table_args__ = (
        Index("uq_carts_shop_token", "shop_id", "token", unique=True),
        Index("ix_carts_status_updated", "shop_id", "status", "updated_at"),
        Index("ix_carts_customer", "shop_id", "customer_id"),
    )

    id: int | None = _id()
    shop_id: int = _shop_fk()
    customer_id: int | None = Field(
        default=None, sa_type=BigId, foreign_key="customers.id", ondelete="SET NULL"
    )
    token: str = Field(max_length=128)
    status: str = Field(default=CartStatus.OPEN, max_length=16)
    currency: str | None = Field(default=None, max_length=3)
    total: Decimal | None = Field(default=None, sa_type=Money)
    recovery_url: str | None = Field(default=None, max_length=2000)
    order_id: int | None = Field(default=None, sa_type=BigId)
    platform_updated_at: datetime | None = _ts()
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class CartItem(SQLModel, table=True):
    """A line of a cart."""

    __tablename__ = "cart_items"

    id: int | None = _id()
    shop_id: int = _shop_fk()
    cart_id: int = Field(
        sa_column_kwargs={"nullable": False},
        sa_type=BigId,
        foreign_key="carts.id",
        ondelete="CASCADE",
        index=True,
    )
    position: int = 0
    product_external_id: str | None = Field(default=None, max_length=128)
    variant_external_id: str | None = Field(default=None, max_length=128)
    title: str = Field(default="", max_length=500)
    category: str | None = Field(default=None, max_length=200)
    price: Decimal | None = Field(default=None, sa_type=Money)
    quantity: int = 1
    url: str | None = Field(default=None, max_length=2000)
    image_url: str | None = Field(default=None, max_length=2000)


class Order(SQLModel, table=True):
    """An order the shop reported."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("uq_orders_shop_external", "shop_id", "external_id", unique=True),
        Index("ix_orders_customer", "shop_id", "customer_id", "placed_at"),
        # segments (#13): a customer's orders of a status, read from the index alone
        Index(
            "ix_orders_customer_status",
            "shop_id",
            "customer_id",
            "status",
            postgresql_include=["id"],
        ),
        # reports (#16): the orders credited to messages (most orders are credited to none)
        Index(
            "ix_orders_attributed",
            "attributed_outbox_id",
            sqlite_where=text("attributed_outbox_id IS NOT NULL"),
            postgresql_where=text("attributed_outbox_id IS NOT NULL"),
        ),
    )

    id: int | None = _id()
    shop_id: int = _shop_fk()
    customer_id: int | None = Field(
        default=None, sa_type=BigId, foreign_key="customers.id", ondelete="SET NULL"
    )
    external_id: str = Field(max_length=128)
    cart_token: str | None = Field(default=None, max_length=128)
    status: str = Field(default=OrderStatus.PLACED, max_length=16)
    total: Decimal | None = Field(default=None, sa_type=Money)
    currency: str | None = Field(default=None, max_length=3)
    discount_codes: list[str] = _json(list)
    attributed_outbox_id: int | None = Field(default=None, sa_type=BigId)
    # sum of its refunds in the order's currency (order_refunds); None: never refunded (#13)
    refunded_total: Decimal | None = Field(default=None, sa_type=Money)
    placed_at: datetime = _ts(nullable=False)
    platform_updated_at: datetime | None = _ts()
    updated_at: datetime = _ts(nullable=False)


class OrderRefund(SQLModel, table=True):
    """A refund of an order, once per platform refund id; kept even before its order arrives."""

    __tablename__ = "order_refunds"
    __table_args__ = (
        Index("uq_order_refunds", "shop_id", "order_external_id", "external_id", unique=True),
    )

    id: int | None = _id()
    shop_id: int = _shop_fk()
    order_external_id: str = Field(max_length=128)
    external_id: str = Field(max_length=128)
    amount: Decimal | None = Field(default=None, sa_type=Money)
    currency: str | None = Field(default=None, max_length=3)
    full: bool = False
    reason: str | None = Field(default=None, max_length=200)
    refunded_at: datetime = _ts(nullable=False)
    created_at: datetime = _ts(nullable=False)


class OrderItem(SQLModel, table=True):
    """A line of an order."""

    __tablename__ = "order_items"

    id: int | None = _id()
    shop_id: int = _shop_fk()
    order_id: int = Field(
        sa_column_kwargs={"nullable": False},
        sa_type=BigId,
        foreign_key="orders.id",
        ondelete="CASCADE",
    )  # indexed by ix_order_items_order_category (order_id first)
    product_external_id: str | None = Field(default=None, max_length=128)
    title: str = Field(default="", max_length=500)
    category: str | None = Field(default=None, max_length=200)
    price: Decimal | None = Field(default=None, sa_type=Money)
    quantity: int = 1


# Segments (#13): "bought category X" reads an order's lines' categories from the index alone
# (lower() is applied to the indexed value); it also serves every look-up of an order's lines.
Index(
    "ix_order_items_order_category",
    OrderItem.__table__.c.order_id,  # type: ignore[attr-defined]
    OrderItem.__table__.c.category,  # type: ignore[attr-defined]
)
# PostgreSQL: statistics of lower(category), so the planner knows how common a category is
# (without them it guesses 0.5% and may read every line of that category first).
ORDER_ITEM_CATEGORY_STATISTICS = (
    "CREATE STATISTICS IF NOT EXISTS st_order_items_category_lower"
    " ON (lower(category)) FROM order_items"
)
event.listen(
    OrderItem.__table__,  # type: ignore[attr-defined]
    "after_create",
    DDL(ORDER_ITEM_CATEGORY_STATISTICS).execute_if(dialect="postgresql"),
)


class Exclusion(SQLModel, table=True):
    """A "not interested": the customer never gets offers on this topic again."""

    __tablename__ = "exclusions"
    __table_args__ = (
        Index("uq_exclusions_customer_topic", "shop_id", "customer_id", "topic", unique=True),
    )

    id: int | None = _id()
    shop_id: int = _shop_fk()
    customer_id: int = Field(
        sa_column_kwargs={"nullable": False},
        sa_type=BigId,
        foreign_key="customers.id",
        ondelete="CASCADE",
    )
    topic: str = Field(max_length=200)
    outbox_id: int | None = Field(default=None, sa_type=BigId)
    created_at: datetime = _ts(nullable=False)


class InboxState(StrEnum):
    """Life of a stored webhook delivery."""

    PENDING = "pending"
    DONE = "done"
    PARKED = "parked"


class Inbox(SQLModel, table=True):
    """A shop webhook delivery, stored before it is acknowledged, applied by a worker."""

    __tablename__ = "inbox"
    __table_args__ = (
        Index("uq_inbox_shop_key", "shop_id", "delivery_key", unique=True),
        Index("ix_inbox_state_next", "state", "next_attempt_at"),
    )

    id: int | None = _id()
    shop_id: int = _shop_fk()
    platform: str = Field(max_length=32)
    topic: str = Field(max_length=64)
    delivery_key: str = Field(max_length=255)
    headers: dict[str, Any] = _json()
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    state: str = Field(default=InboxState.PENDING, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = _ts(nullable=False)
    last_error: str | None = Field(default=None, max_length=2000)
    received_at: datetime = _ts(nullable=False)
    processed_at: datetime | None = _ts()


class TelegramUpdateState(StrEnum):
    """Life of a Telegram update a shop's bot received."""

    HANDLING = "handling"
    RETRY = "retry"
    DONE = "done"
    FAILED = "failed"
    REJECTED = "rejected"


class TelegramUpdate(SQLModel, table=True):
    """A Telegram update claimed once per bot, then done, failed or rejected (unreadable).

    Keyed by the bot (the token's numeric id) and Telegram's update_id, so a redelivered update
    is recognised; the fingerprint (SHA-256 of its content) tells a redelivery from another
    update under a reused id. An unreadable body with no update_id is kept with update_id NULL.
    """

    __tablename__ = "telegram_updates"
    __table_args__ = (
        Index("uq_telegram_updates_bot_update", "bot_id", "update_id", unique=True),
        Index("ix_telegram_updates_received", "received_at"),
    )

    id: int | None = _id()
    shop_id: int = _shop_fk()
    bot_id: int = Field(sa_type=BigInteger)
    update_id: int | None = Field(default=None, sa_type=BigInteger)
    fingerprint: str = Field(max_length=64)
    state: str = Field(default=TelegramUpdateState.HANDLING, max_length=16)
    attempts: int = 1
    error: str | None = Field(default=None, max_length=2000)
    received_at: datetime = _ts(nullable=False)
    claimed_at: datetime = _ts(nullable=False)
    finished_at: datetime | None = _ts()


class OutboxState(StrEnum):
    """Life of a message to send."""

    SCHEDULED = "scheduled"
    HELD = "held"  # a paused campaign's row: never claimed until resumed
    SENDING = "sending"
    SENT = "sent"
    BLOCKED = "blocked"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"


class Lane(StrEnum):
    """Priority lanes; transactional first, promo last."""

    TRANSACTIONAL = "transactional"
    REMINDER = "reminder"
    PROMO = "promo"


LANE_PRIORITY = {Lane.TRANSACTIONAL: 0, Lane.REMINDER: 1, Lane.PROMO: 2}


class Outbox(SQLModel, table=True):
    """A message a flow scheduled; the dispatcher sends it and records what happened."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("uq_outbox_shop_dedupe", "shop_id", "dedupe_key", unique=True),
        # the claim walks scheduled rows by lane then due_at, filtering next_attempt_at in-index
        Index("ix_outbox_due", "state", "priority", "due_at", "next_attempt_at"),
        Index("ix_outbox_customer_state", "shop_id", "customer_id", "state"),
        Index("ix_outbox_customer_topic", "shop_id", "customer_id", "topic"),
        # reports (#16): a shop's messages counted by kind, state and reason from the index
        Index("ix_outbox_shop_kind_state", "shop_id", "kind", "state", "skip_reason"),
        # one bot's claim (#12): each lane an exact range, already in claim order
        Index(
            "ix_outbox_shop_claim",
            "shop_id",
            "state",
            "priority",
            "due_at",
            "id",
            "next_attempt_at",
        ),
    )

    id: int | None = _id()
    shop_id: int = _shop_fk()
    customer_id: int = Field(
        sa_column_kwargs={"nullable": False},
        sa_type=BigId,
        foreign_key="customers.id",
        ondelete="CASCADE",
    )
    kind: str = Field(max_length=64)
    topic: str | None = Field(default=None, max_length=200)
    lane: str = Field(default=Lane.PROMO, max_length=16)
    priority: int = 2
    payload: dict[str, Any] = _json()
    dedupe_key: str = Field(max_length=255)
    due_at: datetime = _ts(nullable=False)
    state: str = Field(default=OutboxState.SCHEDULED, max_length=16)
    skip_reason: str | None = Field(default=None, max_length=64)
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    last_error: str | None = Field(default=None, max_length=2000)
    telegram_message_id: int | None = Field(default=None, sa_type=BigInteger)
    sent_at: datetime | None = _ts()
    variant: str | None = Field(default=None, max_length=16)
    claimed_at: datetime | None = _ts()
    # the dispatcher instance that claimed it (host:pid:random): whose rows a crash left
    claimed_by: str | None = Field(default=None, max_length=64)
    at_least_once: bool = False
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class PromoPool(SQLModel, table=True):
    """A shop's named set of promo codes: imported from CSV, or generated from a pattern."""

    __tablename__ = "promo_pools"
    __table_args__ = (Index("uq_promo_pools_shop_name", "shop_id", "name", unique=True),)

    id: int | None = _id()
    shop_id: int = _shop_fk()
    name: str = Field(max_length=64)
    pattern: str | None = Field(default=None, max_length=64)
    created_at: datetime = _ts(nullable=False)


class PromoCode(SQLModel, table=True):
    """One code; issued to one customer at most."""

    __tablename__ = "promo_codes"
    __table_args__ = (
        Index("uq_promo_codes_shop_code", "shop_id", "code", unique=True),
        Index("ix_promo_codes_pool_customer", "pool_id", "customer_id"),
        Index("ix_promo_codes_customer", "shop_id", "customer_id"),  # a customer's codes
    )

    id: int | None = _id()
    shop_id: int = _shop_fk()
    pool_id: int = Field(
        sa_column_kwargs={"nullable": False},
        sa_type=BigId,
        foreign_key="promo_pools.id",
        ondelete="CASCADE",
    )
    code: str = Field(max_length=64)
    customer_id: int | None = Field(
        default=None, sa_type=BigId, foreign_key="customers.id", ondelete="SET NULL"
    )
    outbox_id: int | None = Field(default=None, sa_type=BigId)
    issued_at: datetime | None = _ts()
    created_at: datetime = _ts(nullable=False)


class Click(SQLModel, table=True):
    """A tap on a tracked link in a message (through GET /r/{token})."""

    __tablename__ = "clicks"
    __table_args__ = (Index("ix_clicks_customer_time", "shop_id", "customer_id", "clicked_at"),)

    id: int | None = _id()
    shop_id: int = _shop_fk()
    outbox_id: int = Field(sa_type=BigId, index=True)
    customer_id: int | None = Field(default=None, sa_type=BigId)
    target: str = Field(max_length=32)
    clicked_at: datetime = _ts(nullable=False)


# Surveys, NPS and support read a shop's events by type and time.
Index(
    "ix_events_shop_type_time",
    CustomerEvent.__table__.c.shop_id,  # type: ignore[attr-defined]
    CustomerEvent.__table__.c.type,  # type: ignore[attr-defined]
    CustomerEvent.__table__.c.occurred_at,  # type: ignore[attr-defined]
)


class Survey(SQLModel, table=True):
    """A shop-defined single question whose answer is written to a profile attribute."""

    __tablename__ = "surveys"

    id: int | None = _id()
    shop_id: int = _shop_fk()
    question: str = Field(max_length=1000)
    attribute: str = Field(max_length=64)
    choices: list[str] = _json(list)
    created_at: datetime = _ts(nullable=False)


class FsmRecord(SQLModel, table=True):
    """An aiogram FSM state and data for one bot/chat/user key; gone after `expires_at`.

    Keyed by the bot (whose token belongs to one shop), not by shop_id: the storage only sees
    aiogram's StorageKey.
    """

    __tablename__ = "fsm_states"

    key: str = Field(primary_key=True, max_length=255)
    bot_id: int = Field(sa_type=BigInteger)
    chat_id: int = Field(sa_type=BigInteger)
    user_id: int = Field(sa_type=BigInteger)
    state: str | None = Field(default=None, max_length=255)
    data: dict[str, Any] = _json()
    expires_at: datetime = _ts(nullable=False, index=True)
    updated_at: datetime = _ts(nullable=False)


class Stage(StrEnum):
    """Where a customer is in their life with the shop, from their own ordering rhythm."""

    PROSPECT = "prospect"  # linked, no order yet
    NEW = "new"  # one order
    ACTIVE = "active"  # ordered within 1.5x their expected interval
    AT_RISK = "at_risk"  # past 1.5x
    LAPSED = "lapsed"  # past 3x, or a year without an order


class CustomerMetrics(SQLModel, table=True):
    """What a customer's orders say about them, kept current by the metrics refresh."""

    __tablename__ = "customer_metrics"
    __table_args__ = (
        Index("ix_customer_metrics_shop_stage", "shop_id", "stage"),
        # no index on last_order_at (#13): segments read a shop's metrics whole, and SQLite
        # chose it for "ordered within 180 days", looking up most rows one by one
    )

    customer_id: int = Field(
        primary_key=True, sa_type=BigId, foreign_key="customers.id", ondelete="CASCADE"
    )
    shop_id: int = _shop_fk()
    orders_count: int = 0
    revenue: Decimal = Field(default=Decimal(0), sa_type=Money, nullable=False)
    aov: Decimal | None = Field(default=None, sa_type=Money)
    first_order_at: datetime | None = _ts()
    last_order_at: datetime | None = _ts()
    avg_interval_days: float | None = None
    expected_next_order_at: datetime | None = _ts()
    rfm_r: int | None = None
    rfm_f: int | None = None
    rfm_m: int | None = None
    rfm_cell: str | None = Field(default=None, max_length=3)
    stage: str = Field(default=Stage.PROSPECT, max_length=16)
    stage_since: datetime | None = _ts()
    refreshed_at: datetime = _ts(nullable=False)


class CustomerTag(SQLModel, table=True):
    """A tag the shop gave a customer (Shopify customer tags, a generic `tags` list)."""

    __tablename__ = "customer_tags"
    __table_args__ = (
        Index("uq_customer_tags", "shop_id", "customer_id", "tag", unique=True),
        Index("ix_customer_tags_tag", "shop_id", "tag"),
    )

    id: int | None = _id()
    shop_id: int = _shop_fk()
    customer_id: int = Field(
        sa_column_kwargs={"nullable": False},
        sa_type=BigId,
        foreign_key="customers.id",
        ondelete="CASCADE",
    )
    tag: str = Field(max_length=200)


class Segment(SQLModel, table=True):
    """A saved audience: a definition in the segment language, named per shop."""

    __tablename__ = "segments"
    __table_args__ = (Index("uq_segments_shop_name", "shop_id", "name", unique=True),)

    id: int | None = _id()
    shop_id: int = _shop_fk()
    name: str = Field(max_length=100)
    definition: dict[str, Any] = _json()
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class CampaignStatus(StrEnum):
    """Life of a campaign."""

    DRAFT = "draft"
    SENDING = "sending"  # being fanned out into the outbox
    SENT = "sent"  # every recipient has an outbox row (some may still wait for their time)
    PAUSED = "paused"
    CANCELLED = "cancelled"


class Campaign(SQLModel, table=True):
    """A promo to a segment: the checked campaign file and where its fan-out stands."""

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_shop", "shop_id", "id"),)

    id: int | None = _id()
    shop_id: int = _shop_fk()
    name: str = Field(max_length=200)
    topic: str = Field(max_length=200)
    spec: dict[str, Any] = _json()
    status: str = Field(default=CampaignStatus.DRAFT, max_length=16)
    send_at: datetime | None = _ts()
    local_time: str | None = Field(default=None, max_length=5)
    started_at: datetime | None = _ts()
    fanned_out_at: datetime | None = _ts()
    cursor: int = Field(default=0, sa_type=BigInteger)  # the last customer id fanned out
    recipients: int = 0
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class CampaignRecipient(SQLModel, table=True):
    """Who a campaign chose: their variant or the holdout, and the rows sent to them.

    Written once per customer by the fan-out (a re-run finds them and moves no one); the report
    reads outcomes through `outbox_id` and `follow_up_id`.
    """

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        Index("uq_campaign_recipients", "campaign_id", "customer_id", unique=True),
        Index("ix_campaign_recipients_outbox", "outbox_id"),
        Index("ix_campaign_recipients_follow_up", "follow_up_id"),
        # a customer's campaigns (export, erasure) without reading every campaign's recipients
        Index("ix_campaign_recipients_customer", "shop_id", "customer_id"),
    )

    id: int | None = _id()
    campaign_id: int = Field(
        sa_column_kwargs={"nullable": False},
        sa_type=BigId,
        foreign_key="campaigns.id",
        ondelete="CASCADE",
    )
    shop_id: int = _shop_fk()
    customer_id: int = Field(
        sa_column_kwargs={"nullable": False},
        sa_type=BigId,
        foreign_key="customers.id",
        ondelete="CASCADE",
    )
    variant: str | None = Field(default=None, max_length=16)  # None: the holdout
    locale: str = Field(max_length=8)
    outbox_id: int | None = Field(default=None, sa_type=BigId)
    follow_up_id: int | None = Field(default=None, sa_type=BigId)
    created_at: datetime = _ts(nullable=False)


# ----------------------------------------------------------------- support agents (#15)


class SupportState(StrEnum):
    """Life of a support conversation."""

    OPEN = "open"
    CLOSED = "closed"


class SupportConversation(SQLModel, table=True):
    """One stretch of a customer talking to the shop, from their first message to `/close`.

    Keyed by the Telegram user, so a customer who has not linked their chat yet is heard too
    (`customer_id` stays NULL until they do).
    """

    __tablename__ = "support_conversations"
    __table_args__ = (
        Index("ix_support_conversations_user", "shop_id", "telegram_user_id", "state"),
        # one open conversation per user: two first messages at once end in the same one
        Index(
            "uq_support_conversations_open",
            "shop_id",
            "telegram_user_id",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
        Index("ix_support_conversations_state", "shop_id", "state", "opened_at"),
    )

    id: int | None = _id()
    shop_id: int = _shop_fk()
    customer_id: int | None = Field(
        default=None, sa_type=BigId, foreign_key="customers.id", ondelete="SET NULL"
    )
    telegram_user_id: int = Field(sa_type=BigInteger)
    name: str | None = Field(default=None, max_length=200)  # as Telegram shows the user
    locale: str | None = Field(default=None, max_length=8)
    state: str = Field(default=SupportState.OPEN, max_length=16)
    opened_at: datetime = _ts(nullable=False)
    last_customer_at: datetime | None = _ts()
    first_response_at: datetime | None = _ts()
    last_answer_at: datetime | None = _ts()
    undelivered: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    closed_at: datetime | None = _ts()


class SupportTopic(SQLModel, table=True):
    """The forum topic of one Telegram user in one shop's support group."""

    __tablename__ = "support_topics"
    __table_args__ = (
        Index("uq_support_topics_user", "shop_id", "chat_id", "telegram_user_id", unique=True),
        Index("uq_support_topics_thread", "shop_id", "chat_id", "thread_id", unique=True),
    )

    id: int | None = _id()
    shop_id: int = _shop_fk()
    chat_id: int = Field(sa_type=BigInteger)
    telegram_user_id: int = Field(sa_type=BigInteger)
    thread_id: int | None = Field(default=None, sa_type=BigInteger)
    name: str = Field(default="", max_length=128)
    closed: bool = False
    created_at: datetime = _ts(nullable=False)


class SupportMessage(SQLModel, table=True):
    """A message of a conversation, either way, and where its copy went.

    `direction`: `in` (the customer's), `out` (an answer to the customer), `note` (internal),
    `card` and `notice` (the bot's posts for agents). `relay`: `pending` (waits for the
    group), `done`, `undelivered`, `none` (nothing to relay). The source message is unique, so
    a redelivered update stores nothing twice.
    """

    __tablename__ = "support_messages"
    __table_args__ = (
        Index(
            "uq_support_messages_source",
            "shop_id",
            "source_chat_id",
            "source_message_id",
            unique=True,
        ),
        Index("ix_support_messages_relay", "relay", "shop_id", "id"),
        Index("ix_support_messages_conversation", "conversation_id", "id"),
        Index("ix_support_messages_copy", "shop_id", "copy_chat_id", "copy_message_id"),
    )

    id: int | None = _id()
    shop_id: int = _shop_fk()
    conversation_id: int = Field(
        sa_column_kwargs={"nullable": False},
        sa_type=BigId,
        foreign_key="support_conversations.id",
        ondelete="CASCADE",
    )
    direction: str = Field(max_length=8)
    content: str = Field(default="text", max_length=16)
    text: str | None = Field(default=None, max_length=5000)
    file_id: str | None = Field(default=None, max_length=255)
    source_chat_id: int | None = Field(default=None, sa_type=BigInteger)
    source_message_id: int | None = Field(default=None, sa_type=BigInteger)
    copy_chat_id: int | None = Field(default=None, sa_type=BigInteger)
    copy_message_id: int | None = Field(default=None, sa_type=BigInteger)
    agent_user_id: int | None = Field(default=None, sa_type=BigInteger)
    outbox_id: int | None = Field(default=None, sa_type=BigId)
    relay: str = Field(default="none", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = _ts(nullable=False)
    relayed_at: datetime | None = _ts()


class ApiToken(SQLModel, table=True):
    """A bearer token of the admin API: the owner's (every shop) or one shop's, stored hashed.

    Only the SHA-256 of the token is kept (a token is 256 random bits, so a fast hash is as
    safe as a slow one); `prefix` (its first characters) lets people tell tokens apart.
    """

    __tablename__ = "api_tokens"
    __table_args__ = (Index("uq_api_tokens_hash", "token_hash", unique=True),)

    id: int | None = _id()
    kind: str = Field(max_length=8)  # "owner" or "shop"
    shop_id: int | None = Field(
        default=None, sa_type=BigId, foreign_key="shops.id", ondelete="CASCADE"
    )
    read_only: bool = False
    name: str | None = Field(default=None, max_length=100)
    prefix: str = Field(max_length=16)
    token_hash: str = Field(max_length=64)
    created_at: datetime = _ts(nullable=False)
    last_used_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts()

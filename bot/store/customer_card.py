"""One customer at a glance: profile, consent, exclusions, codes, orders, metrics, messages.

`customer_card` answers a shop owner's "why didn't they get it?": every message Nudge scheduled
for the customer, with its state and, when it was skipped or cancelled, the reason in words.
`nudge customer show` presents it; an admin API, when there is one, presents the same card.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import N_
from bot.models import (
    Customer,
    CustomerMetrics,
    CustomerTag,
    Exclusion,
    Order,
    Outbox,
    OutboxState,
    PromoCode,
    PromoPool,
)

# Why a message was skipped (send-time rules in bot/delivery/suppression.py, a message kind's
# own check) or cancelled (a flow changed its mind), as a shop owner would say it.
REASONS = {
    "shop_uninstalled": N_("the shop's app was uninstalled or the shop disconnected"),
    "shop_removed": N_("the shop was disconnected (nudge shop remove)"),
    "no_bot": N_("the shop had no Telegram bot (nudge shop set ID bot_token=…)"),
    "no_chat": N_("the customer has not linked a Telegram chat yet"),
    "unsubscribed": N_("the customer unsubscribed (/stop or the settings menu)"),
    "no_consent": N_("the customer never agreed to messages"),
    "unreachable": N_("the customer blocked the bot, or the chat is gone"),
    "excluded": N_("the customer tapped “Not interested” on this topic"),
    "paused": N_("the customer paused offers"),
    "needs_follow_up": N_("support must answer the customer first (nudge customer resolve ID)"),
    "quiet_hours": N_("waiting for the end of quiet hours in the customer's time zone"),
    "frequency_cap": N_(
        "the shop's frequency cap (frequency_cap per frequency_window) was reached"
    ),
    "cart_closed": N_("the cart was ordered, emptied or replaced before the reminder was due"),
    "ordered": N_("the customer ordered"),
    "no_codes": N_("the promo code pool had no code left (nudge codes status)"),
    "not_interested": N_("the customer tapped “Not interested”"),
    "undone": N_("the customer took back “Not interested”"),
    "survey_deleted": N_("the survey was deleted"),
    "already_known": N_("the customer's birthday was already known"),
    "birthday_changed": N_("the customer's birthday changed since it was scheduled"),
    "order_cancelled": N_("the order was cancelled"),
    "erased": N_("the customer's data was erased"),
    "support_open": N_("a support conversation with the customer is open"),
    "detractor": N_("the customer's last NPS answer was 0-6 (no campaigns until it improves)"),
    "campaign_cancelled": N_("the campaign was cancelled"),
    "first_not_sent": N_("the campaign's first message never reached the customer"),
    "clicked": N_("the customer clicked the campaign's first message"),
    "flow_off": N_("the shop turned this flow off"),
    "stage_changed": N_("the customer's lifecycle stage changed before the message was due"),
}


def reason_in_words(reason: str | None) -> str | None:
    """Say why a message was skipped or cancelled, for people; None when it was not."""
    if reason is None:
        return None
    return REASONS.get(reason, reason.replace("_", " "))


def _value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return value


def _fields(row: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: _value(getattr(row, name)) for name in names}


PROFILE = (
    "id",
    "external_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "locale",
    "timezone",
    "country",
    "city",
    "birthday",
    "attributes",
    "nps_score",
    "created_at",
    "updated_at",
)
CONSENT = (
    "consent",
    "consent_source",
    "consent_at",
    "telegram_chat_id",
    "telegram_username",
    "linked_at",
    "unreachable_since",
    "promos_paused_until",
    "needs_follow_up",
)
METRICS = (
    "stage",
    "stage_since",
    "orders_count",
    "revenue",
    "aov",
    "first_order_at",
    "last_order_at",
    "avg_interval_days",
    "expected_next_order_at",
    "rfm_r",
    "rfm_f",
    "rfm_m",
    "rfm_cell",
    "refreshed_at",
)


def customer_summary(customer: Customer) -> dict[str, Any]:
    """Describe a customer in one line's worth of fields (for lists)."""
    name = " ".join(part for part in (customer.first_name, customer.last_name) if part)
    return {
        "id": customer.id,
        "name": name or None,
        "email": customer.email,
        "phone": customer.phone,
        "telegram_id": customer.telegram_chat_id,
        "telegram_username": customer.telegram_username,
        "consent": customer.consent,
        "redacted": customer.redacted_hash is not None,
    }


async def customer_card(
    *, session: AsyncSession, customer_id: int, shop_id: int | None = None
) -> dict[str, Any] | None:
    """Return everything an owner needs to know about a customer, or None when not found.

    With `shop_id`, a customer of another shop is not found.
    """
    customer = await session.get(Customer, customer_id)
    if customer is None or (shop_id is not None and customer.shop_id != shop_id):
        return None
    shop_id = customer.shop_id
    mine = (shop_id, customer_id)

    def rows(table: Any, *order: Any) -> Any:
        query = select(table).where(table.shop_id == mine[0], table.customer_id == mine[1])
        return session.scalars(query.order_by(*order))

    exclusions = (await rows(Exclusion, Exclusion.created_at)).all()
    tags = [t.tag for t in (await rows(CustomerTag, CustomerTag.tag)).all()]
    orders = (await rows(Order, Order.placed_at)).all()
    messages = (await rows(Outbox, Outbox.due_at, Outbox.id)).all()
    codes = (
        await session.execute(
            select(PromoCode, PromoPool.name)
            .join(PromoPool, PromoPool.id == PromoCode.pool_id)  # type: ignore[arg-type]
            .where(PromoCode.shop_id == shop_id, PromoCode.customer_id == customer_id)
            .order_by(PromoCode.issued_at, PromoCode.id)  # type: ignore[arg-type]
        )
    ).all()
    metrics = await session.get(CustomerMetrics, customer_id)
    return {
        "shop_id": shop_id,
        "customer_id": customer_id,
        "redacted": customer.redacted_hash is not None,
        "profile": {**_fields(customer, PROFILE), "tags": tags},
        "consent": _fields(customer, CONSENT),
        "exclusions": [
            {"topic": e.topic, "since": _value(e.created_at), "message_id": e.outbox_id}
            for e in exclusions
        ],
        "codes": [
            {
                "pool": pool,
                "code": code.code,
                "issued_at": _value(code.issued_at),
                "message_id": code.outbox_id,
            }
            for code, pool in codes
        ],
        "orders": [
            {
                "id": o.id,
                "external_id": o.external_id,
                "status": o.status,
                "total": _value(o.total),
                "currency": o.currency,
                "placed_at": _value(o.placed_at),
                "attributed_message_id": o.attributed_outbox_id,
            }
            for o in orders
        ],
        "metrics": _fields(metrics, METRICS) if metrics is not None else None,
        "messages": [_message(m) for m in messages],
    }


# What a state means when no reason is recorded.
STATES = {
    OutboxState.BLOCKED: N_("Telegram refused: the customer blocked the bot or the chat is gone"),
    OutboxState.FAILED: N_("sending failed (see error)"),
    OutboxState.UNKNOWN: N_("the sender stopped mid-send: whether it arrived cannot be known"),
}


def _message(row: Outbox) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "topic": row.topic,
        "lane": row.lane,
        "state": row.state,
        "due_at": _value(row.due_at),
        "next_attempt_at": _value(row.next_attempt_at),
        "sent_at": _value(row.sent_at),
        "attempts": row.attempts,
        "reason": row.skip_reason,
        "why": reason_in_words(row.skip_reason) or STATES.get(row.state),  # type: ignore[call-overload]
        "error": row.last_error,
    }

"""The send-time rules: whether a claimed row goes out now, later, or never.

Checked in this order (the first that applies wins):

| rule | lanes | outcome |
| --- | --- | --- |
| shop uninstalled, no bot token | all | skipped `shop_uninstalled`, `no_bot` |
| customer has no Telegram chat | all | skipped `no_chat` |
| consent `opted_out` | all | skipped `unsubscribed` |
| consent not `opted_in` | all | skipped `no_consent` |
| `unreachable_since` set (blocked the bot, chat gone) | all | skipped `unreachable` |
| an `Exclusion` for the row's topic ("not interested") | all | skipped `excluded` |
| `promos_paused_until` in the future | promo | skipped `paused` |
| `needs_follow_up` (support must answer first) | promo | skipped `needs_follow_up` |
| a support conversation is open (`support_open_since`) | promo | skipped `support_open` |
| quiet hours (customer's time zone, else shop's) | reminder, promo | postponed to their end |
| frequency cap: `frequency_cap` promos per `frequency_window` | promo | skipped `frequency_cap` |

An answer of the shop's support (kinds in SERVICE_KINDS) answers the customer's own question:
`/stop` ends marketing, not support, so consent does not stop it (a blocked chat still does).
Transactional messages are exempt from quiet hours and the cap. Reminders are not capped and do
not count against the cap: they answer the customer's own action (a cart left behind), and the
cap is the shop's promise about promotions. A cap of 0 means no promo messages at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.models import Consent, Customer, Lane, Outbox, Shop
from bot.shop_settings import ShopSettings


@dataclass(frozen=True, slots=True)
class Verdict:
    """Send now (`reason` None), skip for `reason`, or postpone until `until`."""

    reason: str | None = None
    until: datetime | None = None

    @property
    def send(self) -> bool:
        """Tell whether the row may go out now."""
        return self.reason is None and self.until is None


SEND = Verdict()
SERVICE_KINDS = frozenset({"support.reply", "support.copy"})


@lru_cache(maxsize=512)
def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def customer_zone(customer: Customer, shop: Shop) -> ZoneInfo:
    """Return the customer's time zone, else the shop's, else UTC."""
    return _zone(customer.timezone) or _zone(shop.timezone) or ZoneInfo("UTC")


def quiet_until(now: datetime, zone: ZoneInfo, start: time, end: time) -> datetime | None:
    """Return when quiet hours end if `now` falls inside them in `zone`, else None.

    The window may cross midnight (21:00-09:00). Equal start and end mean no quiet hours.
    """
    if start == end:
        return None
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    day = local.date()
    if start < end:
        if not start <= clock < end:
            return None
    elif clock >= start:
        day += timedelta(days=1)
    elif clock >= end:
        return None
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


def decide(
    *,
    row: Outbox,
    customer: Customer | None,
    shop: Shop,
    settings: ShopSettings,
    now: datetime,
    excluded: bool,
    promo_sends: Sequence[datetime],
) -> Verdict:
    """Apply the send-time rules to one row; `promo_sends` are the customer's recent promos."""
    lane = row.lane
    if getattr(shop, "uninstalled_at", None) is not None:
        return Verdict("shop_uninstalled")
    if not shop.bot_token:
        return Verdict("no_bot")
    if customer is None or customer.telegram_chat_id is None:
        return Verdict("no_chat")
    service = row.kind in SERVICE_KINDS
    if customer.consent == Consent.OPTED_OUT and not service:
        return Verdict("unsubscribed")
    if customer.consent != Consent.OPTED_IN and not service:
        return Verdict("no_consent")
    if customer.unreachable_since is not None:
        return Verdict("unreachable")
    if excluded:
        return Verdict("excluded")
    if lane == Lane.PROMO:
        if customer.promos_paused_until is not None and customer.promos_paused_until > now:
            return Verdict("paused")
        if customer.needs_follow_up:
            return Verdict("needs_follow_up")
        if getattr(customer, "support_open_since", None) is not None:
            return Verdict("support_open")
    if lane != Lane.TRANSACTIONAL:
        until = quiet_until(
            now,
            customer_zone(customer, shop),
            settings.quiet_hours_start,
            settings.quiet_hours_end,
        )
        if until is not None:
            return Verdict(until=until)
    if lane == Lane.PROMO:
        since = now - settings.frequency_window
        if sum(1 for moment in promo_sends if moment > since) >= settings.frequency_cap:
            return Verdict("frequency_cap")
    return SEND


__all__ = ["SEND", "SERVICE_KINDS", "Verdict", "customer_zone", "decide", "quiet_until"]

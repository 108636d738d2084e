"""Quiet hours across midnight and time zones; the rules' order (pure, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.delivery.suppression import decide, quiet_until
from bot.models import Consent, Customer, Lane, Outbox, Shop
from bot.shop_settings import load_shop_settings

KYIV = ZoneInfo("Europe/Kyiv")
NIGHT = (time(21, 0), time(9, 0))


def at(local: str, zone: ZoneInfo = KYIV) -> datetime:
    return datetime.fromisoformat(local).replace(tzinfo=zone).astimezone(UTC)


@pytest.mark.parametrize(
    ("local", "ends"),
    [
        ("2026-03-02 20:59", None),
        ("2026-03-02 21:00", "2026-03-03 09:00"),
        ("2026-03-02 23:30", "2026-03-03 09:00"),
        ("2026-03-03 00:00", "2026-03-03 09:00"),
        ("2026-03-03 08:59", "2026-03-03 09:00"),
        ("2026-03-03 09:00", None),
        ("2026-03-03 14:00", None),
    ],
)
def test_night_window_crosses_midnight(local, ends):
    expected = at(ends) if ends else None
    assert quiet_until(at(local), KYIV, *NIGHT) == expected


def test_a_daytime_window_and_a_disabled_one():
    assert quiet_until(at("2026-03-02 13:30"), KYIV, time(13), time(14)) == at("2026-03-02 14:00")
    assert quiet_until(at("2026-03-02 14:00"), KYIV, time(13), time(14)) is None
    assert quiet_until(at("2026-03-02 03:00"), KYIV, time(0), time(0)) is None


def test_the_same_moment_is_night_in_one_zone_and_day_in_another():
    moment = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)  # 22:00 in Kyiv, 05:00 next day in Tokyo
    tokyo = ZoneInfo("Asia/Tokyo")
    assert quiet_until(moment, KYIV, *NIGHT) == at("2026-03-03 09:00")
    assert quiet_until(moment, tokyo, *NIGHT) == at("2026-03-03 09:00", tokyo)
    assert quiet_until(moment, ZoneInfo("America/New_York"), *NIGHT) is None  # 15:00 there


def test_the_window_end_is_local_across_a_dst_change():
    # Kyiv moves to summer time on 2026-03-29 at 03:00: the night is an hour shorter in UTC.
    ends = quiet_until(at("2026-03-28 23:00"), KYIV, *NIGHT)
    assert ends == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)  # 09:00 EEST


def make(lane: Lane = Lane.PROMO, **customer: object) -> tuple[Outbox, Customer, Shop]:
    shop = Shop(id=1, name="K", platform="generic", webhook_secret="s", bot_token="1:x")
    fields = {"consent": Consent.OPTED_IN, "telegram_chat_id": 10, **customer}
    person = Customer(id=2, shop_id=1, **fields)
    row = Outbox(id=3, shop_id=1, customer_id=2, kind="text", dedupe_key="k", lane=lane)
    return row, person, shop


NOON = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def verdict(lane=Lane.PROMO, *, now=NOON, excluded=False, sends=(), settings=None, **customer):
    row, person, shop = make(lane, **customer)
    return decide(
        row=row,
        customer=person,
        shop=shop,
        settings=load_shop_settings(settings),
        now=now,
        excluded=excluded,
        promo_sends=list(sends),
    )


def test_consent_comes_before_everything_else():
    assert verdict(consent=Consent.OPTED_OUT, needs_follow_up=True).reason == "unsubscribed"
    assert verdict(consent=Consent.UNKNOWN).reason == "no_consent"
    assert verdict(telegram_chat_id=None).reason == "no_chat"


def test_pauses_apply_to_promos_only():
    paused = {"promos_paused_until": NOON + timedelta(days=1)}
    assert verdict(**paused).reason == "paused"
    assert verdict(Lane.REMINDER, **paused).send
    assert verdict(needs_follow_up=True).reason == "needs_follow_up"
    assert verdict(Lane.TRANSACTIONAL, needs_follow_up=True).send
    assert verdict(promos_paused_until=NOON - timedelta(seconds=1)).send


def test_the_cap_counts_promos_in_the_rolling_window():
    recent = [NOON - timedelta(hours=15)]
    assert verdict(sends=recent).reason == "frequency_cap"
    assert verdict(sends=[NOON - timedelta(hours=16)]).send
    assert verdict(sends=recent, settings={"frequency_cap": 2}).send
    assert verdict(Lane.REMINDER, sends=recent).send
    assert verdict(settings={"frequency_cap": 0}).reason == "frequency_cap"


def test_quiet_hours_postpone_reminders_and_promos_not_transactional():
    night = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    assert verdict(now=night).until == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    assert verdict(Lane.REMINDER, now=night).until is not None
    assert verdict(Lane.TRANSACTIONAL, now=night).send


def test_the_customers_zone_wins_over_the_shops():
    night_utc = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)  # 08:30 in Tokyo: still quiet
    assert verdict(now=night_utc, timezone="Asia/Tokyo").until == datetime(
        2026, 3, 3, 0, 0, tzinfo=UTC
    )
    assert verdict(now=night_utc, timezone="America/New_York").send  # 18:30 there
    assert verdict(now=night_utc, timezone="Not/AZone").until is not None  # falls back

"""Pure parts of the support desk: working hours, the setting names, text that must store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.shop_settings import SETTING_KEYS, SettingError, apply_setting, load_shop_settings
from bot.support import _clip, next_opening


def test_support_chat_is_the_issues_name_and_support_chat_id_still_works():
    assert "support_chat" in SETTING_KEYS and "support_chat_id" in SETTING_KEYS
    raw = apply_setting({}, "support_chat", "-1001234567890")
    assert raw == {"support_chat_id": -1001234567890}
    assert apply_setting(raw, "support_chat_id", "") == {}
    with pytest.raises(SettingError, match="support_chat_id: must be a Telegram chat id"):
        apply_setting({}, "support_chat", "my group")


@pytest.mark.parametrize(
    ("hours", "days", "now", "expected"),
    [
        (None, None, datetime(2026, 12, 5, 20, 0, tzinfo=UTC), None),  # always open
        ("09:00-18:00", "mon-fri", datetime(2026, 12, 7, 8, 0, tzinfo=UTC), None),  # Mon 10:00
        (  # Monday 19:30 Kyiv: back on Tuesday 09:00 Kyiv
            "09:00-18:00",
            "mon-fri",
            datetime(2026, 12, 7, 17, 30, tzinfo=UTC),
            datetime(2026, 12, 8, 7, 0, tzinfo=UTC),
        ),
        (  # Friday 19:00 Kyiv: back on Monday
            "09:00-18:00",
            "mon-fri",
            datetime(2026, 12, 4, 17, 0, tzinfo=UTC),
            datetime(2026, 12, 7, 7, 0, tzinfo=UTC),
        ),
        (  # a night shift 22:00-06:00: Tuesday 03:00 Kyiv belongs to Monday's shift
            "22:00-06:00",
            "mon",
            datetime(2026, 12, 8, 1, 0, tzinfo=UTC),
            None,
        ),
        (  # weekdays only, no hours: Saturday waits for Monday 00:00
            None,
            "mon-fri",
            datetime(2026, 12, 5, 10, 0, tzinfo=UTC),
            datetime(2026, 12, 6, 22, 0, tzinfo=UTC),
        ),
    ],
)
def test_next_opening_in_the_shops_time_zone(hours, days, now, expected):
    raw = {}
    if hours:
        raw = apply_setting(raw, "support_hours", hours)
    if days:
        raw = apply_setting(raw, "support_days", days)
    assert next_opening(load_shop_settings(raw), "Europe/Kyiv", now) == expected


def test_bad_working_hours_are_refused_plainly():
    with pytest.raises(SettingError, match="support_hours: not a time of day"):
        apply_setting({}, "support_hours", "9-18")
    with pytest.raises(SettingError, match="support_days: must be weekdays"):
        apply_setting({}, "support_days", "weekdays")


def test_text_with_nul_and_lone_surrogates_can_be_stored():
    assert _clip("a\x00b\ud800c") == "a\ufffdb?c"
    assert len(_clip("я" * 6000)) == 5000

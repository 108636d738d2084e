"""The admin API's schemas say no more than the services accept, and the check reads them."""

from __future__ import annotations

import re
import sys
from datetime import timedelta

from bot.api.schemas import (
    BLANK,
    PRINTABLE,
    duration_form,
    problem,
    ref,
    whole_between,
)
from bot.shop_settings import parse_duration


def test_the_printable_class_holds_only_what_names_may_hold():
    allowed = re.compile(f"[{PRINTABLE}]")
    held = [chr(c) for c in range(sys.maxunicode + 1) if allowed.fullmatch(chr(c))]
    assert all(ch.isprintable() for ch in held)
    assert all(allowed.fullmatch(ch) for ch in "Kvitka Квітка Żółć – №1 € ©")


def test_blank_is_what_strip_removes():
    blank = re.compile(f"[{BLANK}]")
    for code in range(sys.maxunicode + 1):
        assert bool(blank.fullmatch(chr(code))) == chr(code).isspace(), hex(code)


def test_number_ranges_and_durations_are_exact():
    for low, high in ((0, 0), (1, 9), (7, 130), (60, 604800), (1, 65535), (10, 43200)):
        pattern = re.compile(whole_between(low, high))
        matched = [n for n in range(0, high * 2 + 20) if pattern.fullmatch(str(n))]
        assert matched == list(range(low, high + 1)), (low, high)
    low, high = timedelta(minutes=10), timedelta(days=30)
    form = re.compile(duration_form(low, high))
    for unit, size in (("w", 7 * 1440), ("d", 1440), ("h", 60), ("m", 1)):
        for n in range(0, 50000 // size + 10):
            text = f"{n}{unit}"
            inside = n > 0 and low <= parse_duration(text) <= high
            assert bool(form.fullmatch(text)) == inside, text


def test_a_refused_body_says_where_and_why():
    segment = ref("Segment")
    assert problem({"field": "colour", "op": "=", "value": 1}, segment)[0] == "field"
    assert problem({"all": [{"field": "locale", "op": "=", "value": "uk", "x": 1}]}, segment) == (
        "all[0]",
        "unknown key 'x' (known: field, op, value)",
    )
    assert problem({"field": "locale", "op": "in", "value": "uk"}, segment) == (
        "value",
        "expected array, got 'uk'",
    )
    campaign = {"name": "a", "segment": "x", "topic": "t", "messages": {"uk": {"text": "{code}"}}}
    where, why = problem(campaign, ref("CampaignFileBody"))
    assert where == "messages.uk.text" and "{code} needs a pool" in why
    assert problem({**campaign, "pool": "spring"}, ref("CampaignFileBody")) is None
    assert problem({"support_hours": "9:00-09:00"}, ref("ShopChange"))[0] == "support_hours"
    assert (
        problem({"support_hours": "9:00-18:00", "frequency_cap": 2.0}, ref("ShopChange")) is None
    )
    assert problem({"timezone": "Mars/Olympus"}, ref("ShopChange"))[0] == "timezone"
    assert problem({"name": "x\ud800"}, ref("ShopChange")) == (
        "name",
        "is not Unicode text (a lone surrogate)",
    )

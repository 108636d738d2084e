"""The campaign file: every key checked with a clear error, and the rules that need no database."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from bot.campaigns import (
    CampaignError,
    assign,
    fill,
    local_due,
    missing_locales,
    parse_campaign,
)

BASE = {
    "name": "Spring sale",
    "segment": {"field": "stage", "op": "in", "value": ["active", "at_risk"]},
    "topic": "Shoes",
    "messages": {
        "uk": {"text": "{first_name|Друже}, весняний розпродаж взуття: -20%!"},
        "en": {"text": "{first_name|Friend}, spring shoe sale: 20% off!"},
    },
}


def campaign(**changes):
    raw = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def refused(raw, saved=None) -> str:
    with pytest.raises(CampaignError) as caught:
        parse_campaign(raw, saved)
    return str(caught.value)


def test_a_minimal_campaign_reads_with_its_defaults():
    spec = parse_campaign(campaign())
    assert spec.name == "Spring sale" and spec.topic == "shoes"
    assert [v.name for v in spec.variants] == ["A"] and spec.variants[0].weight == 100
    assert spec.holdout_percent == 0 and spec.pool is None and spec.follow_up is None
    assert spec.catalog_button and spec.not_interested_button
    assert spec.schedule.at is None and spec.schedule.local_time is None
    assert spec.locales() == ["en", "uk"]


def test_every_documented_key_is_read():
    spec = parse_campaign(
        campaign(
            messages=None,
            variants=[
                {
                    "name": "A",
                    "weight": 70,
                    "messages": {
                        "pl": {
                            "text": "Kod {code} dla {first_name}",
                            "image_url": "https://kvitka.example/a.jpg",
                            "buttons": [{"text": "Nowości", "url": "https://kvitka.example/new"}],
                        }
                    },
                },
                {"name": "B", "weight": 30, "messages": {"pl": {"text": "Twój kod: {code}"}}},
            ],
            holdout_percent=10,
            pool="spring",
            skip_without_code=True,
            schedule={"local_time": "10:00"},
            follow_up={"after": "24h", "messages": {"pl": {"text": "Ostatnia szansa"}}},
            rate_per_second=5,
            catalog_button=False,
            not_interested_button=False,
        )
    )
    a, b = spec.variants
    assert (a.name, a.weight, b.name, b.weight) == ("A", 70, "B", 30)
    assert a.messages["pl"].image_url == "https://kvitka.example/a.jpg"
    assert a.messages["pl"].buttons[0].url == "https://kvitka.example/new"
    assert a.messages["pl"].needs_code and spec.pool == "spring" and spec.skip_without_code
    assert spec.holdout_percent == 10 and spec.rate_per_second == 5
    assert spec.schedule.local_time == time(10, 0)
    assert spec.follow_up is not None and spec.follow_up.after.total_seconds() == 86400
    assert not spec.catalog_button and not spec.not_interested_button


def test_a_moment_needs_its_offset():
    spec = parse_campaign(campaign(schedule={"at": "2027-03-01T10:00:00+02:00"}))
    assert spec.schedule.at == datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
    assert "offset" in refused(campaign(schedule={"at": "2027-03-01T10:00:00"}))


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"name": ""}, "name: expected a non-empty text"),
        ({"name": "x" * 201}, "name: at most 200 characters"),
        ({"name": "Sale\x00"}, "name:"),
        ({"name": "Sale \ud800"}, "name:"),
        ({"topic": None}, "topic: expected a non-empty text"),
        ({"segment": 5}, "segment: a saved segment's name or an inline definition"),
        ({"segment": {"field": "colour", "op": "=", "value": 1}}, "colour"),
        ({"segment": {"field": "stage", "op": "~", "value": 1}}, "~"),
        ({"messages": {}}, "messages: expected an object of messages by locale"),
        ({"messages": {"de": {"text": "Hallo"}}}, "'de' is not one of"),
        ({"messages": {"uk": {"text": "Привіт, {name}"}}}, "unknown placeholder {name}"),
        ({"messages": {"uk": {"text": "Ваш код {code}"}}}, "shows {code} but no pool is set"),
        ({"messages": {"uk": {"text": "x" * 4097}}}, "at most 4096 characters"),
        (
            {"messages": {"uk": {"text": "x" * 1025, "image_url": "https://k.example/a.jpg"}}},
            "at most 1024 characters",
        ),
        ({"messages": {"uk": {"text": "Hi", "image_url": "javascript:alert(1)"}}}, "image_url"),
        (
            {"messages": {"uk": {"text": "Hi", "buttons": [{"text": "Go", "url": "ftp://x"}]}}},
            "buttons[0].url: not a web address",
        ),
        (
            {"messages": {"uk": {"text": "Hi", "buttons": [{"text": "Go"} for _ in range(7)]}}},
            "at most 6",
        ),
        ({"messages": {"uk": {"text": "Hi", "body": "x"}}}, "unknown key 'body'"),
        ({"holdout_percent": 60}, "holdout_percent: must be from 0 to 50"),
        ({"holdout_percent": "10"}, "holdout_percent: expected a number"),
        ({"holdout_percent": float("nan")}, "holdout_percent: expected a number"),
        ({"pool": "spring sale"}, "pool: a pool name"),
        ({"schedule": {"at": "tomorrow"}}, "schedule.at: not an ISO 8601 moment"),
        ({"schedule": {"local_time": "25:00"}}, "schedule.local_time: not a time of day"),
        ({"schedule": {"at": "2027-01-01T10:00:00Z", "local_time": "10:00"}}, "schedule:"),
        ({"follow_up": {"after": "1m", "messages": {"uk": {"text": "x"}}}}, "from 10m to 30d"),
        ({"follow_up": {"after": "soon", "messages": {"uk": {"text": "x"}}}}, "follow_up.after"),
        ({"rate_per_second": 0}, "rate_per_second: must be from 0.1 to 1000"),
        ({"rate_per_second": 10**30}, "rate_per_second: must be from 0.1 to 1000"),
        ({"catalog_button": "yes"}, "catalog_button: expected true or false"),
        ({"variants": [], "messages": None}, "variants: a list of 1 to 8 variants"),
        ({"variants": [{"name": "A", "messages": {"uk": {"text": "x"}}}]}, "not both"),
    ],
)
def test_a_mistake_is_refused_naming_the_key(changes, said):
    assert said in refused(campaign(**changes))


def test_variant_names_and_weights_are_checked():
    twice = [{"name": "A", "messages": {"uk": {"text": "x"}}}] * 2
    assert "used twice" in refused(campaign(messages=None, variants=twice))
    bad_weight = [{"name": "A", "weight": 1.5, "messages": {"uk": {"text": "x"}}}]
    assert "a whole number" in refused(campaign(messages=None, variants=bad_weight))
    bad_name = [{"name": "A B", "messages": {"uk": {"text": "x"}}}]
    assert "variants[0].name" in refused(campaign(messages=None, variants=bad_name))


def test_a_saved_segment_must_exist():
    assert "no saved segment named 'vip'" in refused(campaign(segment="vip"), {})
    assert parse_campaign(
        campaign(segment="vip"), {"vip": {"field": "stage", "op": "=", "value": "new"}}
    )


def test_the_split_is_within_two_points_of_the_weights_and_never_moves():
    spec = parse_campaign(
        campaign(
            messages=None,
            holdout_percent=10,
            variants=[
                {"name": "A", "weight": 50, "messages": {"uk": {"text": "a"}}},
                {"name": "B", "weight": 50, "messages": {"uk": {"text": "b"}}},
            ],
        )
    )
    first = [assign(spec, 7, customer) for customer in range(1, 10_001)]
    shares = {name: first.count(name) / 10_000 for name in ("A", "B", None)}
    assert abs(shares[None] - 0.10) <= 0.02
    assert abs(shares["A"] - 0.45) <= 0.02 and abs(shares["B"] - 0.45) <= 0.02
    assert [assign(spec, 7, customer) for customer in range(1, 10_001)] == first
    other = [assign(spec, 8, customer) for customer in range(1, 10_001)]
    assert other != first  # another campaign draws anew


def test_placeholders_are_filled_and_everything_is_escaped():
    text = "{first_name}, <b>sale</b> & {code} at {shop_name}!"
    assert (
        fill(text, first_name="Olena <3", code="K&1", shop_name="Kvitka")
        == "Olena &lt;3, &lt;b&gt;sale&lt;/b&gt; &amp; <code>K&amp;1</code> at Kvitka!"
    )
    assert fill("Hi {first_name}!", first_name=None, code=None, shop_name="K") == "Hi!"
    assert fill("{first_name}, hi", first_name=None, code=None, shop_name="K") == ", hi"
    assert fill("Hi {first_name|friend}!", first_name="", code=None, shop_name="K") == "Hi friend!"


def test_missing_translations_are_listed_per_variant():
    spec = parse_campaign(campaign(follow_up={"after": "1d", "messages": {"pl": {"text": "x"}}}))
    assert missing_locales(spec, ["en", "ru", "uk", "pl"]) == {
        "A": ["ru", "pl"],
        "follow_up": ["en", "ru", "uk"],
    }


KYIV = ZoneInfo("Europe/Kyiv")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("now", "zone", "at", "expected"),
    [
        # later today, in the customer's zone
        (
            datetime(2027, 3, 1, 6, 0, tzinfo=UTC),
            KYIV,
            time(10, 0),
            datetime(2027, 3, 1, 8, 0, tzinfo=UTC),
        ),
        # already past today: tomorrow
        (
            datetime(2027, 3, 1, 9, 0, tzinfo=UTC),
            KYIV,
            time(10, 0),
            datetime(2027, 3, 2, 8, 0, tzinfo=UTC),
        ),
        # the night clocks spring forward (Kyiv, 28 March 2027 03:00 -> 04:00): 10:00 is UTC+3
        (
            datetime(2027, 3, 27, 12, 0, tzinfo=UTC),
            KYIV,
            time(10, 0),
            datetime(2027, 3, 28, 7, 0, tzinfo=UTC),
        ),
        # a time inside the gap goes as the wall clock does
        (
            datetime(2027, 3, 27, 12, 0, tzinfo=UTC),
            KYIV,
            time(3, 30),
            datetime(2027, 3, 28, 1, 30, tzinfo=UTC),
        ),
        # autumn (New York, 7 November 2027 02:00 -> 01:00): 01:30 is its first occurrence
        (
            datetime(2027, 11, 7, 0, 0, tzinfo=UTC),
            NEW_YORK,
            time(1, 30),
            datetime(2027, 11, 7, 5, 30, tzinfo=UTC),
        ),
        # New York 10:00 on the same UTC day is 14:00 UTC in summer, 15:00 in winter
        (
            datetime(2027, 11, 8, 0, 0, tzinfo=UTC),
            NEW_YORK,
            time(10, 0),
            datetime(2027, 11, 8, 15, 0, tzinfo=UTC),
        ),
    ],
)
def test_local_time_follows_each_zone_and_its_clock_changes(now, zone, at, expected):
    assert local_due(now, at, zone) == expected

"""Promo campaigns: the campaign file, checked strictly, and the rules that need no database.

A campaign file is JSON (documented in the README, "Promo campaigns"):

    {"name": "Spring sale", "segment": "loyal" | {...definition...}, "topic": "shoes",
     "messages": {"uk": {"text": "...", "image_url": "...", "buttons": [{"text", "url"}]}},
     "catalog_button": true, "not_interested_button": true,
     "variants": [{"name": "A", "weight": 50, "messages": {...}}, ...],
     "holdout_percent": 10, "pool": "spring", "skip_without_code": false,
     "schedule": {"at": "2027-03-01T10:00:00+02:00"} | {"local_time": "10:00"},
     "follow_up": {"after": "24h", "messages": {...}, "pool": "..."},
     "rate_per_second": 10}

Everything a shop owner can get wrong is refused here with one line that names the key, before
anything is stored. Texts are plain text (Telegram HTML is escaped) with the placeholders
`{first_name}`, `{first_name|fallback}`, `{code}` and `{shop_name}`.

Assignment to the holdout and to variants is a hash of (campaign id, customer id): the same
customer lands in the same group on every run, on every machine, without storing a random
number first.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.segments import SegmentError, check
from bot.validation import SUPPORTED_LOCALES
from integrations.base import text_problem, url_problem

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_BUTTONS = 6
MAX_BUTTON_TEXT = 64
MAX_VARIANTS = 8
MAX_NAME = 200
MAX_TOPIC = 200
MAX_RATE = 1000.0
BUCKETS = 10_000
PLACEHOLDER = re.compile(r"\{([a-z_]+)(?:\|([^{}]{0,100}))?\}")
PLACEHOLDERS = ("first_name", "code", "shop_name")
KEYS = (
    "name",
    "segment",
    "topic",
    "messages",
    "catalog_button",
    "not_interested_button",
    "variants",
    "holdout_percent",
    "pool",
    "skip_without_code",
    "schedule",
    "follow_up",
    "rate_per_second",
)


class CampaignError(ValueError):
    """A campaign file or action that cannot be accepted; the message says why."""


@dataclass(frozen=True, slots=True)
class UrlButton:
    """A custom button that opens a URL (through a tracked redirect)."""

    text: str
    url: str


@dataclass(frozen=True, slots=True)
class Message:
    """One locale's message: text with placeholders, an optional image, custom buttons."""

    text: str
    image_url: str | None = None
    buttons: tuple[UrlButton, ...] = ()

    @property
    def needs_code(self) -> bool:
        """Tell whether the text shows a personal code."""
        return any(m.group(1) == "code" for m in PLACEHOLDER.finditer(self.text))


@dataclass(frozen=True, slots=True)
class Variant:
    """A version of the message and its share of the (non-holdout) audience."""

    name: str
    weight: int
    messages: Mapping[str, Message]


@dataclass(frozen=True, slots=True)
class FollowUp:
    """A second message, `after` the first, to recipients who did not click it."""

    after: timedelta
    messages: Mapping[str, Message]
    pool: str | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    """When to send: now (both None), at a moment, or at a local time of day."""

    at: datetime | None = None
    local_time: time | None = None


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """A checked campaign file."""

    name: str
    segment: str | dict[str, Any]
    topic: str
    variants: tuple[Variant, ...]
    holdout_percent: float = 0.0
    pool: str | None = None
    skip_without_code: bool = False
    schedule: Schedule = field(default_factory=Schedule)
    follow_up: FollowUp | None = None
    rate_per_second: float | None = None
    catalog_button: bool = True
    not_interested_button: bool = True

    def variant(self, name: str | None) -> Variant:
        """Return the variant by name (the first when unknown)."""
        return next((v for v in self.variants if v.name == name), self.variants[0])

    def locales(self) -> list[str]:
        """Return every locale some variant or the follow-up has a text for."""
        found = {loc for v in self.variants for loc in v.messages}
        if self.follow_up:
            found |= set(self.follow_up.messages)
        return [loc for loc in SUPPORTED_LOCALES if loc in found]


# ------------------------------------------------------------------------------- checking


def _plain(value: Any, path: str, limit: int, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise CampaignError(f"{path}: expected a non-empty text, got {_shown(value)}")
    problem = text_problem(value)
    if problem:
        raise CampaignError(f"{path}: {problem}")
    if len(value) > limit:
        raise CampaignError(f"{path}: at most {limit} characters (got {len(value)})")
    return value


def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _url(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise CampaignError(f"{path}: expected a web address, got {_shown(value)}")
    problem = url_problem(value.strip())
    if problem:
        raise CampaignError(f"{path}: not a web address: {problem}")
    return value.strip()


def _pool(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
        raise CampaignError(
            f"{path}: a pool name of 1-64 Latin letters, digits, - or _, not {_shown(value)}"
        )
    return value


def _message(value: Any, path: str, *, has_pool: bool) -> Message:
    if not isinstance(value, dict):
        raise CampaignError(f"{path}: expected an object with text, image_url, buttons")
    unknown = set(value) - {"text", "image_url", "buttons"}
    if unknown:
        raise CampaignError(
            f"{path}: unknown key {sorted(unknown)[0]!r} (text, image_url, buttons)"
        )
    image = _url(value["image_url"], f"{path}.image_url") if value.get("image_url") else None
    text = _plain(value.get("text"), f"{path}.text", MAX_CAPTION if image else MAX_TEXT)
    assert text is not None
    for match in PLACEHOLDER.finditer(text):
        if match.group(1) not in PLACEHOLDERS:
            raise CampaignError(
                f"{path}.text: unknown placeholder {{{match.group(1)}}} "
                f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)})"
            )
    message_buttons = value.get("buttons") or []
    if not isinstance(message_buttons, list) or len(message_buttons) > MAX_BUTTONS:
        raise CampaignError(f"{path}.buttons: a list of at most {MAX_BUTTONS} buttons")
    buttons = []
    for i, button in enumerate(message_buttons):
        where = f"{path}.buttons[{i}]"
        if not isinstance(button, dict) or set(button) - {"text", "url"}:
            raise CampaignError(f'{where}: expected {{"text": ..., "url": ...}}')
        label = _plain(button.get("text"), f"{where}.text", MAX_BUTTON_TEXT)
        assert label is not None
        buttons.append(UrlButton(label, _url(button.get("url"), f"{where}.url")))
    message = Message(text=text, image_url=image, buttons=tuple(buttons))
    if message.needs_code and not has_pool:
        raise CampaignError(f"{path}.text: shows {{code}} but no pool is set")
    return message


def _messages(value: Any, path: str, *, has_pool: bool) -> dict[str, Message]:
    if not isinstance(value, dict) or not value:
        raise CampaignError(
            f'{path}: expected an object of messages by locale, e.g. {{"uk": ...}}'
        )
    messages = {}
    for locale, body in value.items():
        code = str(locale).strip().lower()
        if code not in SUPPORTED_LOCALES:
            raise CampaignError(
                f"{path}: {_shown(locale)} is not one of {', '.join(SUPPORTED_LOCALES)}"
            )
        messages[code] = _message(body, f"{path}.{code}", has_pool=has_pool)
    return messages


def _number(value: Any, path: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CampaignError(
            f"{path}: expected a number from {low:g} to {high:g}, got {_shown(value)}"
        )
    if not low <= value <= high:
        raise CampaignError(f"{path}: must be from {low:g} to {high:g} (got {value:g})")
    return float(value)


def _flag(value: Any, path: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise CampaignError(f"{path}: expected true or false, got {_shown(value)}")
    return value


def _schedule(value: Any) -> Schedule:
    if value is None or value == {} or value == "now":
        return Schedule()
    if not isinstance(value, dict) or len(value) != 1 or not set(value) <= {"at", "local_time"}:
        raise CampaignError('schedule: expected {"at": ISO8601} or {"local_time": "HH:MM"}')
    if "at" in value:
        return Schedule(at=parse_moment(value["at"], "schedule.at"))
    return Schedule(local_time=parse_local_time(value["local_time"], "schedule.local_time"))


def parse_moment(value: Any, path: str = "at") -> datetime:
    """Read an ISO 8601 moment with its offset (a moment without one is ambiguous)."""
    try:
        moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise CampaignError(f"{path}: not an ISO 8601 moment: {_shown(value)}") from None
    if moment.tzinfo is None:
        raise CampaignError(f"{path}: give the time zone offset, e.g. 2027-03-01T10:00:00+02:00")
    return moment.astimezone(UTC)


def parse_local_time(value: Any, path: str = "local_time") -> time:
    """Read HH:MM."""
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", str(value))
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise CampaignError(f"{path}: not a time of day: {_shown(value)} (use HH:MM, e.g. 10:00)")
    return time(int(match.group(1)), int(match.group(2)))


def _follow_up(value: Any) -> FollowUp | None:
    from bot.shop_settings import parse_duration

    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"after", "messages", "pool"}:
        raise CampaignError('follow_up: expected {"after": "24h", "messages": {...}, "pool": ...}')
    try:
        after = parse_duration(value.get("after"))
    except ValueError as exc:
        raise CampaignError(f"follow_up.after: {exc}") from None
    if not timedelta(minutes=10) <= after <= timedelta(days=30):
        raise CampaignError("follow_up.after: must be from 10m to 30d")
    pool = _pool(value.get("pool"), "follow_up.pool")
    messages = _messages(value.get("messages"), "follow_up.messages", has_pool=pool is not None)
    return FollowUp(after=after, messages=messages, pool=pool)


def parse_campaign(raw: Any, saved_segments: Mapping[str, Any] | None = None) -> CampaignSpec:
    """Check a campaign file; raise CampaignError naming the first problem."""
    if not isinstance(raw, dict):
        raise CampaignError("a campaign is a JSON object (see the README, Promo campaigns)")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise CampaignError(f"unknown key {unknown[0]!r}; known: {', '.join(KEYS)}")
    name = _plain(raw.get("name"), "name", MAX_NAME)
    assert name is not None
    segment = raw.get("segment")
    if isinstance(segment, str):
        if saved_segments is not None and segment not in saved_segments:
            raise CampaignError(f"segment: no saved segment named {segment!r}")
    elif isinstance(segment, dict):
        try:
            check(segment, saved_segments)
        except SegmentError as exc:
            raise CampaignError(f"segment: {exc}") from None
    else:
        raise CampaignError("segment: a saved segment's name or an inline definition")
    topic = _plain(raw.get("topic"), "topic", MAX_TOPIC)
    assert topic is not None
    pool = _pool(raw.get("pool"), "pool")
    variants_raw = raw.get("variants")
    if variants_raw is None:
        variants = (
            Variant("A", 100, _messages(raw.get("messages"), "messages", has_pool=bool(pool))),
        )
    else:
        if raw.get("messages") is not None:
            raise CampaignError("messages: give either messages or variants, not both")
        if not isinstance(variants_raw, list) or not 1 <= len(variants_raw) <= MAX_VARIANTS:
            raise CampaignError(f"variants: a list of 1 to {MAX_VARIANTS} variants")
        variants_list: list[Variant] = []
        for i, item in enumerate(variants_raw):
            where = f"variants[{i}]"
            if not isinstance(item, dict) or set(item) - {"name", "weight", "messages"}:
                raise CampaignError(f'{where}: expected {{"name", "weight", "messages"}}')
            vname = item.get("name")
            if not isinstance(vname, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,16}", vname):
                raise CampaignError(f"{where}.name: 1-16 Latin letters, digits, - or _")
            if any(v.name == vname for v in variants_list):
                raise CampaignError(f"{where}.name: {vname!r} is used twice")
            weight = _number(item.get("weight", 1), f"{where}.weight", 1, 1000)
            if weight != int(weight):
                raise CampaignError(f"{where}.weight: a whole number")
            messages = _messages(item.get("messages"), f"{where}.messages", has_pool=bool(pool))
            variants_list.append(Variant(vname, int(weight), messages))
        variants = tuple(variants_list)
    holdout = _number(raw.get("holdout_percent", 0), "holdout_percent", 0, 50)
    rate = raw.get("rate_per_second")
    return CampaignSpec(
        name=name.strip(),
        segment=segment,
        topic=topic.strip().lower(),
        variants=variants,
        holdout_percent=holdout,
        pool=pool,
        skip_without_code=_flag(raw.get("skip_without_code"), "skip_without_code", False),
        schedule=_schedule(raw.get("schedule")),
        follow_up=_follow_up(raw.get("follow_up")),
        rate_per_second=None if rate is None else _number(rate, "rate_per_second", 0.1, MAX_RATE),
        catalog_button=_flag(raw.get("catalog_button"), "catalog_button", True),
        not_interested_button=_flag(
            raw.get("not_interested_button"), "not_interested_button", True
        ),
    )


# ----------------------------------------------------------------------------- assignment


def bucket(campaign_id: int, customer_id: int, salt: str = "") -> int:
    """Return a stable number in [0, BUCKETS) for the customer in this campaign."""
    digest = hashlib.blake2b(
        f"{campaign_id}:{customer_id}:{salt}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def assign(spec: CampaignSpec, campaign_id: int, customer_id: int) -> str | None:
    """Return the customer's variant name, or None for the holdout (stable across runs)."""
    if bucket(campaign_id, customer_id, "holdout") < round(spec.holdout_percent * BUCKETS / 100):
        return None
    total = sum(v.weight for v in spec.variants)
    point = bucket(campaign_id, customer_id, "variant") * total / BUCKETS
    for variant in spec.variants:
        if point < variant.weight:
            return variant.name
        point -= variant.weight
    return spec.variants[-1].name


def pick_locale(messages: Mapping[str, Message], locale: str, default: str) -> str | None:
    """Return the locale whose text a customer reads: theirs, else the shop's default."""
    if locale in messages:
        return locale
    if default in messages:
        return default
    return None


def missing_locales(spec: CampaignSpec, offered: Sequence[str]) -> dict[str, list[str]]:
    """Return, per variant (and "follow_up"), the shop's locales that have no text."""
    missing = {v.name: [loc for loc in offered if loc not in v.messages] for v in spec.variants}
    if spec.follow_up:
        missing["follow_up"] = [loc for loc in offered if loc not in spec.follow_up.messages]
    return {k: v for k, v in missing.items() if v}


def fill(text: str, *, first_name: str | None, code: str | None, shop_name: str) -> str:
    """Fill the placeholders; the owner's text and every value are escaped for Telegram HTML.

    `{first_name}` of a customer without a name gives its fallback (`{first_name|friend}`), or
    nothing, with the blank before a following comma or mark dropped ("Hi {first_name}!" ->
    "Hi!").
    """

    def value(match: re.Match[str]) -> str:
        key, fallback = match.group(1), match.group(2)
        if key == "first_name":
            return html.escape(first_name or fallback or "", quote=False) or "\x00"
        if key == "code":
            return f"<code>{html.escape(code or '', quote=False)}</code>"
        return html.escape(shop_name, quote=False)

    parts, last = [], 0
    for match in PLACEHOLDER.finditer(text):
        parts.append(html.escape(text[last : match.start()], quote=False))
        parts.append(value(match))
        last = match.end()
    parts.append(html.escape(text[last:], quote=False))
    filled = re.sub(r"[ \t]*\x00(?=[,.!?;:])", "", "".join(parts))
    return filled.replace("\x00", "")


def local_due(now: datetime, at: time, zone: ZoneInfo) -> datetime:
    """Return the next moment at or after `now` when the clock in `zone` shows `at`.

    On the day clocks spring forward a time inside the gap is taken as the wall clock does
    (02:30 in a 02:00->03:00 jump is 03:30); in autumn an ambiguous time is its first occurrence.
    """
    day = now.astimezone(zone).date()
    while True:
        moment = datetime.combine(day, at, tzinfo=zone).astimezone(UTC)
        if moment >= now:
            return moment
        day += timedelta(days=1)


FUNNEL = ("audience", "sent", "clicked", "orders")


# The funnel chart's words; the console passes them in the reader's language.
FUNNEL_WORDS = {
    "title": "Campaign {id}: {name}",
    "variant": "variant {name}",
    "holdout": "holdout",
    "audience": "audience",
    "sent": "sent",
    "clicked": "clicked",
    "orders": "orders",
}


def funnel_rows(
    report: Mapping[str, Any], words: Mapping[str, str] = FUNNEL_WORDS
) -> list[tuple[str, list[tuple[str, int]]]]:
    """Return the funnel (audience, sent, clicked, orders) of each variant and the holdout."""
    rows = []
    for name, tally in report.get("variants", {}).items():
        label = words["variant"].format(name=name)
        rows.append((label, [(step, int(tally[step])) for step in FUNNEL]))
    if report.get("holdout"):
        rows.append((words["holdout"], [("audience", int(report["holdout"]))]))
    return rows


def funnel_svg(report: Mapping[str, Any], words: Mapping[str, str] = FUNNEL_WORDS) -> str:
    """Draw the funnel per variant as an SVG bar chart (`words` names its parts)."""
    from xml.sax.saxutils import escape

    rows = funnel_rows(report, words)
    colors = {"audience": "#c8c8c8", "sent": "#2a7ae2", "clicked": "#f2a93b", "orders": "#3bb273"}
    width, bar, gap, left, top = 720, 18, 26, 150, 48
    most = max([value for _, steps in rows for _, value in steps] + [1])
    scale = (width - left - 90) / most
    height = top + sum(len(steps) * bar + gap for _, steps in rows) + 10
    title = words["title"].format(id=report.get("id", ""), name=report.get("name", ""))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="10" y="24" font-size="15">{escape(title)}</text>',
    ]
    y = top
    for label, steps in rows:
        parts.append(
            f'<text x="10" y="{y + bar * 0.75:.0f}" font-weight="bold">{escape(label)}</text>'
        )
        for step, value in steps:
            parts.append(
                f'<rect x="{left}" y="{y}" width="{value * scale:.1f}" height="{bar - 3}" '
                f'fill="{colors[step]}"/>'
            )
            parts.append(
                f'<text x="{left + value * scale + 6:.1f}" y="{y + bar * 0.7:.0f}">'
                f"{escape(words[step])} {value}</text>"
            )
            y += bar
        y += gap
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def funnel_chart(report: Mapping[str, Any], path: Any) -> None:
    """Write the funnel chart to `path`: SVG, or PNG by the file's suffix."""
    from pathlib import Path

    target = Path(path)
    if target.suffix.lower() == ".png":
        from bot.charts import funnel_png

        target.write_bytes(funnel_png(dict(report)))
    else:
        target.write_text(funnel_svg(report), encoding="utf-8")


__all__ = [
    "CampaignError",
    "CampaignSpec",
    "FollowUp",
    "Message",
    "Schedule",
    "UrlButton",
    "Variant",
    "assign",
    "bucket",
    "fill",
    "funnel_chart",
    "funnel_svg",
    "local_due",
    "missing_locales",
    "parse_campaign",
    "parse_local_time",
    "parse_moment",
    "pick_locale",
]

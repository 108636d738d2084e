"""Per-shop settings kept in shops.settings: typed, bounded, with defaults and human durations.

A value a shop owner sets is checked strictly and refused with one plain line (never pydantic's
wording). A value already stored is read leniently: a duration out of its range is brought back
into it, anything else unreadable counts as unset (its default), so one bad old value cannot
break a shop's flows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import time, timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import PydanticUseDefault

from bot.validation import SUPPORTED_LOCALES

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_NUMBER = re.compile(r"\d{1,12}(?:\.\d{1,6})?")
_PART = re.compile(r"(\d{1,12}(?:\.\d{1,6})?)([wdhms])")
MAX_DURATION = timedelta(days=3650)  # what any duration may be at all; settings have their own
DURATION_EXAMPLES = "90s, 45m, 1h30m, 24h, 3d, 2w"


def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_duration(value: Any) -> timedelta:
    """Parse 90s, 60m, 1h30m, 24h, 3d, 2w or a number of seconds into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {_shown(value)} (use e.g. {DURATION_EXAMPLES})")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value <= MAX_DURATION.total_seconds():
            raise ValueError(f"not a duration: {_shown(value)} (use e.g. {DURATION_EXAMPLES})")
        return timedelta(seconds=value)
    text = re.sub(r"\s+", "", str(value).lower())
    if _NUMBER.fullmatch(text):
        seconds = float(text)
    else:
        parts = _PART.findall(text)
        units = [unit for _, unit in parts]
        if (
            not parts
            or "".join(number + unit for number, unit in parts) != text
            or len(set(units)) != len(units)
        ):
            raise ValueError(f"not a duration: {_shown(value)} (use e.g. {DURATION_EXAMPLES})")
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds > MAX_DURATION.total_seconds():
        raise DurationTooLong(
            f"not a duration: {_shown(value)} is longer than {format_duration(MAX_DURATION)}"
        )
    return timedelta(seconds=seconds)


class DurationTooLong(ValueError):
    """A duration longer than any setting allows (and than dates can hold)."""


def format_duration(value: timedelta) -> str:
    """Render a timedelta in the largest whole unit: 3600s -> 1h, 5400s -> 90m."""
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# ------------------------------------------------------------ strict to set, lenient to read


def _strict(info: ValidationInfo) -> bool:
    """Tell whether this field is being set by the owner (refuse) or read back (tolerate)."""
    context = info.context or {}
    return info.field_name in context.get("strict", ())


def _checked(parse: Callable[[Any], Any]) -> Callable[[Any, ValidationInfo], Any]:
    """Run `parse`; a problem is refused when setting, and means "the default" when reading."""

    def check(value: Any, info: ValidationInfo) -> Any:
        try:
            return parse(value)
        except DurationTooLong:
            raise
        except ValueError:
            if _strict(info):
                raise
            raise PydanticUseDefault() from None

    return check


def _duration(low: timedelta, high: timedelta) -> Any:
    """A duration between `low` and `high`; a stored one outside is brought back in."""

    def check(value: Any, info: ValidationInfo) -> timedelta:
        span = f"from {format_duration(low)} to {format_duration(high)}"
        try:
            parsed = _checked(parse_duration)(value, info)
        except DurationTooLong:
            if _strict(info):
                raise ValueError(f"must be {span} (got {_shown(value)})") from None
            return high
        if low <= parsed <= high:
            return parsed
        if _strict(info):
            raise ValueError(
                f"must be {span} (got {format_duration(parsed)}; "
                f"durations look like {DURATION_EXAMPLES})"
            )
        return min(max(parsed, low), high)

    return Annotated[
        timedelta,
        BeforeValidator(check),
        PlainSerializer(format_duration, return_type=str),
    ]


def _parse_clock_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", str(value))
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f"not a time of day: {_shown(value)} (use HH:MM, e.g. 21:00)")
    return time(int(match.group(1)), int(match.group(2)))


def _whole_number(low: int, high: int, what: str = "a whole number") -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        text = str(value).strip()
        if isinstance(value, bool) or not re.fullmatch(r"[+-]?\d{1,20}", text):
            raise ValueError(f"must be {what} from {low} to {high}, not {_shown(value)}")
        number = int(text)
        if not low <= number <= high:
            raise ValueError(f"must be {what} from {low} to {high} (got {_shown(number)})")
        return number

    return parse


def _whole(low: int, high: int) -> Any:
    """A whole number from `low` to `high`."""
    return Annotated[int, BeforeValidator(_checked(_whole_number(low, high)))]


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _parse_yes_no(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"must be true or false (or yes/no, on/off, 1/0), not {_shown(value)}")


def _parse_url(value: Any) -> str:
    from integrations.base import url_problem

    text = str(value).strip()
    problem = url_problem(text)
    if problem:
        raise ValueError(f"not a web address: {problem} (use e.g. https://shop.example.com/sale)")
    return text


def _parse_pool(value: Any) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text):
        raise ValueError(
            f"must be a pool name of 1-64 Latin letters, digits, - or _, not {_shown(value)}"
        )
    return text


def _parse_origins(value: Any) -> list[str]:
    """Read web origins from a list or "https://a.example, https://b.example"."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    origins = []
    for item in items:
        origin = str(item).strip().rstrip("/").lower()
        if not origin:
            continue
        if not re.fullmatch(r"https?://[a-z0-9.-]+(:\d{1,5})?", origin):
            raise ValueError(f"not a web origin: {item!r} (use e.g. https://shop.example.com)")
        origins.append(origin)
    return origins


def parse_languages(value: Any) -> list[str]:
    """Read the locales a shop offers from "en, uk" or a list: supported, unique, in order."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    known = ", ".join(SUPPORTED_LOCALES)
    languages: list[str] = []
    for item in items:
        code = str(item).strip().lower()
        if not code:
            continue
        if code not in SUPPORTED_LOCALES:
            raise ValueError(f"{_shown(str(item).strip())} is not one of {known}")
        if code not in languages:
            languages.append(code)
    if not languages:
        raise ValueError(f"must list at least one of {known} (comma-separated)")
    return languages


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else parse(value)


Duration = Annotated[  # no bounds: only for values that are not shop settings (shop check)
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
ClockTime = Annotated[
    time,
    BeforeValidator(_checked(_parse_clock_time)),
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str),
]
YesNo = Annotated[bool, BeforeValidator(_checked(_parse_yes_no))]
WebUrl = Annotated[str | None, BeforeValidator(_checked(_optional(_parse_url)))]
PoolName = Annotated[str, BeforeValidator(_checked(_parse_pool))]
Origins = Annotated[list[str], BeforeValidator(_checked(_parse_origins))]
Languages = Annotated[list[str], BeforeValidator(_checked(parse_languages))]
ChatId = Annotated[
    int | None,
    BeforeValidator(_checked(_optional(_whole_number(-(10**15), 10**15, "a Telegram chat id")))),
]


def parse_steps(value: Any) -> list[timedelta]:
    """Read the welcome steps, "1h, 2d, 5d": 1 to 3 delays after linking, each later than the
    one before, from 1 minute to 30 days."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    try:
        steps = [parse_duration(item) for item in items if str(item).strip()]
    except DurationTooLong as exc:  # a plain refusal here, never "bring it into range"
        raise ValueError(str(exc)) from None
    if not 1 <= len(steps) <= 3:
        raise ValueError(
            f"must list 1 to 3 delays after linking, e.g. 1h, 2d, 5d (got {len(steps)})"
        )
    for step in steps:
        if not MINUTE <= step <= 30 * DAY:
            raise ValueError(f"each delay must be from 1m to 30d (got {format_duration(step)})")
    if any(steps[i + 1] <= steps[i] for i in range(len(steps) - 1)):
        raise ValueError(
            "each delay counts from linking, so each must be longer than the one before"
        )
    return steps


WelcomeSteps = Annotated[
    list[timedelta],
    BeforeValidator(_checked(parse_steps)),
    PlainSerializer(lambda steps: ", ".join(format_duration(s) for s in steps), return_type=str),
]
OptionalPool = Annotated[str | None, BeforeValidator(_checked(_optional(_parse_pool)))]

MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
CartDelay = _duration(MINUTE, 7 * DAY)
ReminderDelay = _duration(MINUTE, 14 * DAY)
FollowupDelay = _duration(MINUTE, 30 * DAY)
CapWindow = _duration(MINUTE, 30 * DAY)
AttributionWindow = _duration(HOUR, 90 * DAY)
SurveyTtl = _duration(10 * MINUTE, 30 * DAY)
NpsDelay = _duration(HOUR, 90 * DAY)
PoolThreshold = _whole(0, 1_000_000)
Cap = _whole(0, 100)
DaysBefore = _whole(0, 30)
ThanksDelay = _duration(MINUTE, 30 * DAY)


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _parse_hours(value: Any) -> tuple[time, time] | None:
    """Read support hours "09:00-18:00" (in the shop's time zone); empty means always."""
    if isinstance(value, list | tuple) and len(value) == 2:
        value = f"{value[0]}-{value[1]}"
    text = str(value).strip()
    if not text:
        return None
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"must be opening hours like 09:00-18:00, not {_shown(value)}")
    opens, closes = _parse_clock_time(start), _parse_clock_time(end)
    if opens == closes:
        raise ValueError("opening and closing times must differ (leave empty for always open)")
    return opens, closes


def _parse_weekdays(value: Any) -> list[str]:
    """Read working days "mon-fri" or "mon,wed,sat" into weekday names in week order."""
    items = value if isinstance(value, list) else str(value).lower().replace(" ", "").split(",")
    days: set[str] = set()
    for item in items:
        item = str(item).strip().lower()
        if not item:
            continue
        first, sep, last = item.partition("-")
        if first not in _WEEKDAYS or (sep and last not in _WEEKDAYS):
            raise ValueError(f"must be weekdays like mon-fri or mon,wed,sat, not {_shown(value)}")
        a = _WEEKDAYS.index(first)
        b = _WEEKDAYS.index(last) if sep else a
        span = range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)]
        days.update(_WEEKDAYS[i] for i in span)
    if not days:
        raise ValueError("must name at least one weekday, e.g. mon-fri")
    return [d for d in _WEEKDAYS if d in days]


SupportHours = Annotated[
    tuple[time, time] | None,
    BeforeValidator(_checked(_optional(_parse_hours))),
    PlainSerializer(lambda h: f"{h[0]:%H:%M}-{h[1]:%H:%M}" if h else None, return_type=str | None),
]
Weekdays = Annotated[list[str], BeforeValidator(_checked(_parse_weekdays))]
# Names the issues use for a setting stored under another key (`nudge shop set`).
SETTING_ALIASES = {"support_chat": "support_chat_id"}


class ShopSettings(BaseModel):
    """What a shop owner can tune with `nudge shop set ID key=value`."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    catalog_url: WebUrl = None
    shop_url: WebUrl = None
    languages: Languages = list(SUPPORTED_LOCALES)
    abandoned_cart_delay: CartDelay = HOUR
    reminder2_enabled: YesNo = False
    reminder2_delay: ReminderDelay = DAY
    reminder2_pool: PoolName = "cart"
    followup_enabled: YesNo = True
    followup_delay: FollowupDelay = 3 * DAY
    followup_pool: PoolName = "followup"
    code_pool_low_threshold: PoolThreshold = 20
    frequency_cap: Cap = 1
    frequency_window: CapWindow = 16 * HOUR
    quiet_hours_start: ClockTime = time(21, 0)
    quiet_hours_end: ClockTime = time(9, 0)
    attribution_window: AttributionWindow = 5 * DAY
    survey_ttl: SurveyTtl = 2 * DAY
    nps_delay: NpsDelay = 7 * DAY
    nps_enabled: YesNo = False
    review_url: WebUrl = None
    loyalty_url: WebUrl = None
    birthday_survey_after_first_order: YesNo = False
    birthday_survey_with_followup: YesNo = False
    birthday_days_before: DaysBefore = 0
    birthday_pool: PoolName = "birthday"
    support_chat_id: ChatId = None
    # support agents (bot/support.py): when the team answers, in the shop's time zone
    support_hours: SupportHours = None
    support_days: Weekdays = list(_WEEKDAYS)
    support_code_pool: PoolName = "support"
    storefront_origins: Origins = []
    # lifecycle flows (bot/flows/welcome.py, post_purchase.py, winback.py)
    welcome_enabled: YesNo = False
    welcome_steps: WelcomeSteps = [HOUR, 2 * DAY, 5 * DAY]
    welcome_pool: OptionalPool = None
    thanks_enabled: YesNo = False
    thanks_delay: ThanksDelay = 2 * HOUR
    restock_enabled: YesNo = False
    restock_pool: OptionalPool = None
    winback_enabled: YesNo = False
    winback_pool: OptionalPool = "winback"


SETTING_KEYS = tuple(sorted((*ShopSettings.model_fields, *SETTING_ALIASES)))


class SettingError(ValueError):
    """A shop setting key or value is not valid."""


WEBHOOK_SECRET_MIN, WEBHOOK_SECRET_MAX = 8, 128


def check_webhook_secret(value: str) -> str:
    """Return a usable webhook signing key, or raise SettingError saying why (never echoing it).

    The key the platform signs with: Shopify's app client secret, WooCommerce's webhook
    secret, or the generic platform's shared secret. Printable, 8 to 128 characters, no
    surrounding blanks (they would be lost in copy and paste and break every signature).
    """
    if not value or not value.strip():
        raise SettingError("webhook_secret: must not be empty")
    if value != value.strip():
        raise SettingError("webhook_secret: must not start or end with a blank")
    if not value.isprintable():
        raise SettingError("webhook_secret: must hold printable characters only")
    if not WEBHOOK_SECRET_MIN <= len(value) <= WEBHOOK_SECRET_MAX:
        raise SettingError(
            f"webhook_secret: must be {WEBHOOK_SECRET_MIN} to {WEBHOOK_SECRET_MAX} characters "
            f"long (got {len(value)})"
        )
    return value


def load_shop_settings(raw: dict[str, Any] | None) -> ShopSettings:
    """Build typed settings from what the database holds (tolerating old, bad values)."""
    return ShopSettings.model_validate(raw or {})


def _plain(error: dict[str, Any]) -> str:
    """Say what is wrong in plain words: our own message, never pydantic's wording."""
    if error.get("type") == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    return "is not a valid value"


def apply_setting(
    raw: dict[str, Any] | None, key: str, value: str, *, known: tuple[str, ...] = SETTING_KEYS
) -> dict[str, Any]:
    """Return new raw settings with key=value applied and validated, or raise SettingError.

    An empty value (or `none`, `null`) puts the setting back to its default.
    """
    key = SETTING_ALIASES.get(key, key)
    if key not in ShopSettings.model_fields:
        raise SettingError(f"unknown setting {key!r}; known: {', '.join(known)}")
    current = dict(raw or {})
    if value.strip().lower() in ("", "none", "null", "default"):
        current.pop(key, None)
    else:
        current[key] = value
    try:
        typed = ShopSettings.model_validate(current, context={"strict": {key}})
    except ValidationError as exc:
        raise SettingError(f"{key}: {_plain(exc.errors()[0])}") from None
    return typed.model_dump(mode="json", exclude_defaults=True)

"""Per-shop settings kept in shops.settings: typed, with defaults and human durations."""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """Parse 90s, 60m, 24h, 3d, 2w or a number of seconds into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = _DURATION.match(str(value).lower())
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 60m, 24h, 3d)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def format_duration(value: timedelta) -> str:
    """Render a timedelta in the largest whole unit: 3600s -> 1h."""
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _parse_clock_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    match = re.match(r"^\s*(\d{1,2}):(\d{2})\s*$", str(value))
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f"not a time of day: {value!r} (use HH:MM)")
    return time(int(match.group(1)), int(match.group(2)))


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
ClockTime = Annotated[
    time,
    BeforeValidator(_parse_clock_time),
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str),
]


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


Origins = Annotated[list[str], BeforeValidator(_parse_origins)]


class ShopSettings(BaseModel):
    """What a shop owner can tune with `nudge shop set ID key=value`."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    catalog_url: str | None = None
    abandoned_cart_delay: Duration = timedelta(minutes=60)
    reminder2_enabled: bool = False
    reminder2_delay: Duration = timedelta(hours=24)
    reminder2_pool: str = "cart"
    followup_enabled: bool = True
    followup_delay: Duration = timedelta(days=3)
    followup_pool: str = "followup"
    code_pool_low_threshold: int = Field(default=20, ge=0)
    frequency_cap: int = Field(default=1, ge=0)
    frequency_window: Duration = timedelta(hours=16)
    quiet_hours_start: ClockTime = time(21, 0)
    quiet_hours_end: ClockTime = time(9, 0)
    attribution_window: Duration = timedelta(days=5)
    survey_ttl: Duration = timedelta(days=2)
    nps_delay: Duration = timedelta(days=7)
    nps_enabled: bool = False
    review_url: str | None = None
    loyalty_url: str | None = None
    birthday_survey_after_first_order: bool = False
    birthday_survey_with_followup: bool = False
    birthday_days_before: int = Field(default=0, ge=0, le=30)
    birthday_pool: str = "birthday"
    support_chat_id: int | None = None
    storefront_origins: Origins = []


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
    """Build typed settings from what the database holds."""
    return ShopSettings.model_validate(raw or {})


def apply_setting(raw: dict[str, Any] | None, key: str, value: str) -> dict[str, Any]:
    """Return new raw settings with key=value applied and validated, or raise SettingError."""
    if key not in ShopSettings.model_fields:
        known = ", ".join(sorted(ShopSettings.model_fields))
        raise SettingError(f"unknown setting {key!r}; known: {known}")
    current = dict(raw or {})
    current[key] = None if value.strip().lower() in ("", "none", "null") else value
    try:
        typed = ShopSettings.model_validate(current)
    except ValidationError as exc:
        raise SettingError(f"{key}: {exc.errors()[0]['msg']}") from None
    return typed.model_dump(mode="json", exclude_defaults=True)

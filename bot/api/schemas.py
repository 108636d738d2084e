"""JSON Schemas of the admin API's bodies and answers, and the check every request body passes.

The same dicts describe the API in /api/openapi.json and check each request body before its
handler runs, so a body the document calls invalid is refused with 422 naming the place, and
one it calls valid reaches the service function the CLI calls. A schema states exactly what the
service accepts where JSON Schema can say it; where the service is more lenient (upper-case
codes, "1h30m", a country in any case) the schema states the plain form, a subset. What no
schema can state (two variants with one name, welcome steps in order, a saved segment that
exists) is said in a description and answered 422 or 409 by the service.

Patterns spell their character classes out (no \\s, \\d or \\w, which regex engines read
differently) and end in `$`, read as the end of the text.
"""

from __future__ import annotations

import json
import math
import re
from datetime import timedelta
from functools import cache
from typing import Any

# --------------------------------------------------------------------------------- checking

COMPONENTS: dict[str, Any] = {}


def ref(name: str) -> dict[str, str]:
    """Return a reference to a schema kept in components/schemas."""
    return {"$ref": f"#/components/schemas/{name}"}


def _compiled(pattern: str) -> re.Pattern[str]:
    return _compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern)


@cache
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: (
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    ),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _at(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def problem(value: Any, schema: dict[str, Any], path: str = "") -> tuple[str, str] | None:
    """Return (where, why) for the first way `value` breaks `schema`, or None when it fits.

    Covers the keywords this API's schemas use. As in JSON Schema, 2.0 is an integer; no
    string may hold a lone surrogate (it is no Unicode text).
    """
    where = path or "body"
    if "$ref" in schema:
        return problem(value, components()[schema["$ref"].rsplit("/", 1)[1]], path)
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[kind](value) for kind in kinds):
            return where, f"expected {' or '.join(kinds)}, got {_shown(value)}"
    if "const" in schema and not _same(value, schema["const"]):
        return where, f"{_shown(value)} is not {schema['const']!r}"
    if "enum" in schema and not any(_same(value, choice) for choice in schema["enum"]):
        shown = ", ".join(repr(c) for c in schema["enum"][:12])
        more = ", …" if len(schema["enum"]) > 12 else ""
        return where, f"{_shown(value)} is not one of {shown}{more}"
    found = (
        _string(value, schema, where)
        if isinstance(value, str)
        else _number(value, schema, where)
        if _TYPES["number"](value)
        else _array(value, schema, path)
        if isinstance(value, list)
        else _object(value, schema, path)
        if isinstance(value, dict)
        else None
    )
    return found or _combined(value, schema, path)


def _same(value: Any, expected: Any) -> bool:
    return type(value) is type(expected) and value == expected


def _string(value: str, schema: dict[str, Any], where: str) -> tuple[str, str] | None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return where, "is not Unicode text (a lone surrogate)"
    if len(value) < schema.get("minLength", 0):
        return where, f"must have at least {schema['minLength']} characters"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return where, f"must have at most {schema['maxLength']} characters"
    if "pattern" in schema and not _compiled(schema["pattern"]).search(value):
        return where, schema.get("description") or f"{_shown(value)} has not the expected form"
    known = FORMATS.get(schema.get("format", ""))
    if known is not None and value not in known():
        return where, f"{_shown(value)} is not {schema.get('description', 'known')}"
    return None


def _number(value: float, schema: dict[str, Any], where: str) -> tuple[str, str] | None:
    if "minimum" in schema and value < schema["minimum"]:
        return where, f"must be at least {schema['minimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        return where, f"must be at most {schema['maximum']}"
    return None


def _array(value: list[Any], schema: dict[str, Any], path: str) -> tuple[str, str] | None:
    where = path or "body"
    if len(value) < schema.get("minItems", 0):
        return where, f"needs at least {schema['minItems']} items"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return where, f"takes at most {schema['maxItems']} items"
    if "items" in schema:
        for i, item in enumerate(value):
            found = problem(item, schema["items"], _at(path, i))
            if found:
                return found
    return None


def _object(value: dict[str, Any], schema: dict[str, Any], path: str) -> tuple[str, str] | None:
    where = path or "body"
    if len(value) < schema.get("minProperties", 0):
        return where, f"needs at least {schema['minProperties']} keys"
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        return where, f"takes at most {schema['maxProperties']} keys"
    for key in schema.get("required", ()):
        if key not in value:
            return _at(path, key), "is missing"
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if "propertyNames" in schema:
            found = problem(key, schema["propertyNames"], _at(path, key))
            if found:
                return found[0], f"is not an expected key ({found[1]})"
        if key in properties:
            found = problem(item, properties[key], _at(path, key))
        elif extra is False:
            known = ", ".join(properties) or "none"
            return where, f"unknown key {_shown(key)} (known: {known})"
        elif isinstance(extra, dict):
            found = problem(item, extra, _at(path, key))
        else:
            found = None
        if found:
            return found
    return None


def _combined(value: Any, schema: dict[str, Any], path: str) -> tuple[str, str] | None:
    for part in schema.get("allOf", ()):
        found = problem(value, part, path)
        if found:
            return found
    for keyword in ("anyOf", "oneOf"):
        if keyword not in schema:
            continue
        found = [problem(value, part, path) for part in schema[keyword]]
        fits = found.count(None)
        if fits == 0:
            return _closest(value, schema[keyword], found)
        if keyword == "oneOf" and fits > 1:
            return path or "body", "fits more than one form"
    if "not" in schema and problem(value, schema["not"], path) is None:
        return path or "body", schema.get("description") or f"{_shown(value)} is not allowed"
    return None


def _likeness(value: Any, schema: dict[str, Any]) -> int:
    """Score how plainly an object alternative is the one meant: its consts and enums that fit,
    an earlier key (`field` before `op` before `value`) weighing more; -1 lacks a required key."""
    if "$ref" in schema:
        return _likeness(value, components()[schema["$ref"].rsplit("/", 1)[1]])
    if not isinstance(value, dict):
        return 0
    if any(key not in value for key in schema.get("required", ())):
        return -1
    score = 0
    properties = schema.get("properties", {})
    for weight, (key, item) in enumerate(reversed(properties.items())):
        choices = [item["const"]] if "const" in item else item.get("enum")
        if key in value and choices is not None:
            score += 2**weight * any(_same(value[key], choice) for choice in choices)
    return score


def _depth(where: str) -> int:
    return where.count(".") + where.count("[") + 1


def _closest(value: Any, parts: list[Any], found: list[Any]) -> tuple[str, str]:
    """Say why no alternative fits: the meant one's problem, or the choices at one place."""
    scores = [_likeness(value, part) for part in parts]
    candidates = [f for score, f in zip(scores, found, strict=True) if score == max(scores)]
    # "expected null" is the alternative of leaving a value out: the other one says more
    candidates = [f for f in candidates if not f[1].startswith("expected null")] or candidates
    deepest = max(_depth(where) for where, _ in candidates)
    furthest = [f for f in candidates if _depth(f[0]) == deepest]
    wheres = {where for where, _ in furthest}
    heads = {why.partition(" is not ")[0] for _, why in furthest}
    merge = len(furthest) > 1 and len(wheres) == 1 and len(heads) == 1
    if merge and all(" is not " in why for _, why in furthest):
        choices: list[str] = []
        for _, why in furthest:
            choices += why.partition(" is not ")[2].removeprefix("one of ").split(", ")
        choices = [c for c in dict.fromkeys(choices) if c != "…"]
        shown = ", ".join(choices[:12]) + (", …" if len(choices) > 12 else "")
        return furthest[0][0], f"{heads.pop()} is not one of {shown}"
    return furthest[0]


# ------------------------------------------------------------------------------- text forms

# what str.strip() and str.isspace() call blank (spelled out: regex engines disagree on \s)
BLANK = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# a character a text may hold: not NUL (nor half of a surrogate pair: no string may hold one)
CHAR = r"[^\x00]"
SOLID = rf"[^\x00{BLANK}]"
# printable (str.isprintable) letters, marks, digits, punctuation and symbols of the scripts
# Nudge's shops write in: ASCII, Latin, Cyrillic, and common punctuation and symbols
PRINTABLE = (
    r" -~\u00a1-\u00ac\u00ae-\u036f\u0400-\u052f\u2010-\u2027\u2030-\u205e"
    r"\u20a0-\u20c0\u2100-\u214f\u2190-\u21ff\u2600-\u26ff\u2700-\u27bf"
)


def text(limit: int, description: str | None = None) -> dict[str, Any]:
    """Return the schema of a non-blank text of at most `limit` characters."""
    schema = {
        "type": "string",
        "minLength": 1,
        "maxLength": limit,
        "pattern": f"^{CHAR}*{SOLID}{CHAR}*$",
    }
    return {**schema, "description": description} if description else schema


def printable(limit: int, description: str) -> dict[str, Any]:
    """Return the schema of a non-blank printable name (see PRINTABLE) of at most `limit`."""
    solid = PRINTABLE.replace(" -~", "!-~", 1)
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": limit,
        "pattern": f"^[{PRINTABLE}]*[{solid}][{PRINTABLE}]*$",
        "description": description,
    }


def _digits(low: str, high: str) -> str:
    """Return a regex for the digit strings from `low` to `high` (of one length)."""
    if low == high:
        return low
    if len(low) == 1:
        return f"[{low}-{high}]"
    if low[0] == high[0]:
        return low[0] + _digits(low[1:], high[1:])
    rest = len(low) - 1
    parts = [low[0] + f"(?:{_digits(low[1:], '9' * rest)})"]
    if int(high[0]) - int(low[0]) > 1:
        parts.append(f"[{int(low[0]) + 1}-{int(high[0]) - 1}][0-9]{{{rest}}}")
    parts.append(high[0] + f"(?:{_digits('0' * rest, high[1:])})")
    return "(?:" + "|".join(parts) + ")"


def whole_between(low: int, high: int) -> str:
    """Return a regex for the whole numbers from `low` to `high` (>= 0), no leading zeros."""
    parts = []
    for size in range(len(str(low)), len(str(high)) + 1):
        first = max(low, 10 ** (size - 1) if size > 1 else 0)
        last = min(high, 10**size - 1)
        if first <= last:
            parts.append(_digits(str(first), str(last)))
    return "(?:" + "|".join(parts) + ")"


# a number of seconds goes as a JSON number: the text form takes the larger units
UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60))


def duration_form(low: timedelta, high: timedelta) -> str:
    """Return a regex for "N<unit>" durations (w, d, h, m) from `low` to `high`."""
    lo, hi = int(low.total_seconds()), int(high.total_seconds())
    parts = []
    for unit, size in UNITS:
        first, last = -(-lo // size), hi // size
        if first <= last:
            parts.append(whole_between(max(first, 1), last) + unit)
    return "(?:" + "|".join(parts) + ")"


def duration(low: timedelta, high: timedelta) -> dict[str, Any]:
    """Return the schema of a duration: "24h", "45m", "3d" or a number of seconds."""
    lo, hi = int(low.total_seconds()), int(high.total_seconds())
    return {
        "anyOf": [
            {
                "type": "string",
                "pattern": f"^{duration_form(low, high)}$",
                "description": f"a duration such as 45m, 24h or 3d, from {lo} s to {hi} s",
            },
            {"type": "integer", "minimum": lo, "maximum": hi, "description": "seconds"},
        ]
    }


CLOCK = r"(?:[01]?[0-9]|2[0-3]):[0-5][0-9]"
POOL = {
    "type": "string",
    "pattern": "^[A-Za-z0-9_-]{1,64}$",
    "description": "a code pool's name: 1-64 Latin letters, digits, - or _",
}
# an absolute http(s) address with a DNS name (the plain form of what the services accept)
_LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PORT = f"(?::{whole_between(1, 65535)})?"
_PATH_CHAR = "(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})"
URL = {
    "type": "string",
    "maxLength": 2048,
    "pattern": (
        f"^https?://(?:{_LABEL}\\.){{1,2}}[a-z]{{2,63}}{_PORT}"
        f"(?:/{_PATH_CHAR}*)?(?:\\?(?:{_PATH_CHAR}|\\?)*)?$"
    ),
    "description": "an absolute http(s) address, e.g. https://shop.example.com/sale",
}
MOMENT = {
    "type": "string",
    "pattern": (
        "^2[0-9]{3}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|"
        "(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
        "T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\\.[0-9]{1,6})?)?"
        "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
    ),
    "description": "an ISO 8601 moment with its offset, e.g. 2027-03-01T10:00:00+02:00",
}


# ----------------------------------------------------------------------------- shop values


@cache
def currencies() -> tuple[str, ...]:
    """Return the ISO 4217 codes the services accept."""
    from babel.numbers import list_currencies

    return tuple(sorted(list_currencies()))


@cache
def countries() -> tuple[str, ...]:
    """Return the ISO 3166 codes the services accept."""
    from babel import Locale

    from bot.validation import NOT_COUNTRIES

    return tuple(
        sorted(
            c
            for c in Locale("en").territories
            if len(c) == 2 and c.isalpha() and c.isupper() and c not in NOT_COUNTRIES
        )
    )


@cache
def timezones() -> tuple[str, ...]:
    """Return the IANA zones this machine knows (the services check them the same way)."""
    import zoneinfo

    return tuple(sorted(zoneinfo.available_timezones()))


def locales() -> list[str]:
    """Return the locales Nudge speaks."""
    from bot.validation import SUPPORTED_LOCALES

    return list(SUPPORTED_LOCALES)


# Formats the checks know: code lists too long to enumerate in the document (a generator that
# knows them is given in tests/api/schemathesis_hooks.py).
FORMATS = {"iso-4217": currencies, "iso-3166-alpha-2": countries, "iana-timezone": timezones}
CURRENCY = {"type": "string", "format": "iso-4217", "description": "an ISO 4217 code, e.g. UAH"}
COUNTRY = {
    "type": "string",
    "format": "iso-3166-alpha-2",
    "description": "an ISO 3166 country code, e.g. UA; sets currency, locale and time zone",
}
TIMEZONE = {
    "type": "string",
    "format": "iana-timezone",
    "description": "an IANA time zone, e.g. Europe/Kyiv",
}
PLATFORMS = ["shopify", "woocommerce", "generic"]
SHOP_NAME = printable(200, "the shop's name (letters, digits, punctuation; no control characters)")
BOT_TOKEN = {
    "type": "string",
    "pattern": "^[1-9][0-9]{0,9}:[A-Za-z0-9_-]{10,100}$",
    "description": "the bot's token from @BotFather, 123456789:AA…",
}
BOT_USERNAME = {
    "type": "string",
    "pattern": "^[A-Za-z][A-Za-z0-9_]{0,28}[Bb][Oo][Tt]$",
    "description": "the bot's username without @, ending in bot",
}
WEBHOOK_SECRET = {
    "type": "string",
    "pattern": "^[!-~][ -~]{6,126}[!-~]$",
    "description": "the platform's signing key: 8-128 printable ASCII characters",
}


def enum(values: list[Any], description: str | None = None) -> dict[str, Any]:
    """Return a schema of one of `values`."""
    return {"enum": values, **({"description": description} if description else {})}


def _shop_add() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["platform", "name"],
        "additionalProperties": False,
        "properties": {
            "platform": enum(PLATFORMS),
            "name": SHOP_NAME,
            "bot_token": {**BOT_TOKEN, "type": ["string", "null"]},
            "currency": {"anyOf": [ref("Currency"), {"type": "null"}]},
            "country": {"anyOf": [ref("Country"), {"type": "null"}]},
            "locale": enum([*locales(), None]),
            "timezone": {"anyOf": [ref("Timezone"), {"type": "null"}]},
            "webhook_secret": {**WEBHOOK_SECRET, "type": ["string", "null"]},
        },
    }


def _yes_no() -> dict[str, Any]:
    return {"anyOf": [{"type": "boolean"}, enum(["true", "yes", "on", "false", "no", "off"])]}


def _settings_body() -> dict[str, Any]:
    """The PATCH body: each key of `nudge shop set` with the values it takes; null: default."""
    from bot.shop_settings import ShopSettings

    minute, hour, day = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
    step = duration_form(minute, 30 * day)
    langs = "(?:" + "|".join(locales()) + ")"
    weekday = "(?:mon|tue|wed|thu|fri|sat|sun)"
    days = f"{weekday}(?:-{weekday})?"
    origin = "https?://[a-z0-9.-]+(?::[0-9]{1,5})?"

    def whole(low: int, high: int) -> dict[str, Any]:
        return {"type": "integer", "minimum": low, "maximum": high}

    def pattern(form: str, description: str) -> dict[str, Any]:
        return {"type": "string", "pattern": f"^{form}$", "description": description}

    settings: dict[str, Any] = {
        "catalog_url": URL,
        "shop_url": URL,
        "review_url": URL,
        "loyalty_url": URL,
        "languages": pattern(f"{langs}(?:,{langs})*", "the shop's locales, e.g. uk,en"),
        "abandoned_cart_delay": duration(minute, 7 * day),
        "reminder2_delay": duration(minute, 14 * day),
        "followup_delay": duration(minute, 30 * day),
        "frequency_window": duration(minute, 30 * day),
        "attribution_window": duration(hour, 90 * day),
        "survey_ttl": duration(10 * minute, 30 * day),
        "nps_delay": duration(hour, 90 * day),
        "thanks_delay": duration(minute, 30 * day),
        "code_pool_low_threshold": whole(0, 1_000_000),
        "frequency_cap": whole(0, 100),
        "birthday_days_before": whole(0, 30),
        "quiet_hours_start": pattern(CLOCK, "HH:MM"),
        "quiet_hours_end": pattern(CLOCK, "HH:MM"),
        "support_chat_id": whole(-(10**15), 10**15),
        "support_chat": whole(-(10**15), 10**15),
        "support_hours": pattern(
            rf"(?!0?([0-9]|1[0-9]|2[0-3]):([0-5][0-9])-0?\1:\2$){CLOCK}-{CLOCK}",
            "opening hours HH:MM-HH:MM, the two times differ",
        ),
        "support_days": pattern(f"{days}(?:,{days})*", "weekdays, e.g. mon-fri or mon,wed"),
        "storefront_origins": pattern(
            f"{origin}(?:,{origin})*", "web origins, e.g. https://shop.example.com"
        ),
        "welcome_steps": pattern(
            f"{step}(?:, ?{step}){{0,2}}", "1 to 3 delays after linking, each longer than the last"
        ),
    }
    for key in ShopSettings.model_fields:
        if key.endswith("_enabled") or key.startswith("birthday_survey"):
            settings[key] = _yes_no()
        elif key.endswith("_pool"):
            settings[key] = POOL
    unknown = set(ShopSettings.model_fields) - set(settings)
    assert not unknown, f"settings without a schema: {sorted(unknown)}"
    properties = {key: {"anyOf": [schema, {"type": "null"}]} for key, schema in settings.items()}
    properties.update(
        {
            "name": SHOP_NAME,
            "currency": ref("Currency"),
            "country": {"anyOf": [ref("Country"), {"type": "null"}]},
            "locale": enum(locales(), "must be among the shop's languages (else 409)"),
            "timezone": ref("Timezone"),
            "bot_token": {**BOT_TOKEN, "type": ["string", "null"]},
            "bot_username": {**BOT_USERNAME, "type": ["string", "null"]},
            "webhook_secret": WEBHOOK_SECRET,
        }
    )
    return {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": dict(sorted(properties.items())),
        "description": "keys and values as `nudge shop set`; null puts a setting back to default",
    }


# -------------------------------------------------------------------------------- segments


def _list(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "minItems": 1, "maxItems": 1000, "items": item}


def _conditions(extra: dict[str, Any]) -> list[dict[str, Any]]:
    """One schema per field and operator group of bot/segments.py's FIELDS."""
    from bot.models import Consent, Stage
    from bot.segments import FIELDS, Days, Flag, Many, Membership, Scalar

    segment_text = text(500)
    # amounts are NUMERIC(14, 4): ten digits before the point
    money = {"type": "number", "minimum": -9_999_999_999, "maximum": 9_999_999_999}
    by_field: dict[str, Any] = {
        "locale": enum(locales()),
        "country": {"type": "string", "pattern": "^[A-Za-z]{2}$"},
        "city": segment_text,
        "consent": enum([c.value for c in Consent]),
        "stage": enum([s.value for s in Stage]),
        "rfm_r": {"type": "integer", "minimum": 1, "maximum": 5},
        "rfm_f": {"type": "integer", "minimum": 1, "maximum": 5},
        "rfm_m": {"type": "integer", "minimum": 1, "maximum": 5},
        "rfm_cell": segment_text,
        "orders_count": {"type": "integer", "minimum": -(2**31) + 1, "maximum": 2**31 - 1},
        "revenue": money,
        "aov": money,
        "birthday_month": {"type": "integer", "minimum": 1, "maximum": 12},
        "nps": {"type": "integer", "minimum": 0, "maximum": 10},
    }
    days = {"type": "integer", "minimum": -100_000, "maximum": 100_000}
    # fields that take the same operators and values share one shape
    shapes: dict[str, tuple[list[str], list[str], dict[str, Any]]] = {}
    for name, kind in FIELDS.items():
        if isinstance(kind, Days):
            value = days
        elif isinstance(kind, Many | Membership):
            value = segment_text
        elif isinstance(kind, Flag):
            value = {"type": "boolean"}
        else:
            assert isinstance(kind, Scalar)
            value = by_field[name]
        groups: list[tuple[list[str], dict[str, Any]]] = []
        single = [op for op in kind.ops if op not in ("in", "not_in", "exists")]
        if single:
            groups.append((single, value))
        if "in" in kind.ops:
            groups.append((["in", "not_in"], _list(value)))
        if "exists" in kind.ops:
            groups.append((["exists"], {"type": "boolean"}))
        for ops, schema in groups:
            key = json.dumps([ops, schema], sort_keys=True)
            shapes.setdefault(key, ([], ops, schema))[0].append(name)
    return [
        _condition(names, ops, schema, extra, required=ops != ["exists"])
        for names, ops, schema in shapes.values()
    ]


def _condition(
    names: list[str],
    ops: list[str],
    value: dict[str, Any],
    extra: dict[str, Any],
    *,
    required: bool,
) -> dict[str, Any]:
    field = {"const": names[0]} if len(names) == 1 else enum(names)
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["field", "op", "value"] if required else ["field", "op"],
        "properties": {"field": field, "op": enum(ops), "value": value, **extra},
    }


def _nodes(extra: dict[str, Any]) -> list[dict[str, Any]]:
    """The shapes of a node: all/any of a list of nodes, not of a node, or a condition."""
    node = ref("SegmentNode")
    groups = {"all": {"type": "array", "items": node}, "any": {"type": "array", "items": node}}
    groups["not"] = node
    return [
        {
            "type": "object",
            "additionalProperties": False,
            "required": [key],
            "properties": {key: schema, **extra},
        }
        for key, schema in groups.items()
    ] + _conditions(extra)


SEGMENT_DESCRIPTION = (
    "A segment definition (README, Segments): {all: [...]}, {any: [...]}, {not: node} or "
    "{field, op, value}; the top level may add reachable_only. A `segment` condition names a "
    "saved segment of the shop: one that does not exist, or a definition that refers to "
    "itself, is a 409. At most 20 levels deep."
)


# ------------------------------------------------------------------------------- campaigns

PLACEHOLDER_FREE = r"[^\x00{]"
# a `{` that does not open a placeholder (`{name}` or `{name|fallback}`) is plain text
STRAY_BRACE = r"\{(?![a-z_]+(?:\|[^{}]{0,100})?\})"


def message_text(limit: int, *, code: bool) -> dict[str, Any]:
    """Return the schema of a message text: plain text with the known placeholders."""
    names = "first_name|shop_name|code" if code else "first_name|shop_name"
    known = rf"\{{(?:{names})(?:\|[^{{}}\x00]{{0,100}})?\}}"
    token = f"(?:{PLACEHOLDER_FREE}|{STRAY_BRACE}|{known})"
    solid = rf"(?:[^\x00{BLANK}{{]|{STRAY_BRACE}|{known})"  # what makes a text not blank
    said = "{first_name}, {first_name|fallback}, {shop_name}"
    said += ", {code}" if code else " ({code} needs a pool)"
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": limit,
        "pattern": f"^{token}*{solid}{token}*$",
        "description": f"plain text with the placeholders {said}",
    }


def _message(code: bool) -> dict[str, Any]:
    buttons = {
        "type": ["array", "null"],
        "maxItems": 6,
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["text", "url"],
            "properties": {"text": text(64), "url": URL},
        },
    }
    plain = {
        "type": "object",
        "additionalProperties": False,
        "required": ["text"],
        "properties": {
            "text": message_text(4096, code=code),
            "image_url": {"type": "null"},
            "buttons": buttons,
        },
    }
    with_image = {
        "type": "object",
        "additionalProperties": False,
        "required": ["text", "image_url"],
        "properties": {
            "text": message_text(1024, code=code),
            "image_url": URL,
            "buttons": buttons,
        },
    }
    return {"anyOf": [plain, with_image]}


def _messages(code: bool) -> dict[str, Any]:
    return {
        "type": "object",
        "minProperties": 1,
        "propertyNames": enum(locales()),
        "additionalProperties": ref("MessageWithCode" if code else "Message"),
        "description": "a message per locale" + ("" if code else "; {code} needs a pool"),
    }


def _campaign(code: bool) -> dict[str, Any]:
    messages = ref("MessagesWithCode" if code else "Messages")
    variant = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "messages"],
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,16}$"},
            "weight": {"type": "integer", "minimum": 1, "maximum": 1000},
            "messages": messages,
        },
    }
    follow_ups = []
    for pool in (True, False):
        follow_ups.append(
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["after", "messages"] + (["pool"] if pool else []),
                "properties": {
                    "after": duration(timedelta(minutes=10), timedelta(days=30)),
                    "messages": ref("MessagesWithCode" if pool else "Messages"),
                    "pool": POOL if pool else {"type": "null"},
                },
            }
        )
    schedule = [
        {"type": "null"},
        {"const": "now"},
        {"type": "object", "maxProperties": 0},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["at"],
            "properties": {"at": MOMENT},
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["local_time"],
            "properties": {"local_time": {"type": "string", "pattern": f"^{CLOCK}$"}},
        },
    ]
    flag = {"type": ["boolean", "null"]}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "segment", "topic"] + (["pool"] if code else []),
        "properties": {
            "name": text(200),
            "segment": {
                "anyOf": [
                    {"type": "string", "description": "a saved segment's name"},
                    ref("Segment"),
                ]
            },
            "topic": text(200, "what the campaign is about (a customer may opt out of it)"),
            "messages": {"anyOf": [messages, {"type": "null"}]},
            "variants": {
                "type": ["array", "null"],
                "minItems": 1,
                "maxItems": 8,
                "items": variant,
                "description": "A/B variants, each with its own name",
            },
            "catalog_button": flag,
            "not_interested_button": flag,
            "holdout_percent": {"type": "number", "minimum": 0, "maximum": 50},
            "pool": POOL if code else {"type": "null"},
            "skip_without_code": flag,
            "schedule": {"anyOf": schedule},
            "follow_up": {"anyOf": [*follow_ups, {"type": "null"}]},
            "rate_per_second": {"type": ["number", "null"], "minimum": 0.1, "maximum": 1000},
        },
        "anyOf": [
            {
                "required": ["messages"],
                "properties": {"messages": {"type": "object"}, "variants": {"type": "null"}},
            },
            {
                "required": ["variants"],
                "properties": {"variants": {"type": "array"}, "messages": {"type": "null"}},
            },
        ],
    }


CAMPAIGN_DESCRIPTION = (
    "A campaign file (README, Promo campaigns): messages or variants, with {code} only where a "
    "pool is set. A saved segment that does not exist is a 409."
)
SEND = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"at": MOMENT, "local_time": {"type": "string", "pattern": f"^{CLOCK}$"}},
    "not": {"required": ["at", "local_time"]},
    "description": "{} (now), {at: moment} or {local_time: HH:MM}, not both",
}
SEARCH = {
    "type": "string",
    "maxLength": 200,
    "pattern": f"^[{PRINTABLE}]*$",
    "description": "a name, e-mail, phone or Telegram id (printable text)",
}
SEGMENT_NAME: dict[str, Any] = {
    "type": "string",
    "maxLength": 100,
    "pattern": f"^{CHAR}*{SOLID}{CHAR}*$",
    "not": {"pattern": f"^[{BLANK}]*(?:preview|[.]{{1,2}})[{BLANK}]*$"},
    "description": "a segment's name (not `preview`, which names the preview operation)",
}


def path_parameter(name: str) -> dict[str, Any]:
    """Return the schema of a path parameter: a segment's name, else a record's id."""
    from bot.api import MAX_ID

    if name == "name":
        return SEGMENT_NAME
    return {"type": "integer", "minimum": 1, "maximum": MAX_ID}


# --------------------------------------------------------------------------------- answers


def record(properties: dict[str, Any]) -> dict[str, Any]:
    """Return the schema of an object that always holds exactly `properties`."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(properties),
        "properties": properties,
    }


def _kind(*kinds: str) -> dict[str, Any]:
    return {"type": list(kinds) if len(kinds) > 1 else kinds[0]}


INT, STR, BOOL, NUM = _kind("integer"), _kind("string"), _kind("boolean"), _kind("number")
OPT_INT, OPT_STR = _kind("integer", "null"), _kind("string", "null")
MOMENT_OUT = {"type": "string", "format": "date-time"}
OPT_MOMENT = {"type": ["string", "null"], "format": "date-time"}
COUNTS = {"type": "object", "additionalProperties": INT}


def _settings_answer() -> dict[str, Any]:
    from bot.shop_settings import ShopSettings

    shown: dict[str, Any] = {}
    for key in ShopSettings.model_fields:
        if key.endswith("_url"):
            shown[key] = OPT_STR
        elif key in ("languages", "support_days", "storefront_origins"):
            shown[key] = {"type": "array", "items": STR}
        elif key.endswith("_enabled") or key.startswith("birthday_survey"):
            shown[key] = BOOL
        elif key in ("code_pool_low_threshold", "frequency_cap", "birthday_days_before"):
            shown[key] = INT
        elif key == "support_chat_id":
            shown[key] = OPT_INT
        elif key in ("support_hours", "welcome_pool", "restock_pool", "winback_pool"):
            shown[key] = OPT_STR
        else:
            shown[key] = STR
    return record(shown)


def _shop_fields() -> dict[str, Any]:
    return {
        "id": INT,
        "name": STR,
        "platform": enum(PLATFORMS),
        "currency": STR,
        "country": OPT_STR,
        "locale": STR,
        "timezone": STR,
        "bot_token": {**OPT_STR, "description": "masked: the bot's id and …"},
        "bot_username": OPT_STR,
        "webhook_url": STR,
        "webhook_secret": {**OPT_STR, "description": "the key deliveries are signed with"},
        "settings": ref("ShopSettings"),
        "last_delivery_at": OPT_MOMENT,
        "uninstalled_at": OPT_MOMENT,
        "created_at": MOMENT_OUT,
    }


def _campaign_record() -> dict[str, Any]:
    from bot.models import CampaignStatus

    return {
        "id": INT,
        "shop_id": INT,
        "name": STR,
        "topic": STR,
        "status": enum([s.value for s in CampaignStatus]),
        "send_at": OPT_MOMENT,
        "local_time": OPT_STR,
        "started_at": OPT_MOMENT,
        "fanned_out_at": OPT_MOMENT,
        "created_at": MOMENT_OUT,
    }


TALLY = record(
    {
        "audience": INT,
        "holdout": INT,
        "sent": INT,
        "blocked": INT,
        "failed": INT,
        "skipped": INT,
        "skipped_by_reason": COUNTS,
        "pending": INT,
        "clicked": INT,
        "not_interested": INT,
        "orders": INT,
        "revenue": {"type": "string", "description": "a decimal amount in the shop's currency"},
        "conversion": NUM,
        "click_rate": NUM,
    }
)
DIFFERENCE = record(
    {
        "difference": NUM,
        "ci95": {"type": "array", "items": NUM, "minItems": 2, "maxItems": 2},
        "significant": BOOL,
    }
)
GROUP = record({"customers": INT, "order_rate": NUM, "revenue_per_customer": NUM})
UPLIFT = record(
    {
        "treated": GROUP,
        "holdout": GROUP,
        "order_rate": DIFFERENCE,
        "revenue_per_customer": DIFFERENCE,
        "incremental_orders": NUM,
        "incremental_revenue": NUM,
    }
)


def _answers() -> dict[str, Any]:
    """The answers' schemas, by name."""
    campaign = _campaign_record()
    tallies = {"type": "object", "additionalProperties": ref("Tally")}
    button = record({"text": STR, "url": OPT_STR})
    rendered = record(
        {
            "variant": STR,
            "step": INT,
            "locale": STR,
            "text_locale": OPT_STR,
            "text": OPT_STR,
            "image_url": OPT_STR,
            "buttons": {"type": "array", "items": {"type": "array", "items": button}},
        }
    )
    rows = {"type": "array", "items": {"type": "object"}}
    return {
        "ShopSettings": _settings_answer(),
        "Shop": record(_shop_fields()),
        "ShopAdded": record(
            {
                **_shop_fields(),
                "chosen": {"type": "object", "additionalProperties": STR},
                "notes": {"type": "array", "items": STR},
            }
        ),
        "CustomerSummary": record(
            {
                "id": INT,
                "name": OPT_STR,
                "email": OPT_STR,
                "phone": OPT_STR,
                "telegram_id": OPT_INT,
                "telegram_username": OPT_STR,
                "consent": STR,
                "redacted": BOOL,
            }
        ),
        "CustomerCard": record(
            {
                "shop_id": INT,
                "customer_id": INT,
                "redacted": BOOL,
                "profile": {"type": "object", "required": ["id", "tags"]},
                "consent": {"type": "object", "required": ["consent"]},
                "exclusions": {
                    "type": "array",
                    "items": record({"topic": STR, "since": OPT_STR, "message_id": OPT_INT}),
                },
                "codes": {
                    "type": "array",
                    "items": record(
                        {"pool": STR, "code": STR, "issued_at": OPT_STR, "message_id": OPT_INT}
                    ),
                },
                "orders": {
                    "type": "array",
                    "items": {"type": "object", "required": ["id", "status", "total"]},
                },
                "metrics": {"type": ["object", "null"]},
                "messages": {
                    "type": "array",
                    "items": {"type": "object", "required": ["id", "kind", "state"]},
                },
            }
        ),
        "CustomerExport": {
            "type": "object",
            "required": ["shop_id", "customer_id", "profile", "deliveries", "conversation_state"],
            "properties": {"shop_id": INT, "customer_id": INT, "profile": {"type": "object"}},
            "additionalProperties": rows,
            "description": "every stored row about the customer, by table",
        },
        "Erasure": record(
            {
                "shop_id": INT,
                "customer_ids": {"type": "array", "items": INT},
                "erased": COUNTS,
                "deliveries": {"type": "array", "items": INT},
            }
        ),
        "CodePool": record(
            {"pool": STR, "pattern": OPT_STR, "issued": INT, "available": OPT_INT, "low": BOOL}
        ),
        "SavedSegment": record(
            {"name": STR, "definition": {"type": "object"}, "updated_at": MOMENT_OUT}
        ),
        "AudiencePreview": record(
            {
                "count": INT,
                "by_locale": COUNTS,
                "by_stage": COUNTS,
                "sample": {
                    "type": "array",
                    "items": record({"id": INT, "name": OPT_STR, "locale": OPT_STR, "stage": STR}),
                },
            }
        ),
        "Campaign": record(campaign),
        "CampaignFile": record({**campaign, "file": {"type": "object"}}),
        "CampaignPreview": record(
            {
                **campaign,
                "default_locale": STR,
                "missing_translations": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": STR},
                },
                "audience": record(
                    {
                        "total": INT,
                        "holdout": INT,
                        "variants": COUNTS,
                        "locales": COUNTS,
                        "by_variant_and_locale": {
                            "type": "object",
                            "additionalProperties": COUNTS,
                        },
                    }
                ),
                "messages": {"type": "array", "items": rendered},
            }
        ),
        "CampaignSent": record(
            {
                **campaign,
                "audience": INT,
                "recipients": INT,
                "holdout": INT,
                "scheduled": INT,
                "stopped": OPT_STR,
                "already_sent": BOOL,
            }
        ),
        "CampaignChanged": record({**campaign, "rows": INT}),
        "Tally": TALLY,
        "CampaignReport": record(
            {
                **TALLY["properties"],
                "id": INT,
                "name": STR,
                "status": campaign["status"],
                "topic": STR,
                "started_at": OPT_MOMENT,
                "currency": STR,
                "variants": tallies,
                "locales": tallies,
                "steps": tallies,
                "uplift": {"anyOf": [UPLIFT, {"type": "null"}]},
                "variant_uplift": {"type": "object", "additionalProperties": UPLIFT},
                "winner": {
                    "anyOf": [
                        record({"variant": STR, "by": enum(["order_rate", "click_rate"])}),
                        {"type": "null"},
                    ]
                },
            }
        ),
        "LifecycleReport": record(
            {
                "shop_id": INT,
                "days": INT,
                "stages": COUNTS,
                "unreachable": COUNTS,
                "blocked": COUNTS,
                "moves": {"type": "object"},
            }
        ),
    }


def components() -> dict[str, Any]:
    """Return every named schema (bodies and answers), filling COMPONENTS once."""
    if not COMPONENTS:
        extra_root = {"reachable_only": {"type": "boolean"}}
        COMPONENTS.update(
            {
                "SegmentNode": {"anyOf": _nodes({})},
                "Segment": {"anyOf": _nodes(extra_root), "description": SEGMENT_DESCRIPTION},
                "Message": _message(False),
                "MessageWithCode": _message(True),
                "Messages": _messages(False),
                "MessagesWithCode": _messages(True),
                "CampaignFileBody": {
                    "anyOf": [_campaign(True), _campaign(False)],
                    "description": CAMPAIGN_DESCRIPTION,
                },
                "Currency": CURRENCY,
                "Country": COUNTRY,
                "Timezone": TIMEZONE,
                "ShopNew": _shop_add(),
                "ShopChange": _settings_body(),
                "CampaignStart": SEND,
                **_answers(),
            }
        )
    return COMPONENTS

"""What JSON Schema cannot say about the admin API's bodies, taught to Schemathesis's generator.

The document states these rules in words (bot/api/schemas.py); a generated body that breaks one
is answered 422, rightly, so it is not drawn as a valid body. tests/api/test_schemathesis.py
loads this module through SCHEMATHESIS_HOOKS.
"""

from __future__ import annotations

from typing import Any

import schemathesis


def _distinct_variant_names(body: Any) -> bool:
    variants = body.get("variants") if isinstance(body, dict) else None
    if not isinstance(variants, list):
        return True
    names = [v.get("name") for v in variants if isinstance(v, dict)]
    return len(names) == len(set(map(repr, names)))


def _ordered_settings(body: Any) -> bool:
    """Welcome steps each later than the one before; opening and closing hours that differ."""
    from bot.shop_settings import SettingError, apply_setting

    if not isinstance(body, dict):
        return True
    for key in ("welcome_steps", "support_hours"):
        if isinstance(body.get(key), str):
            try:
                apply_setting({}, key, body[key])
            except SettingError:
                return False
    return True


@schemathesis.hook
def filter_body(context: Any, body: Any) -> bool:
    """Drop bodies that break a rule the schema states only in words."""
    operation = context.operation
    if operation is None:
        return True
    if operation.method.upper() == "POST" and operation.path.endswith("/campaigns"):
        return _distinct_variant_names(body)
    if operation.method.upper() == "PATCH":
        return _ordered_settings(body)
    return True


def _formats() -> None:
    from hypothesis import strategies as st

    from bot.api.schemas import countries, currencies, timezones

    schemathesis.openapi.format("iana-timezone", st.sampled_from(timezones()))
    schemathesis.openapi.format("iso-4217", st.sampled_from(currencies()))
    schemathesis.openapi.format("iso-3166-alpha-2", st.sampled_from(countries()))


_formats()

"""A shop's token reaches nothing of another shop, through any route; the owner's reaches all.

The routes are read from the registry, so a route added later is tried too: its path
parameters are filled with the other shop's ids, and a route with a body needs a valid example
below (a 422 for a bad body must not stand in for the 404 a stranger gets).
"""

from __future__ import annotations

import re
from typing import Any

from bot.api import OPERATIONS, Operation

BODIES: dict[str, Any] = {
    "add_shop": {"platform": "generic", "name": "Elsewhere"},
    "change_shop": {"frequency_cap": 3, "quiet_hours_start": "22:00"},
    "save_segment": {"field": "locale", "op": "=", "value": "pl"},
    "preview_segment": {"field": "locale", "op": "=", "value": "pl"},
    "create_campaign": {
        "name": "Stolen",
        "segment": {"field": "locale", "op": "=", "value": "pl"},
        "topic": "sale",
        "messages": {"pl": {"text": "Cześć {first_name}"}},
    },
    "send_campaign": {},
}


def _path(op: Operation, shop: int, ids: dict[str, Any]) -> str:
    """Fill the route's parameters: the shop's id, and the other ids from `ids`."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name == "shop_id" or name in ids, f"{op.path}: give {name} a value in this test"
        return str(shop if name == "shop_id" else ids[name])

    return re.sub(r"\{(\w+)\}", value, op.path)


def _body(op: Operation) -> dict[str, Any]:
    if op.body is None:
        return {}
    name = op.handler.__name__
    assert name in BODIES, f"{op.method} {op.path}: give {name} a valid body in BODIES"
    return {"json": BODIES[name]}


async def _everything_of(world: Any, shop: int) -> dict[str, Any]:
    """Read all a shop holds, as its owner sees it."""
    seen: dict[str, Any] = {}
    base = f"/api/v1/shops/{shop}"
    for path in ("", "/customers", "/segments", "/campaigns", "/codes"):
        status, seen[path] = await world.call("GET", base + path)
        assert status == 200, path
    for customer in seen["/customers"]:
        _status, seen[f"customer {customer['id']}"] = await world.call(
            "GET", f"{base}/customers/{customer['id']}/export"
        )
    for campaign in seen["/campaigns"]:
        _status, seen[f"campaign {campaign['id']}"] = await world.call(
            "GET", f"{base}/campaigns/{campaign['id']}/report"
        )
    return seen


async def test_a_shop_token_reaches_nothing_of_another_shop(world):
    own, other = world.shops["own"], world.shops["other"]
    theirs = {
        "customer_id": other.customers[0],
        "campaign_id": other.campaigns[1],
        "name": other.segment,
    }
    before = await _everything_of(world, other.id)
    tried = 0
    for op in OPERATIONS:
        label = f"{op.method} {op.path}"
        if "{shop_id}" not in op.path:
            status, body = await world.call(op.method, op.path, who="own", **_body(op))
            if op.owner_only:
                assert status == 403, label
            else:
                assert status == 200 and {s["id"] for s in body} == {own.id}, label
            continue
        # the other shop's path, and the other shop's records under the token's own shop
        attempts = [_path(op, other.id, theirs)]
        if op.path.count("{") > 1 and not (op.method == "PUT" and "{name}" in op.path):
            attempts.append(_path(op, own.id, theirs))  # (PUT names a segment of its own)
        for path in attempts:
            status, body = await world.call(op.method, path, who="own", **_body(op))
            assert status == 404, f"{label} as {path}: {status} {body}"
            assert body["type"] == "urn:nudge:problem:not-found", label
            tried += 1
    assert tried >= len([op for op in OPERATIONS if "{shop_id}" in op.path])
    assert await _everything_of(world, other.id) == before


async def test_the_owner_token_reaches_every_shop(world):
    other = world.shops["other"]
    theirs = {
        "customer_id": other.customers[0],
        "campaign_id": other.campaigns[0],
        "name": "fresh",
    }
    for op in OPERATIONS:
        path = _path(op, other.id, theirs)
        status, body = await world.call(op.method, path, who="owner", **_body(op))
        assert status in (op.status, 409), f"{op.method} {path}: {status} {body}"

"""The admin API's operations. Each calls the service function its CLI command calls."""

from __future__ import annotations

import secrets
from typing import Any

from bot import campaign_service
from bot.api import Call, Problem, invalid, not_found, operation
from bot.campaigns import CampaignError, parse_local_time, parse_moment
from bot.db import transaction
from bot.segments import SegmentError

V1 = "/api/v1"
SHOP = V1 + "/shops/{shop_id}"
OBJECT = {"type": "object"}
LIST = {"type": "array", "items": {"type": "object"}}
SHOP_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "platform": {"type": "string", "enum": ["shopify", "woocommerce", "generic"]},
        "currency": {"type": "string"},
        "country": {"type": ["string", "null"]},
        "locale": {"type": "string"},
        "timezone": {"type": "string"},
        "bot_username": {"type": ["string", "null"]},
        "webhook_url": {"type": "string"},
        "webhook_secret": {"type": "string"},
        "settings": {"type": "object"},
        "last_delivery_at": {"type": ["string", "null"], "format": "date-time"},
    },
}


def _campaign_errors(error: CampaignError) -> Problem:
    message = str(error)
    return not_found(message) if message.startswith("no campaign ") else invalid(message)


# ------------------------------------------------------------------------------------ shops


@operation(
    "GET", V1 + "/shops", summary="List the shops this token may see", tag="shops", response=LIST
)
async def list_shops(call: Call) -> Any:
    from bot.shops import shop_record
    from bot.store.shops import list_shops as all_shops

    async with call.sessions() as session:
        shops = await all_shops(session=session)
    settings = call.services.settings
    return [shop_record(settings, s) for s in shops if call.principal.may_see(s.id)]  # type: ignore[arg-type]


@operation(
    "POST",
    V1 + "/shops",
    summary="Connect a store (as `nudge shop add`); the owner's token only",
    tag="shops",
    body={
        "type": "object",
        "required": ["platform", "name"],
        "properties": {
            "platform": {"type": "string", "enum": ["shopify", "woocommerce", "generic"]},
            "name": {"type": "string"},
            "bot_token": {"type": "string"},
            "currency": {"type": "string"},
            "country": {"type": "string"},
            "locale": {"type": "string"},
            "timezone": {"type": "string"},
            "webhook_secret": {"type": "string"},
        },
        "additionalProperties": False,
    },
    response=SHOP_SCHEMA,
    status=201,
    owner_only=True,
)
async def add_shop(call: Call) -> Any:
    from bot.shops import ShopProblem, ShopRequest, connect_shop, shop_record

    body = await call.json()
    keys = ("platform", "name", "bot_token", "currency", "country", "locale", "timezone")
    keys += ("webhook_secret",)
    if not isinstance(body, dict) or set(body) - set(keys):
        raise invalid(
            f"send an object with platform and name (and optionally {', '.join(keys[2:])})"
        )
    if not all(isinstance(body.get(k), str) for k in ("platform", "name")):
        raise invalid("platform and name are needed, as text")
    if any(v is not None and not isinstance(v, str) for v in body.values()):
        raise invalid("every value is text")
    try:
        connected = await connect_shop(
            call.sessions,
            ShopRequest(**body),
            api_base=call.services.settings.telegram_base,
            now=call.now(),
        )
    except ShopProblem as exc:
        raise invalid(str(exc)) from None
    return {
        **shop_record(call.services.settings, connected.shop),
        "chosen": connected.chosen,
        "notes": connected.notes,
    }


@operation(
    "GET", SHOP, summary="One shop, its settings and webhook", tag="shops", response=SHOP_SCHEMA
)
async def get_shop(call: Call) -> Any:
    from bot.shops import shop_record
    from bot.store.shops import get_shop as one

    async with call.sessions() as session:
        shop = await one(session=session, shop_id=call.shop_id)  # type: ignore[arg-type]
    return shop_record(call.services.settings, shop)


@operation(
    "PATCH",
    SHOP,
    summary="Change a shop's fields and settings, all or nothing (as `nudge shop set`)",
    tag="shops",
    body={
        "type": "object",
        "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
    },
    response=SHOP_SCHEMA,
)
async def change_shop(call: Call) -> Any:
    from bot.shop_settings import SettingError
    from bot.shops import ShopProblem
    from bot.shops import change_shop as change

    body = await call.json()
    if not isinstance(body, dict) or not body:
        raise invalid('send an object of keys and values, e.g. {"frequency_cap": 2}')
    changes = [
        (str(k), "" if v is None else str(v).lower() if isinstance(v, bool) else str(v))
        for k, v in body.items()
    ]
    try:
        await change(
            call.sessions,
            shop_id=call.shop_id,  # type: ignore[arg-type]
            changes=changes,
            api_base=call.services.settings.telegram_base,
        )
    except (SettingError, ShopProblem) as exc:
        raise invalid(str(exc)) from None
    return await get_shop(call)


@operation(
    "POST",
    SHOP + "/webhook-secret",
    summary="Rotate the webhook signing secret; the new one is in the answer",
    tag="shops",
    response=SHOP_SCHEMA,
)
async def rotate_secret(call: Call) -> Any:
    from bot.shops import change_shop as change

    await change(
        call.sessions,
        shop_id=call.shop_id,  # type: ignore[arg-type]
        changes=[("webhook_secret", secrets.token_urlsafe(32))],
        api_base=call.services.settings.telegram_base,
    )
    return await get_shop(call)


# -------------------------------------------------------------------------------- customers


@operation(
    "GET",
    SHOP + "/customers",
    summary="Find customers by name, e-mail, phone or Telegram id",
    tag="customers",
    query={
        "query": {"type": "string", "maxLength": 200, "pattern": "^[^\\x00-\\x1f]*$"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    response=LIST,
)
async def search(call: Call) -> Any:
    from bot.store.customer_card import customer_summary
    from bot.store.customers import BadQuery, search_customers
    from bot.store.shops import get_shop as one

    limit = call.query_int("limit", 50, 1, 1000)
    async with call.sessions() as session:
        shop = await one(session=session, shop_id=call.shop_id)  # type: ignore[arg-type]
        try:
            found = await search_customers(
                session=session,
                shop_id=shop.id,  # type: ignore[arg-type]
                query=call.request.query.get("query"),
                country=shop.country,
                limit=limit,
            )
        except BadQuery as exc:
            raise invalid(str(exc)) from None
    return [customer_summary(c) for c in found]


@operation(
    "GET",
    SHOP + "/customers/{customer_id}",
    summary="A customer's profile card",
    tag="customers",
    response=OBJECT,
)
async def customer(call: Call) -> Any:
    from bot.store.customer_card import customer_card

    customer_id = call.path_id("customer_id")
    async with call.sessions() as session:
        card = await customer_card(session=session, customer_id=customer_id, shop_id=call.shop_id)
    if card is None:
        raise not_found(f"no customer {customer_id}")
    return card


@operation(
    "GET",
    SHOP + "/customers/{customer_id}/export",
    summary="Everything stored about a customer (data subject access)",
    tag="customers",
    response=OBJECT,
)
async def export(call: Call) -> Any:
    from bot.store.privacy import export_customer

    customer_id = call.path_id("customer_id")
    async with call.sessions() as session:
        found = await export_customer(
            session=session,
            shop_id=call.shop_id,  # type: ignore[arg-type]
            customer_id=customer_id,
        )
    if found is None:
        raise not_found(f"no customer {customer_id}")
    return found


@operation(
    "DELETE",
    SHOP + "/customers/{customer_id}",
    summary="Erase a customer's personal data everywhere",
    tag="customers",
    response=OBJECT,
)
async def erase(call: Call) -> Any:
    from bot.models import Customer
    from bot.store.privacy import erase_customers

    customer_id = call.path_id("customer_id")
    async with transaction(call.sessions) as session:
        found = await session.get(Customer, customer_id)
        if found is None or found.shop_id != call.shop_id:
            raise not_found(f"no customer {customer_id}")
        erased = await erase_customers(
            session=session,
            shop_id=call.shop_id,  # type: ignore[arg-type]
            customer_ids=[customer_id],
            now=call.now(),
        )
    return erased.as_dict()


# ------------------------------------------------------------------------------------ codes


@operation(
    "GET",
    SHOP + "/codes",
    summary="Issued and available codes per pool",
    tag="codes",
    response=LIST,
)
async def codes(call: Call) -> Any:
    from bot.shop_settings import load_shop_settings
    from bot.store.codes import pool_status
    from bot.store.shops import get_shop as one

    async with call.sessions() as session:
        shop = await one(session=session, shop_id=call.shop_id)  # type: ignore[arg-type]
        pools = await pool_status(session=session, shop_id=call.shop_id)  # type: ignore[arg-type]
    threshold = load_shop_settings(shop.settings).code_pool_low_threshold
    return [
        {
            "pool": p.name,
            "pattern": p.pattern,
            "issued": p.issued,
            "available": p.available,
            "low": p.available is not None and p.available < threshold,
        }
        for p in pools
    ]


# --------------------------------------------------------------------------------- segments


def _segment(found: Any) -> dict[str, Any]:
    return {
        "name": found.name,
        "definition": found.definition,
        "updated_at": found.updated_at.isoformat(),
    }


@operation(
    "GET", SHOP + "/segments", summary="The shop's saved segments", tag="segments", response=LIST
)
async def segments(call: Call) -> Any:
    from bot.store.segments import list_segments

    async with call.sessions() as session:
        return [_segment(s) for s in await list_segments(session=session, shop_id=call.shop_id)]  # type: ignore[arg-type]


@operation(
    "PUT",
    SHOP + "/segments/{name}",
    summary="Save a segment under a name (its definition is the body)",
    tag="segments",
    body=OBJECT,
    response=OBJECT,
)
async def save_segment(call: Call) -> Any:
    from bot.store.segments import save_segment as save

    definition = await call.json()
    async with transaction(call.sessions) as session:
        try:
            saved = await save(
                session=session,
                shop_id=call.shop_id,  # type: ignore[arg-type]
                name=call.request.match_info["name"],
                definition=definition,
                now=call.now(),
            )
        except SegmentError as exc:
            raise invalid(str(exc)) from None
        return _segment(saved)


@operation(
    "DELETE",
    SHOP + "/segments/{name}",
    summary="Delete a saved segment",
    tag="segments",
    status=204,
)
async def delete_segment(call: Call) -> Any:
    from bot.store.segments import delete_segment as delete

    name = call.request.match_info["name"]
    async with transaction(call.sessions) as session:
        try:
            if not await delete(session=session, shop_id=call.shop_id, name=name):  # type: ignore[arg-type]
                raise not_found(f"no segment named {name!r}")
        except SegmentError as exc:
            raise Problem(409, "conflict", "The segment is in use", str(exc)) from None
    return None


@operation(
    "POST",
    SHOP + "/segments/preview",
    summary="Count who a definition holds now, by locale and stage, with a sample",
    tag="segments",
    body=OBJECT,
    response=OBJECT,
)
async def preview_segment(call: Call) -> Any:
    from bot.store.segments import preview_audience

    definition = await call.json()
    async with call.sessions() as session:
        try:
            found = await preview_audience(
                session=session,
                shop_id=call.shop_id,  # type: ignore[arg-type]
                definition=definition,
                now=call.now(),
            )
        except SegmentError as exc:
            raise invalid(str(exc)) from None
    return {
        "count": found.count,
        "by_locale": found.by_locale,
        "by_stage": found.by_stage,
        "sample": found.sample,
    }


# -------------------------------------------------------------------------------- campaigns


CAMPAIGN = SHOP + "/campaigns/{campaign_id}"


@operation(
    "POST",
    SHOP + "/campaigns",
    summary="Create a campaign from a campaign file (stored as a draft)",
    tag="campaigns",
    body=OBJECT,
    response=OBJECT,
    status=201,
)
async def create_campaign(call: Call) -> Any:
    raw = await call.json()
    try:
        return await campaign_service.create(
            call.sessions, shop_id=call.shop_id, raw=raw, now=call.now()
        )  # type: ignore[arg-type]
    except CampaignError as exc:
        raise _campaign_errors(exc) from None


@operation(
    "GET",
    SHOP + "/campaigns",
    summary="The shop's campaigns, newest first",
    tag="campaigns",
    response=LIST,
)
async def list_campaigns(call: Call) -> Any:
    return await campaign_service.listing(call.sessions, shop_id=call.shop_id)  # type: ignore[arg-type]


async def _campaign_call(call: Call, work: Any) -> Any:
    try:
        return await work(call.path_id("campaign_id"))
    except CampaignError as exc:
        raise _campaign_errors(exc) from None


@operation("GET", CAMPAIGN, summary="One campaign with its file", tag="campaigns", response=OBJECT)
async def get_campaign(call: Call) -> Any:
    return await _campaign_call(
        call,
        lambda cid: campaign_service.show(call.sessions, campaign_id=cid, shop_id=call.shop_id),
    )


@operation(
    "GET",
    CAMPAIGN + "/preview",
    summary="Each variant in each locale as customers will see it, missing texts, the audience",
    tag="campaigns",
    response=OBJECT,
)
async def preview_campaign(call: Call) -> Any:
    return await _campaign_call(
        call,
        lambda cid: campaign_service.preview(
            call.sessions, campaign_id=cid, now=call.now(), shop_id=call.shop_id
        ),
    )


@operation(
    "POST",
    CAMPAIGN + "/send",
    summary="Start a campaign: now, at a moment, or at a local time of day",
    tag="campaigns",
    body={
        "type": "object",
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "local_time": {"type": "string", "pattern": "^\\d{1,2}:\\d{2}$"},
        },
        "additionalProperties": False,
    },
    response=OBJECT,
)
async def send_campaign(call: Call) -> Any:
    body = await call.json() or {}
    if not isinstance(body, dict) or set(body) - {"at", "local_time"}:
        raise invalid('send {}, {"at": ISO8601} or {"local_time": "HH:MM"}')
    try:
        at = parse_moment(body["at"], "at") if body.get("at") else None
        local = (
            parse_local_time(body["local_time"], "local_time").strftime("%H:%M")
            if body.get("local_time")
            else None
        )
    except CampaignError as exc:
        raise invalid(str(exc)) from None
    if at is not None and local is not None:
        raise invalid("give either at or local_time, not both")
    return await _campaign_call(
        call,
        lambda cid: campaign_service.send(
            call.sessions,
            campaign_id=cid,
            now=call.services.clock.now,
            at=at,
            local_time=local,
            shop_id=call.shop_id,
        ),
    )


def _action(name: str, summary: str) -> None:
    @operation("POST", CAMPAIGN + "/" + name, summary=summary, tag="campaigns", response=OBJECT)
    async def act(call: Call) -> Any:
        return await _campaign_call(
            call,
            lambda cid: campaign_service.act(
                call.sessions,
                campaign_id=cid,
                action=name,
                now=call.services.clock.now,
                shop_id=call.shop_id,
            ),
        )


_action("pause", "Pause a campaign: nothing more goes out until it is resumed")
_action("resume", "Resume a paused campaign")
_action("cancel", "Cancel a campaign: nothing more of it goes out")


@operation(
    "GET",
    CAMPAIGN + "/report",
    summary="Sent, blocked, clicked, not interested, orders, revenue and uplift, per variant",
    tag="campaigns",
    response=OBJECT,
)
async def campaign_report(call: Call) -> Any:
    return await _campaign_call(
        call,
        lambda cid: campaign_service.report(
            call.sessions, campaign_id=cid, now=call.now(), shop_id=call.shop_id
        ),
    )


# ---------------------------------------------------------------------------------- reports


@operation(
    "GET",
    SHOP + "/reports/lifecycle",
    summary="Customers per lifecycle stage, the unreachable among them, and recent moves",
    tag="reports",
    query={"days": {"type": "integer", "minimum": 1, "maximum": 3650}},
    response=OBJECT,
)
async def lifecycle(call: Call) -> Any:
    from bot.lifecycle import lifecycle_report

    days = call.query_int("days", 30, 1, 3650)
    async with call.sessions() as session:
        found = await lifecycle_report(
            session=session, shop_id=call.shop_id, now=call.now(), days=days
        )  # type: ignore[arg-type]
    return found.as_dict()

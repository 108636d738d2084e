"""The admin API's operations. Each calls the service function its CLI command calls."""

from __future__ import annotations

import secrets
from typing import Any

from bot import campaign_service
from bot.api import Call, Problem, conflict, invalid, not_found, operation
from bot.api.schemas import SEARCH, ref
from bot.campaigns import CampaignError, parse_local_time, parse_moment
from bot.db import transaction
from bot.segments import SegmentError

V1 = "/api/v1"
SHOP = V1 + "/shops/{shop_id}"


def listing(name: str) -> dict[str, Any]:
    """Return the schema of a list of one component."""
    return {"type": "array", "items": ref(name)}


# Refusals of a valid body that come from the state it meets (another shop's bot, a saved
# segment that does not exist, the shop's languages), not from the body itself: 409.
STATE_REFUSALS = (
    "no saved segment named",
    "refers to itself",
    "already serves shop",
    "is not among the shop's languages",
    "was disconnected",
    "support_chat:",
)


def refusal(message: str) -> Problem:
    """Return 409 for a refusal by the current state, else 422."""
    if any(marker in message for marker in STATE_REFUSALS):
        return conflict(message)
    return invalid(message)


# ------------------------------------------------------------------------------------ shops


@operation(
    "GET",
    V1 + "/shops",
    summary="List the shops this token may see",
    tag="shops",
    response=listing("Shop"),
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
    body=ref("ShopNew"),
    response=ref("ShopAdded"),
    status=201,
    owner_only=True,
    conflicts=True,
)
async def add_shop(call: Call) -> Any:
    from bot.shops import ShopProblem, ShopRequest, connect_shop, shop_record

    try:
        connected = await connect_shop(
            call.sessions,
            ShopRequest(**call.body),
            api_base=call.services.settings.telegram_base,
            now=call.now(),
        )
    except ShopProblem as exc:
        raise refusal(str(exc)) from None
    return {
        **shop_record(call.services.settings, connected.shop),
        "chosen": connected.chosen,
        "notes": connected.notes,
    }


@operation(
    "GET", SHOP, summary="One shop, its settings and webhook", tag="shops", response=ref("Shop")
)
async def get_shop(call: Call) -> Any:
    from bot.shops import shop_record
    from bot.store.shops import get_shop as one

    async with call.sessions() as session:
        shop = await one(session=session, shop_id=call.shop_id)  # type: ignore[arg-type]
    return shop_record(call.services.settings, shop)


def _setting_text(value: Any) -> str:
    """Return a JSON value as `nudge shop set` takes it: null is "" (the default), 2.0 is "2"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@operation(
    "PATCH",
    SHOP,
    summary="Change a shop's fields and settings, all or nothing (as `nudge shop set`)",
    tag="shops",
    body=ref("ShopChange"),
    response=ref("Shop"),
    conflicts=True,
)
async def change_shop(call: Call) -> Any:
    from bot.shop_settings import SettingError
    from bot.shops import ShopProblem
    from bot.shops import change_shop as change

    changes = [(key, _setting_text(value)) for key, value in call.body.items()]
    try:
        await change(
            call.sessions,
            shop_id=call.shop_id,  # type: ignore[arg-type]
            changes=changes,
            api_base=call.services.settings.telegram_base,
        )
    except (SettingError, ShopProblem) as exc:
        raise refusal(str(exc)) from None
    return await get_shop(call)


@operation(
    "POST",
    SHOP + "/webhook-secret",
    summary="Rotate the webhook signing secret; the new one is in the answer",
    tag="shops",
    response=ref("Shop"),
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
        "query": SEARCH,
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    response=listing("CustomerSummary"),
)
async def search(call: Call) -> Any:
    from bot.store.customer_card import customer_summary
    from bot.store.customers import BadQuery, search_customers
    from bot.store.shops import get_shop as one

    limit = call.query_int("limit", 50)
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
    response=ref("CustomerCard"),
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
    response=ref("CustomerExport"),
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
    response=ref("Erasure"),
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
    response=listing("CodePool"),
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
    "GET",
    SHOP + "/segments",
    summary="The shop's saved segments",
    tag="segments",
    response=listing("SavedSegment"),
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
    body=ref("Segment"),
    response=ref("SavedSegment"),
    conflicts=True,
)
async def save_segment(call: Call) -> Any:
    from bot.store.segments import save_segment as save

    async with transaction(call.sessions) as session:
        try:
            saved = await save(
                session=session,
                shop_id=call.shop_id,  # type: ignore[arg-type]
                name=call.request.match_info["name"],
                definition=call.body,
                now=call.now(),
            )
        except SegmentError as exc:
            raise refusal(str(exc)) from None
        return _segment(saved)


@operation(
    "DELETE",
    SHOP + "/segments/{name}",
    summary="Delete a saved segment (409 while another one refers to it)",
    tag="segments",
    status=204,
    conflicts=True,
)
async def delete_segment(call: Call) -> Any:
    from bot.store.segments import delete_segment as delete

    name = call.request.match_info["name"]
    async with transaction(call.sessions) as session:
        try:
            if not await delete(session=session, shop_id=call.shop_id, name=name):  # type: ignore[arg-type]
                raise not_found(f"no segment named {name!r}")
        except SegmentError as exc:
            raise conflict(str(exc)) from None
    return None


@operation(
    "POST",
    SHOP + "/segments/preview",
    summary="Count who a definition holds now, by locale and stage, with a sample",
    tag="segments",
    body=ref("Segment"),
    response=ref("AudiencePreview"),
    conflicts=True,
)
async def preview_segment(call: Call) -> Any:
    from bot.store.segments import preview_audience

    async with call.sessions() as session:
        try:
            found = await preview_audience(
                session=session,
                shop_id=call.shop_id,  # type: ignore[arg-type]
                definition=call.body,
                now=call.now(),
            )
        except SegmentError as exc:
            raise refusal(str(exc)) from None
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
    body=ref("CampaignFileBody"),
    response=ref("Campaign"),
    status=201,
    conflicts=True,
)
async def create_campaign(call: Call) -> Any:
    try:
        return await campaign_service.create(
            call.sessions,
            shop_id=call.shop_id,  # type: ignore[arg-type]
            raw=call.body,
            now=call.now(),
        )
    except CampaignError as exc:
        raise refusal(str(exc)) from None


@operation(
    "GET",
    SHOP + "/campaigns",
    summary="The shop's campaigns, newest first",
    tag="campaigns",
    response=listing("Campaign"),
)
async def list_campaigns(call: Call) -> Any:
    return await campaign_service.listing(call.sessions, shop_id=call.shop_id)  # type: ignore[arg-type]


async def _campaign_call(call: Call, work: Any) -> Any:
    """Run work on the path's campaign: not the shop's is a 404, a refusal by its state a 409."""
    try:
        return await work(call.path_id("campaign_id"))
    except CampaignError as exc:
        message = str(exc)
        if message.startswith("no campaign "):
            raise not_found(message) from None
        raise conflict(message) from None


@operation(
    "GET",
    CAMPAIGN,
    summary="One campaign with its file",
    tag="campaigns",
    response=ref("CampaignFile"),
)
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
    response=ref("CampaignPreview"),
    conflicts=True,
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
    body=ref("CampaignStart"),
    response=ref("CampaignSent"),
    conflicts=True,
)
async def send_campaign(call: Call) -> Any:
    body = call.body
    try:
        at = parse_moment(body["at"], "at") if body.get("at") else None
        local = (
            parse_local_time(body["local_time"], "local_time").strftime("%H:%M")
            if body.get("local_time")
            else None
        )
    except CampaignError as exc:
        raise invalid(str(exc)) from None
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
    @operation(
        "POST",
        CAMPAIGN + "/" + name,
        summary=summary,
        tag="campaigns",
        response=ref("CampaignChanged"),
        conflicts=True,
    )
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
    response=ref("CampaignReport"),
    conflicts=True,
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
    response=ref("LifecycleReport"),
)
async def lifecycle(call: Call) -> Any:
    from bot.lifecycle import lifecycle_report

    days = call.query_int("days", 30)
    async with call.sessions() as session:
        found = await lifecycle_report(
            session=session, shop_id=call.shop_id, now=call.now(), days=days
        )  # type: ignore[arg-type]
    return found.as_dict()

"""The console's pages: login, shops (connect a store), customers, campaigns.

Pages are thin: they call the functions the CLI and the admin API call, and render them with
Jinja2 in the reader's language (en, ru, uk, pl from the same catalogs as the bot).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from bot.console import session as sessions_
from bot.db import transaction
from bot.i18n import SUPPORTED_LOCALES, locale_scope, normalize_locale
from bot.store.tokens import Principal, authenticate

routes = web.RouteTableDef()
LANG_COOKIE = "nudge_lang"
STALE = timedelta(hours=24)  # no delivery for this long turns a shop's light red


def _services(request: web.Request) -> Any:
    from bot.web.keys import SERVICES

    return request.app[SERVICES]


def reader_locale(request: web.Request) -> str:
    """Return the console's language: ?lang=, the cookie, the browser's, else English."""
    for candidate in (request.query.get("lang"), request.cookies.get(LANG_COOKIE)):
        found = normalize_locale(candidate)
        if found:
            return found
    for part in request.headers.get("Accept-Language", "").split(","):
        found = normalize_locale(part.split(";")[0].strip())
        if found:
            return found
    return "en"


def render(
    request: web.Request, template: str, context: dict[str, Any], **kw: Any
) -> web.Response:
    """Render a page in the reader's language."""
    locale = reader_locale(request)
    with locale_scope(locale):
        response = aiohttp_jinja2.render_template(
            template,
            request,
            {
                **context,
                "locale": locale,
                "locales": SUPPORTED_LOCALES,
                "csrf": sessions_.csrf_value(request),
                "path": request.path,
            },
            **kw,
        )
    if request.query.get("lang") and normalize_locale(request.query["lang"]):
        response.set_cookie(
            LANG_COOKIE, locale, path="/console", samesite="Strict", max_age=31536000
        )
    response.headers["Content-Language"] = locale
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'"
    )
    return response


async def _who(request: web.Request) -> Principal:
    principal = await sessions_.current(request)
    if principal is None:
        raise web.HTTPSeeOther("/console/login")
    return principal


async def _shop(request: web.Request, principal: Principal) -> Any:
    """Return the shop named in the path, or 404 (also for another shop's token)."""
    from bot.models import Shop

    shop_id = _path_id(request, "shop_id")
    if not principal.may_see(shop_id):
        raise web.HTTPNotFound()
    async with _services(request).sessions() as session:
        shop = await session.get(Shop, shop_id)
    if shop is None:
        raise web.HTTPNotFound()
    return shop


def _path_id(request: web.Request, name: str) -> int:
    """Return a numeric path part, or 404 (a non-number names nothing)."""
    raw = request.match_info.get(name, "")
    if not raw.isdigit() or len(raw) > 18:
        raise web.HTTPNotFound()
    return int(raw)


async def _writer(request: web.Request) -> Principal:
    """Return who is calling, refusing a read-only token (403) before anything changes."""
    principal = await _who(request)
    if principal.read_only:
        raise web.HTTPForbidden(text="read_only")  # error.html says it in words
    return principal


async def _form(request: web.Request) -> Any:
    form = await request.post()
    sessions_.check(sessions_.csrf_value(request), form.get("csrf"))
    return form


# ------------------------------------------------------------------------------- login


@routes.get("/console")
@routes.get("/console/")
async def home(request: web.Request) -> web.Response:
    await _who(request)
    raise web.HTTPSeeOther("/console/shops")


def _login_page(request: web.Request, *, error: bool = False) -> web.Response:
    nonce = sessions_.login_nonce()
    response = render(
        request,
        "login.html",
        {"login_csrf": sessions_.login_value(request, nonce), "error": error},
        status=401 if error else 200,
    )
    sessions_.set_login_nonce(request, response, nonce)
    return response


@routes.get("/console/login")
async def login_page(request: web.Request) -> web.Response:
    return _login_page(request)


@routes.post("/console/login")
async def login(request: web.Request) -> web.Response:
    form = await request.post()
    sessions_.check(sessions_.login_value(request), form.get("csrf"))
    services = _services(request)
    token = str(form.get("token", "")).strip()
    async with transaction(services.sessions) as session:
        principal = await authenticate(session=session, token=token, now=services.clock.now())
    if principal is None:
        return _login_page(request, error=True)
    response = web.HTTPSeeOther("/console/shops")
    sessions_.start(request, response, principal.token_id)
    raise response


@routes.post("/console/logout")
async def logout(request: web.Request) -> web.Response:
    await _form(request)
    response = web.HTTPSeeOther("/console/login")
    sessions_.end(response)
    raise response


# ------------------------------------------------------------------------------- shops


def delivery_health(shop: Any, now: Any) -> str:
    """Say how a shop's webhooks are doing: ok, stale (stopped), failing (bad signatures), none."""
    failure = getattr(shop, "last_signature_failure_at", None)
    last = shop.last_delivery_at
    if failure is not None and (last is None or failure > last):
        return "failing"
    if last is None:
        return "none"
    return "stale" if now - last > STALE else "ok"


@routes.get("/console/shops")
async def shops(request: web.Request) -> web.Response:
    from bot.store.shops import list_shops

    principal = await _who(request)
    services = _services(request)
    async with services.sessions() as session:
        found = [s for s in await list_shops(session=session) if principal.may_see(s.id)]  # type: ignore[arg-type]
    now = services.clock.now()
    rows = [{"shop": s, "health": delivery_health(s, now)} for s in found]
    return render(request, "shops.html", {"rows": rows, "principal": principal})


SHOP_FIELDS = ("platform", "name", "country", "currency", "locale", "timezone", "bot_token")


def _new_shop_page(request: web.Request, form: Any, *, error: str | None = None) -> web.Response:
    """Render the connect-a-store form (again, with the refused field's reason, 422)."""
    from integrations import ADAPTERS

    platforms = [
        {"name": name, "topics": [*a.subscribe_topics, *getattr(a, "compliance_topics", ())]}
        for name, a in ADAPTERS.items()
    ]
    return render(
        request,
        "shop_new.html",
        {"form": form, "platforms": platforms, "error": error},
        status=422 if error else 200,
    )


async def _owner(request: web.Request) -> Principal:
    """Return the owner's principal; a shop's token may not add shops (403, as in the API)."""
    from bot.store.tokens import OWNER

    principal = await _writer(request)
    if principal.kind != OWNER:
        raise web.HTTPForbidden(text="owner_only")  # error.html says it in words
    return principal


@routes.get("/console/shops/new")
async def shop_new(request: web.Request) -> web.Response:
    await _owner(request)
    return _new_shop_page(request, {"platform": "shopify"})


@routes.post("/console/shops/new")
async def shop_new_post(request: web.Request) -> web.Response:
    """Connect a store (as `nudge shop add`): check every field and the bot, then show it."""
    from bot.shops import ShopProblem, ShopRequest, connect_shop

    await _owner(request)
    form = await _form(request)
    services = _services(request)
    given = {key: str(form.get(key, "")).strip() for key in SHOP_FIELDS}
    optional = {key: value or None for key, value in given.items()}
    try:
        connected = await connect_shop(
            services.sessions,
            ShopRequest(**{**optional, "platform": given["platform"], "name": given["name"]}),
            api_base=services.settings.telegram_base,
            now=services.clock.now(),
        )
    except ShopProblem as exc:
        return _new_shop_page(request, given, error=str(exc))
    raise web.HTTPSeeOther(f"/console/shops/{connected.shop.id}?saved=created")


def _shop_page(
    request: web.Request, principal: Principal, shop: Any, *, error: str | None = None
) -> web.Response:
    """Render the connect-a-store page (with a refused change's reason, 422)."""
    from bot.shops import shop_record
    from integrations import ADAPTERS

    services = _services(request)
    adapter = ADAPTERS[shop.platform]
    return render(
        request,
        "shop.html",
        {
            "shop": shop,
            "record": shop_record(services.settings, shop),
            "topics": [*adapter.subscribe_topics, *getattr(adapter, "compliance_topics", ())],
            "health": delivery_health(shop, services.clock.now()),
            "public": services.settings.public_base,
            "principal": principal,
            "message": None if error else request.query.get("saved"),
            "error": error,
        },
        status=422 if error else 200,
    )


@routes.get("/console/shops/{shop_id}")
async def shop_page(request: web.Request) -> web.Response:
    principal = await _who(request)
    return _shop_page(request, principal, await _shop(request, principal))


@routes.post("/console/shops/{shop_id}/bot")
async def connect_bot(request: web.Request) -> web.Response:
    """Check a bot token live with getMe and connect it (as `nudge shop set ID bot_token=…`)."""
    from bot.shop_settings import SettingError
    from bot.shops import ShopProblem, change_shop
    from bot.store.shops import ShopNotFound

    principal = await _writer(request)
    shop = await _shop(request, principal)
    form = await _form(request)
    services = _services(request)
    try:
        await change_shop(
            services.sessions,
            shop_id=shop.id,
            changes=[("bot_token", str(form.get("bot_token", "")).strip())],
            api_base=services.settings.telegram_base,
        )
    except (SettingError, ShopProblem, ShopNotFound) as exc:
        return _shop_page(request, principal, shop, error=str(exc))
    raise web.HTTPSeeOther(f"/console/shops/{shop.id}?saved=bot")


# --------------------------------------------------------------------------- customers


@routes.get("/console/shops/{shop_id}/customers")
async def customers(request: web.Request) -> web.Response:
    from bot.store.customer_card import customer_summary
    from bot.store.customers import BadQuery, search_customers

    principal = await _who(request)
    shop = await _shop(request, principal)
    query = request.query.get("q", "").strip() or None
    error = None
    found: list[Any] = []
    async with _services(request).sessions() as session:
        try:
            found = await search_customers(
                session=session, shop_id=shop.id, query=query, country=shop.country, limit=100
            )
        except BadQuery as exc:
            error = str(exc)
    rows = [customer_summary(c) for c in found]
    return render(
        request, "customers.html", {"shop": shop, "rows": rows, "q": query or "", "error": error}
    )


@routes.get("/console/shops/{shop_id}/customers/{customer_id}")
async def customer(request: web.Request) -> web.Response:
    from bot.store.customer_card import customer_card
    from bot.store.customer_history import customer_history

    principal = await _who(request)
    shop = await _shop(request, principal)
    raw = str(_path_id(request, "customer_id"))
    async with _services(request).sessions() as session:
        card = await customer_card(session=session, customer_id=int(raw), shop_id=shop.id)
        if card is None:
            raise web.HTTPNotFound()
        history = await customer_history(session=session, shop_id=shop.id, customer_id=int(raw))
    confirm = request.query.get("confirm") == "missing"
    with locale_scope(reader_locale(request)):
        flows = flow_labels()
    return render(
        request,
        "customer.html",
        {
            "shop": shop,
            "card": card,
            "history": history,
            "flows": flows,
            "request_confirm": confirm,
        },
    )


# --------------------------------------------------------------------------- campaigns


def progress_of(numbers: dict[str, int] | None) -> dict[str, Any]:
    """Turn a campaign's counts (store.progress) into what its progress bar shows."""
    numbers = numbers or {"messages": 0, "pending": 0, "clicked": 0, "orders": 0}
    done = numbers["messages"] - numbers["pending"]
    total = numbers["messages"]
    return {
        "audience": total,
        "done": done,
        "percent": round(100 * done / total) if total else 0,
        "numbers": numbers,
    }


@routes.get("/console/shops/{shop_id}/campaigns")
async def campaigns(request: web.Request) -> web.Response:
    from bot import campaign_service

    principal = await _who(request)
    shop = await _shop(request, principal)
    services = _services(request)
    listed = await campaign_service.listing(services.sessions, shop_id=shop.id)
    progress = await campaign_service.progress(services.sessions, shop_id=shop.id)
    rows = [{**item, **progress_of(progress.get(item["id"]))} for item in listed]
    return render(request, "campaigns.html", {"shop": shop, "rows": rows})


@routes.get("/console/shops/{shop_id}/campaigns/{campaign_id:\\d+}")
async def campaign(request: web.Request) -> web.Response:
    """A campaign: each locale as a Telegram-like bubble, missing texts, numbers, funnel."""
    from markupsafe import Markup

    from bot import campaign_service
    from bot.campaigns import CampaignError, funnel_svg
    from bot.store.campaigns import progress_in

    principal = await _who(request)
    shop = await _shop(request, principal)
    services = _services(request)
    campaign_id = _path_id(request, "campaign_id")
    try:
        shown = await campaign_service.preview(
            services.sessions, campaign_id=campaign_id, now=services.clock.now(), shop_id=shop.id
        )
        numbers = await campaign_service.report(
            services.sessions, campaign_id=campaign_id, now=services.clock.now(), shop_id=shop.id
        )
    except CampaignError:
        raise web.HTTPNotFound() from None
    return render(
        request,
        "campaign.html",
        {
            "shop": shop,
            "campaign": shown,
            "numbers": numbers,
            "funnel": Markup(funnel_svg(numbers, funnel_words(reader_locale(request)))),
            "progress": progress_of(progress_in(numbers)),  # not every campaign's progress
            "principal": principal,
            "error": request.query.get("error"),
        },
    )


def funnel_words(locale: str) -> dict[str, str]:
    """The funnel chart's words in the reader's language (the chart escapes every text)."""
    from bot.i18n import _

    with locale_scope(locale):
        return {
            "title": _("Campaign {id}: {name}"),
            "variant": _("Variant {name}"),
            "holdout": _("Holdout group"),
            "audience": _("Audience"),
            "sent": _("Sent"),
            "clicked": _("Clicked"),
            "orders": _("Orders"),
        }


@routes.get("/console/shops/{shop_id}/campaigns/{campaign_id:\\d+}/progress")
async def campaign_progress(request: web.Request) -> web.Response:
    """The campaign page's live progress bar (JSON; the page shows the same without script)."""
    from bot import campaign_service
    from bot.campaigns import CampaignError
    from bot.i18n import _

    principal = await _who(request)
    shop = await _shop(request, principal)
    services = _services(request)
    campaign_id = _path_id(request, "campaign_id")
    try:
        shown = await campaign_service.show(
            services.sessions, campaign_id=campaign_id, shop_id=shop.id
        )
    except CampaignError:
        raise web.HTTPNotFound() from None
    progress = await campaign_service.progress(
        services.sessions, shop_id=shop.id, campaign_id=campaign_id
    )  # polled every second while sending: this campaign's rows only
    bar = progress_of(progress.get(campaign_id))
    with locale_scope(reader_locale(request)):
        text = _("{done} of {total} messages out").format(done=bar["done"], total=bar["audience"])
    return web.json_response(
        {"status": shown["status"], **bar, "text": text},
        headers={"Cache-Control": "no-store"},
    )


@routes.post(
    "/console/shops/{shop_id}/campaigns/{campaign_id:\\d+}/{action:send|pause|resume|cancel}"
)
async def campaign_action(request: web.Request) -> web.Response:
    """Send, pause, resume or cancel a campaign (as `nudge campaign …`)."""
    from urllib.parse import quote

    from bot import campaign_service
    from bot.campaigns import CampaignError

    principal = await _writer(request)
    shop = await _shop(request, principal)
    await _form(request)
    services = _services(request)
    campaign_id = _path_id(request, "campaign_id")
    action = request.match_info["action"]
    target = f"/console/shops/{shop.id}/campaigns/{campaign_id}"
    try:
        if action == "send":
            await campaign_service.send(
                services.sessions, campaign_id=campaign_id, now=services.clock.now, shop_id=shop.id
            )
        else:
            await campaign_service.act(
                services.sessions,
                campaign_id=campaign_id,
                action=action,
                now=services.clock.now,
                shop_id=shop.id,
            )
    except CampaignError as exc:
        if str(exc).startswith("no campaign "):
            raise web.HTTPNotFound() from None
        raise web.HTTPSeeOther(f"{target}?error={quote(str(exc))}") from None
    raise web.HTTPSeeOther(target)


@routes.get("/console/shops/{shop_id}/customers/{customer_id}/export")
async def customer_export(request: web.Request) -> web.Response:
    """Download everything stored about a customer as JSON."""
    import json

    from bot.store.privacy import export_customer

    principal = await _who(request)
    shop = await _shop(request, principal)
    raw = str(_path_id(request, "customer_id"))
    async with _services(request).sessions() as session:
        found = await export_customer(session=session, shop_id=shop.id, customer_id=int(raw))
    if found is None:
        raise web.HTTPNotFound()
    return web.Response(
        text=json.dumps(found, ensure_ascii=False, indent=2, default=str),
        content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="customer-{raw}.json"'},
    )


@routes.post("/console/shops/{shop_id}/customers/{customer_id}/erase")
async def customer_erase(request: web.Request) -> web.Response:
    """Erase a customer after the owner typed ERASE to confirm."""
    from bot.models import Customer
    from bot.store.privacy import erase_customers

    principal = await _writer(request)
    shop = await _shop(request, principal)
    form = await _form(request)
    raw = str(_path_id(request, "customer_id"))
    page = f"/console/shops/{shop.id}/customers/{raw}"
    if str(form.get("confirm", "")).strip() != "ERASE":
        raise web.HTTPSeeOther(page + "?confirm=missing")
    services = _services(request)
    async with transaction(services.sessions) as session:
        found = await session.get(Customer, int(raw))
        if found is None or found.shop_id != shop.id:
            raise web.HTTPNotFound()
        await erase_customers(
            session=session, shop_id=shop.id, customer_ids=[int(raw)], now=services.clock.now()
        )
    raise web.HTTPSeeOther(page)


@routes.get("/console/shops/{shop_id}/reports")
async def reports(request: web.Request) -> web.Response:
    """Lifecycle stages (chart), each flow's messages with skip reasons, and the NPS trend."""
    from zoneinfo import ZoneInfo

    from markupsafe import Markup

    from bot.i18n import _
    from bot.lifecycle import lifecycle_report, lifecycle_svg
    from bot.store.flow_history import flow_history, flow_history_svg, nps_trend_svg
    from bot.store.reports import flow_reports
    from bot.store.surveys import nps_scores
    from bot.surveys import nps_summary

    principal = await _who(request)
    shop = await _shop(request, principal)
    services = _services(request)
    async with services.sessions() as session:
        found = await lifecycle_report(session=session, shop_id=shop.id, now=services.clock.now())
        flows = [
            (flow, report.as_dict())
            for flow, report in (await flow_reports(session=session, shop_id=shop.id)).items()
        ]
        answers = await nps_scores(session=session, shop_id=shop.id)
        history = await flow_history(session=session, shop_id=shop.id, now=services.clock.now())
    try:
        zone = ZoneInfo(shop.timezone)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    nps = nps_summary(answers, zone)
    with locale_scope(reader_locale(request)):
        labels = flow_labels()
        over_time = flow_history_svg(history, labels, _("week of {day}"))
        chart = lifecycle_svg(
            found,
            {
                "title": _("Customers by stage"),
                "unreachable": _("{count} unreachable"),
                "blocked": _("{count} blocked the bot"),
            },
            stage_labels(),
        )
    return render(
        request,
        "reports.html",
        {
            "shop": shop,
            "lifecycle": found.as_dict(),
            "chart": Markup(chart),  # drawn by us, every text in it escaped
            "flows": flows,
            "labels": labels,
            "history": Markup(over_time),  # drawn by us, every text in it escaped
            "nps": nps,
            "nps_chart": Markup(nps_trend_svg(nps["by_month"])),  # every text in it escaped
        },
    )


def stage_labels() -> dict[str, str]:
    """Name each lifecycle stage as a shop owner would, in the current language."""
    from bot.i18n import _

    return {
        "prospect": _("No order yet"),
        "new": _("New: one order"),
        "active": _("Active"),
        "at_risk": _("At risk"),
        "lapsed": _("Lapsed"),
    }


def flow_labels() -> dict[str, str]:
    """Name each flow as a shop owner would, in the current language."""
    from bot.i18n import _

    return {
        "birthday": _("Birthday greetings"),
        "campaign": _("Campaigns"),
        "cart": _("Abandoned carts"),
        "nps": _("NPS survey"),
        "post_purchase": _("After a purchase"),
        "support": _("Support"),
        "survey": _("Surveys"),
        "welcome": _("Welcome series"),
        "winback": _("Win-back"),
    }


# ------------------------------------------------------------------ the campaign editor

BUILDER_ROWS = 5


def _value(op: str, raw: str) -> Any:
    """Read a builder value: a list for in/not_in, numbers and yes/no as such, else text."""
    import json

    text = raw.strip()
    if op in ("in", "not_in"):
        return [_value("=", part) for part in text.split(",") if part.strip()]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return (
            json.loads(text) if text and text.lstrip("-").replace(".", "", 1).isdigit() else text
        )
    except ValueError:
        return text


def builder_definition(form: Any) -> dict[str, Any] | str:
    """Turn the editor's segment rows (or a saved segment's name) into a definition."""
    saved = str(form.get("segment_name", "")).strip()
    if saved:
        return saved
    conditions = []
    for i in range(BUILDER_ROWS):
        name, op = str(form.get(f"field{i}", "")), str(form.get(f"op{i}", ""))
        if not name:
            continue
        conditions.append(
            {"field": name, "op": op, "value": _value(op, str(form.get(f"value{i}", "")))}
        )
    return {"any" if form.get("match") == "any" else "all": conditions}


def countable(definition: dict[str, Any] | str) -> dict[str, Any]:
    """Return a definition to count: a saved segment's name becomes membership of it."""
    from bot.segments import member_of

    return member_of(definition) if isinstance(definition, str) else definition


def _field(form: Any, name: str) -> str:
    return str(form.get(name, "")).strip()


def _locale_messages(form: Any, offered: Any, prefix: str, buttons: list[Any]) -> dict[str, Any]:
    """Read one message per locale from the fields `{prefix}text_{locale}` (and image)."""
    messages = {}
    for locale in offered:
        text = _field(form, f"{prefix}text_{locale}")
        if not text:
            continue
        message: dict[str, Any] = {"text": text}
        image = _field(form, f"{prefix}image_{locale}")
        if image:
            message["image_url"] = image
        if buttons:
            message["buttons"] = buttons
        messages[locale] = message
    return messages


def _send_at(form: Any, zone_name: str) -> str | None:
    """Read the editor's send time (a local date and time in the shop's zone) as ISO 8601."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from bot.campaigns import CampaignError

    raw = _field(form, "send_at")
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise CampaignError(f"schedule.at: not a date and time: {raw[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone_name))
    return moment.isoformat()


def editor_campaign(form: Any, offered: Any, zone_name: str = "UTC") -> dict[str, Any]:
    """Turn the editor's form into a campaign file (checked by parse_campaign like any other).

    The editor offers what most campaigns need: one message per language, or two variants (A
    and B, with B's share), a follow-up for those who did not click, and a send time. Anything
    more (up to eight variants, several buttons) goes through the campaign file or the API.
    """
    from bot.campaigns import CampaignError

    label, url = _field(form, "button_text"), _field(form, "button_url")
    buttons = [{"text": label, "url": url}] if label or url else []
    first = _locale_messages(form, offered, "", buttons)
    second = _locale_messages(form, offered, "b_", buttons)
    raw: dict[str, Any] = {
        "name": str(form.get("name", "")),
        "segment": builder_definition(form),
        "topic": str(form.get("topic", "")),
    }
    if second:
        share = _value("=", _field(form, "b_percent") or "50")
        if isinstance(share, bool) or not isinstance(share, int | float) or not 1 <= share <= 99:
            raise CampaignError("variants: B's share is a number from 1 to 99 (%)")
        raw["variants"] = [
            {"name": "A", "weight": round(100 - share), "messages": first},
            {"name": "B", "weight": round(share), "messages": second},
        ]
    else:
        raw["messages"] = first
    holdout = _field(form, "holdout_percent")
    if holdout:
        raw["holdout_percent"] = _value("=", holdout)
    pool = _field(form, "pool")
    if pool:
        raw["pool"] = pool
    local, at = _field(form, "local_time"), _send_at(form, zone_name)
    if local and at:
        raise CampaignError("schedule: give a send time or a local time of day, not both")
    if local:
        raw["schedule"] = {"local_time": local}
    elif at:
        raw["schedule"] = {"at": at}
    after = _field(form, "follow_up_after")
    later = _locale_messages(form, offered, "f_", [])
    if after or later:
        follow_up: dict[str, Any] = {"after": after or "24h", "messages": later}
        if _field(form, "follow_up_pool"):
            follow_up["pool"] = _field(form, "follow_up_pool")
        raw["follow_up"] = follow_up
    return raw


async def _editor(request: web.Request, shop: Any, form: Any, **extra: Any) -> web.Response:
    from bot.i18n import offered_locales
    from bot.segments import FIELDS, OPERATORS
    from bot.shop_settings import load_shop_settings
    from bot.store.codes import pool_status
    from bot.store.segments import list_segments

    async with _services(request).sessions() as session:
        saved = [s.name for s in await list_segments(session=session, shop_id=shop.id)]
        pools = [p.name for p in await pool_status(session=session, shop_id=shop.id)]
    return render(
        request,
        "campaign_new.html",
        {
            "shop": shop,
            "form": form,
            "fields": list(FIELDS),
            "operators": OPERATORS,
            "rows": range(BUILDER_ROWS),
            "saved": saved,
            "pools": pools,
            "offered": offered_locales(load_shop_settings(shop.settings).languages),
            "count": None,
            "shown": None,
            "error": None,
            **extra,
        },
        status=422 if extra.get("error") else 200,
    )


@routes.get("/console/shops/{shop_id}/campaigns/new")
async def campaign_new(request: web.Request) -> web.Response:
    principal = await _who(request)
    shop = await _shop(request, principal)
    return await _editor(request, shop, {})


@routes.post("/console/shops/{shop_id}/campaigns/new")
async def campaign_new_post(request: web.Request) -> web.Response:
    """Count the audience, preview, or create the draft, from the editor's form."""
    from bot import campaign_service
    from bot.campaigns import CampaignError, parse_campaign
    from bot.i18n import offered_locales
    from bot.segments import SegmentError
    from bot.shop_settings import load_shop_settings
    from bot.store.segments import count_audience, saved_definitions

    principal = await _writer(request)
    shop = await _shop(request, principal)
    form = await _form(request)
    services = _services(request)
    offered = offered_locales(load_shop_settings(shop.settings).languages)
    intent = str(form.get("intent", "count"))
    try:
        raw = editor_campaign(form, offered, shop.timezone)
        async with services.sessions() as session:
            saved = await saved_definitions(session=session, shop_id=shop.id)
            if isinstance(raw["segment"], str) and raw["segment"] not in saved:
                raise CampaignError(f"segment: no saved segment named {raw['segment']!r}")
            definition = countable(raw["segment"])
            count = await count_audience(
                session=session, shop_id=shop.id, definition=definition, now=services.clock.now()
            )
        if intent == "count":
            return await _editor(request, shop, form, count=count)
        parse_campaign(raw, saved)
        if intent == "create":
            created = await campaign_service.create(
                services.sessions, shop_id=shop.id, raw=raw, now=services.clock.now()
            )
            raise web.HTTPSeeOther(f"/console/shops/{shop.id}/campaigns/{created['id']}")
        shown = await campaign_service.preview_draft(services.sessions, shop_id=shop.id, raw=raw)
        return await _editor(request, shop, form, count=count, shown=shown)
    except (CampaignError, SegmentError) as exc:
        return await _editor(request, shop, form, error=str(exc))


@routes.post("/console/shops/{shop_id}/audience")
async def audience_count(request: web.Request) -> web.Response:
    """The editor's live count (JSON, for the page's script; the form works without it)."""
    from bot.segments import SegmentError
    from bot.store.segments import count_audience

    principal = await _who(request)
    shop = await _shop(request, principal)
    form = await _form(request)
    definition = countable(builder_definition(form))
    services = _services(request)
    try:
        async with services.sessions() as session:
            count = await count_audience(
                session=session, shop_id=shop.id, definition=definition, now=services.clock.now()
            )
    except SegmentError as exc:
        return web.json_response({"error": str(exc)}, status=422)
    from bot.i18n import _

    with locale_scope(reader_locale(request)):
        label = _("Audience now: {count}").format(count=count)
    return web.json_response({"count": count, "text": label})

"""The console's support desk, for shops without a Telegram support group (see support.py).

The pages call what `nudge support inbox` and `nudge support reply` call (`inbox`, `reply`) and
what an agent's `/close` calls (`close_conversation`); an internal note is stored as the group's
`#note` is. A shop that connected a support group answers there, in each customer's topic: its
desk here is read-only, because an answer or a close from the console would not show in the
topic and the team would answer the same question twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select

from bot.console.views import (
    _form,
    _path_id,
    _services,
    _shop,
    _who,
    _writer,
    reader_locale,
    render,
)
from bot.db import transaction
from bot.i18n import format_datetime
from bot.models import (
    Customer,
    CustomerEvent,
    Outbox,
    OutboxState,
    Shop,
    SupportConversation,
    SupportState,
)
from bot.shop_settings import load_shop_settings
from bot.store import support_desk as desk
from bot.store.customer_card import customer_card, reason_in_words
from bot.support import ANSWER_LIMIT

routes = web.RouteTableDef()

# Outcomes a page may announce after a redirect (the query names one; nothing else is shown).
ANSWERED = {"sent", "queued", "unreachable", "failed", "retry", "duplicate"}
CLOSED = {"told", "untold"}
UNREACHABLE = "unreachable"  # the page says it in words: the customer blocked the bot
NOT_DELIVERED = {
    OutboxState.BLOCKED,
    OutboxState.FAILED,
    OutboxState.SKIPPED,
    OutboxState.CANCELLED,
    OutboxState.UNKNOWN,
}


def answers_here(shop: Shop) -> bool:
    """Tell whether the console answers this shop's customers (no support group, a bot)."""
    return bool(shop.bot_token) and load_shop_settings(shop.settings).support_chat_id is None


def _desk_url(shop: Shop, conversation_id: int | None = None) -> str:
    base = f"/console/shops/{shop.id}/support"
    return base if conversation_id is None else f"{base}/{conversation_id}"


def _who_wrote(conversation: SupportConversation | None, customer: Customer | None) -> str:
    """Name the customer as the shop knows them, else as Telegram shows them."""
    if customer is not None:
        name = " ".join(part for part in (customer.first_name, customer.last_name) if part)
        if name:
            return name
    if conversation is not None and conversation.name:
        return conversation.name
    if customer is not None:
        return customer.email or customer.phone or f"#{customer.id}"
    return f"Telegram {conversation.telegram_user_id}" if conversation else "—"


def _when(request: web.Request, shop: Shop, value: datetime | str | None) -> str:
    """Format a moment in the reader's language and the shop's time zone."""
    if value is None:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    try:
        return format_datetime(moment, reader_locale(request), shop.timezone or "UTC")
    except LookupError:
        return format_datetime(moment, reader_locale(request))


def _excerpt(text: str | None, content: str, limit: int = 140) -> str:
    if not text:
        return f"[{content}]"
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- the list


def _waiting_row(request: web.Request, shop: Shop, waiting: Any) -> dict[str, Any]:
    """Describe one entry of the inbox for the list."""
    conversation, customer = waiting.conversation, waiting.customer
    last = waiting.items[-1] if waiting.items else None
    if isinstance(last, CustomerEvent):
        text = _excerpt(last.payload.get("text"), str(last.payload.get("content", "text")))
    elif last is not None:
        text = _excerpt(last.text, last.content)
    else:
        text = ""
    if conversation is not None:
        link = _desk_url(shop, conversation.id)
    else:  # a flagged NPS detractor who has not written: their customer page
        link = f"/console/shops/{shop.id}/customers/{customer.id}"
    return {
        "link": link,
        "who": _who_wrote(conversation, customer),
        "linked": customer is not None,
        "text": text,
        "count": len(waiting.items),
        "since": _when(request, shop, waiting.last_at),
        "undelivered": len(waiting.answers),
        "follow_up": customer.needs_follow_up if customer is not None else False,
        "nps": customer.nps_score if customer is not None else None,
    }


@routes.get("/console/shops/{shop_id}/support")
async def support_desk(request: web.Request) -> web.Response:
    """Who waits for an answer (as `nudge support inbox`), then the other open conversations."""
    from bot.support import inbox

    principal = await _who(request)
    shop = await _shop(request, principal)
    services = _services(request)
    found = await inbox(services.sessions, shop_id=shop.id)
    waiting = [_waiting_row(request, shop, w) for w in found]
    listed = {w.conversation.id for w in found if w.conversation is not None}
    async with services.sessions() as session:
        opened = await desk.open_conversations(session=session, shop_id=shop.id)
    answered = [
        {
            "link": _desk_url(shop, conversation.id),
            "who": _who_wrote(conversation, customer),
            "linked": customer is not None,
            "last_customer_at": _when(request, shop, conversation.last_customer_at),
            "last_answer_at": _when(request, shop, conversation.last_answer_at),
        }
        for conversation, customer in opened
        if conversation.id not in listed
    ]
    return render(
        request,
        "support.html",
        {
            "shop": shop,
            "waiting": waiting,
            "answered": answered,
            "group": load_shop_settings(shop.settings).support_chat_id is not None,
        },
    )


# ------------------------------------------------------------------ one conversation


async def _conversation(request: web.Request, shop: Shop) -> SupportConversation:
    """Return the conversation named in the path, or 404 (also for another shop's)."""
    conversation_id = _path_id(request, "conversation_id")
    async with _services(request).sessions() as session:
        found = await session.get(SupportConversation, conversation_id)
    if found is None or found.shop_id != shop.id:
        raise web.HTTPNotFound()
    return found


def _delivery(message: Any, row: Outbox | None) -> tuple[str, str | None]:
    """Say where an answer got to: delivered, sending, queued, or not delivered (and why)."""
    if message.relay == desk.DONE or (row is not None and row.state == OutboxState.SENT):
        return "delivered", None
    if row is not None and row.state == OutboxState.BLOCKED:
        return "undelivered", UNREACHABLE
    if message.relay == desk.UNDELIVERED:
        return "undelivered", message.error
    if row is not None and row.state in NOT_DELIVERED:
        return "undelivered", row.last_error or reason_in_words(row.skip_reason)
    if message.relay == desk.SENDING:
        return "sending", None
    return "queued", message.error


def _relayed(message: Any) -> tuple[str | None, str | None]:
    """Say whether a customer's message reached the support group (for a shop that has one)."""
    if message.relay == desk.DONE:
        return "in_group", None
    if message.relay in (desk.PENDING, desk.SENDING):
        return "to_group", message.error
    return None, None


async def _conversation_page(
    request: web.Request,
    shop: Shop,
    conversation: SupportConversation,
    *,
    error: str | None = None,
    draft: str = "",
) -> web.Response:
    """Render the conversation in order, beside the customer's card.

    `error` names the form whose text was refused (`answer` or `note`); `draft` gives it back.
    """
    principal = await _who(request)
    async with _services(request).sessions() as session:
        messages = await desk.conversation_messages(
            session=session,
            conversation_id=conversation.id,  # type: ignore[arg-type]
        )
        ids = [m.outbox_id for m in messages if m.direction == "out" and m.outbox_id]
        rows: dict[int, Outbox] = {}
        if ids:
            query = select(Outbox).where(Outbox.shop_id == shop.id, Outbox.id.in_(ids))  # type: ignore[union-attr]
            rows = {r.id: r for r in await session.scalars(query) if r.id is not None}
        customer = (
            await session.get(Customer, conversation.customer_id)
            if conversation.customer_id
            else None
        )
        card = (
            await customer_card(session=session, customer_id=customer.id, shop_id=shop.id)
            if customer is not None and customer.id is not None
            else None
        )
    group = load_shop_settings(shop.settings).support_chat_id is not None
    thread = []
    for m in messages:
        if m.direction not in ("in", "out", "note"):
            continue  # the bot's posts for agents in the group: cards and notices
        state, why = (None, None)
        if m.direction == "out":
            state, why = _delivery(m, rows.get(m.outbox_id or 0))
        elif m.direction == "in" and group:
            state, why = _relayed(m)
        thread.append(
            {
                "direction": m.direction,
                "at": _when(request, shop, m.created_at),
                "content": m.content,
                "text": m.text,
                "state": state,
                "why": why,
            }
        )
    answered = request.query.get("answer")
    closed = request.query.get("closed")
    return render(
        request,
        "support_conversation.html",
        {
            "shop": shop,
            "conversation": conversation,
            "open": conversation.state == SupportState.OPEN,
            "who": _who_wrote(conversation, customer),
            "thread": thread,
            "card": card,
            "blocked_since": _when(request, shop, card["consent"]["unreachable_since"])
            if card
            else "",
            "locale_of_customer": (card["profile"]["locale"] if card else None)
            or conversation.locale,
            "writable": answers_here(shop) and not principal.read_only,
            "group": group,
            "answered": answered if answered in ANSWERED else None,
            "closed": closed if closed in CLOSED else None,
            "noted": request.query.get("noted") == "1",
            "error": error,
            "draft": draft,
            "limit": ANSWER_LIMIT,
        },
        status=422 if error else 200,
    )


@routes.get("/console/shops/{shop_id}/support/{conversation_id}")
async def conversation_page(request: web.Request) -> web.Response:
    principal = await _who(request)
    shop = await _shop(request, principal)
    return await _conversation_page(request, shop, await _conversation(request, shop))


async def _write(request: web.Request) -> tuple[Shop, SupportConversation, Any]:
    """Check who writes (not read-only), the shop, the form's CSRF value and the desk."""
    principal = await _writer(request)
    shop = await _shop(request, principal)
    form = await _form(request)
    conversation = await _conversation(request, shop)
    if not answers_here(shop):
        raise web.HTTPConflict(text="This shop answers its customers in its support group.")
    return shop, conversation, form


def _text(form: Any) -> str:
    return str(form.get("text", "")).replace("\x00", "").strip()


@routes.post("/console/shops/{shop_id}/support/{conversation_id}/answer")
async def answer_customer(request: web.Request) -> web.Response:
    """Answer the customer now, through the bot, as `nudge support reply` does."""
    from bot.support import ConversationNotFound, CustomerNotFound, reply

    shop, conversation, form = await _write(request)
    text = _text(form)
    if not text or len(text) > ANSWER_LIMIT:
        return await _conversation_page(request, shop, conversation, error="answer", draft=text)
    services = _services(request)
    try:
        result = await reply(
            services.sessions,
            services.clock,
            customer_id=conversation.customer_id,
            telegram_user_id=None if conversation.customer_id else conversation.telegram_user_id,
            shop_id=shop.id,
            text=text,
            bots=services.bots,
            settings=services.settings,
        )
    except (CustomerNotFound, ConversationNotFound):
        raise web.HTTPNotFound() from None
    outcome = result.reason if result.state == "undelivered" else result.state
    target = _desk_url(shop, result.conversation_id or conversation.id)
    raise web.HTTPSeeOther(f"{target}?answer={outcome}")


@routes.post("/console/shops/{shop_id}/support/{conversation_id}/note")
async def add_note(request: web.Request) -> web.Response:
    """Keep an internal note in the conversation (as `#note` in the group): never sent."""
    shop, conversation, form = await _write(request)
    text = _text(form)
    if not text or len(text) > ANSWER_LIMIT:
        return await _conversation_page(request, shop, conversation, error="note", draft=text)
    services = _services(request)
    async with transaction(services.sessions) as session:
        await desk.add_message(
            session=session,
            shop_id=shop.id,
            conversation_id=conversation.id,
            direction="note",
            content="text",
            text=text,
            created_at=services.clock.now(),
        )
    raise web.HTTPSeeOther(_desk_url(shop, conversation.id) + "?noted=1")


@routes.post("/console/shops/{shop_id}/support/{conversation_id}/close")
async def close(request: web.Request) -> web.Response:
    """Close the conversation and tell the customer, as an agent's `/close` does."""
    from bot.support import close_conversation

    shop, conversation, _ = await _write(request)
    if conversation.state != SupportState.OPEN:
        raise web.HTTPSeeOther(_desk_url(shop, conversation.id))
    told = await close_conversation(_services(request), shop=shop, conversation=conversation)
    outcome = "told" if told.status == "sent" else "untold"
    raise web.HTTPSeeOther(f"{_desk_url(shop, conversation.id)}?closed={outcome}")

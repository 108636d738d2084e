"""Texts of the support desk: what customers are told (localized) and what agents see.

Customer-facing texts are gettext msgids. Posts for agents (the profile card, notices in the
topic, answers to /connect_support) are in English for now: agents read the shop's team
language, which Nudge does not know yet.
"""

from __future__ import annotations

import html

from bot.i18n import _


def offline(when: str) -> str:
    """Tell a customer who wrote outside working hours when to expect an answer."""
    return _("Our team is not at work right now. We will answer here after {when}.").format(
        when=html.escape(when, quote=False)
    )


def closed() -> str:
    """Tell the customer the team closed the conversation (they can write again any time)."""
    return _(
        "We have closed this conversation. If you need anything else, just write here: "
        "our team will answer."
    )


def personal_code(code: str) -> str:
    """Give the customer a personal promo code from the team."""
    return _("Here is your personal promo code: <code>{code}</code>").format(
        code=html.escape(code, quote=False)
    )


# ------------------------------------------------------------------------ for agents


def e(value: object) -> str:
    """Escape a value for an HTML post."""
    return html.escape(str(value), quote=False)


CONNECTED = "✅ Support is connected: each customer who writes gets a topic here."
NOT_ADMIN = "Only an administrator of this group can connect support."
NOT_FORUM = "This group has no topics. Turn on Topics in the group settings, then try again."
MISSING = (
    "The bot cannot run support here yet. Missing: {missing}. "
    "Fix it and send /connect_support again."
)
UNDELIVERED = "⚠️ Not delivered to the customer: {reason}. The conversation stays open."
DELIVERY_REASONS = {
    "unreachable": "they blocked the bot or deleted the chat",
    "failed": "Telegram refused the message",
    "retry": "Telegram is not reachable right now; try again later",
}
CLOSED = "Conversation closed. It opens again when the customer writes."
NOTE_KEPT = "📝 note kept internal"
CODE_SENT = "🎟 Code {code} (pool {pool}) sent to the customer."
NO_CODE = "No code left in pool {pool} (nudge codes status)."
NOT_LINKED = (
    "This customer has not linked their chat to a shop profile yet, so this needs their "
    "profile. Ask for their e-mail or phone and link them: /link e-mail or /link +phone."
)
PROMOS_STOPPED = "🔕 Automated promos to this customer are paused until {until}."
LINKED = "🔗 Linked to customer #{id}."
LINK_NOT_FOUND = "No customer with that e-mail or phone in this shop."
LINK_TAKEN = "That customer is already linked to another Telegram chat."

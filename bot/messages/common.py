"""Small localized phrases several messages share."""

from __future__ import annotations

from bot.i18n import _, ngettext

CART_TOPIC = "cart"  # the topic of a cart with no category: "not interested" stops every reminder
TOPIC_LABEL_LIMIT = 40


def item_count(count: int) -> str:
    """Say how many items: 1 item, 2 items (with each locale's plural forms)."""
    return ngettext("{count} item", "{count} items", count).format(count=count)


def more_items(count: int) -> str:
    """Say how many more items there are beyond the listed ones."""
    return ngettext("and {count} more item", "and {count} more items", count).format(count=count)


def flow_topic_label(topic: str) -> str | None:
    """Name a lifecycle flow's topic (a flow, not a category: "Welcome messages"), else None.

    The welcome series, restock reminders and win-back offers (bot/flows/welcome.py,
    post_purchase.py, winback.py) each exclude their own flow on "Not interested".
    """
    name = topic.split(":", 1)[-1].strip()
    if name == "welcome":
        return _("Welcome messages")
    if name == "restock":
        return _("Restock reminders")
    if name == "winback":
        return _("Come-back offers")
    return None


def topic_label(topic: str) -> str:
    """Return how a topic reads to a customer: "Cart reminders", or the category ("Dresses")."""
    name = topic.split(":", 1)[-1].strip()
    if name == CART_TOPIC:
        return _("Cart reminders")
    flow = flow_topic_label(name)
    if flow:
        return flow
    if len(name) > TOPIC_LABEL_LIMIT:
        name = name[: TOPIC_LABEL_LIMIT - 1].rstrip() + "…"
    return name[:1].upper() + name[1:]

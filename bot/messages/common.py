"""Small localized phrases several messages share."""

from __future__ import annotations

from bot.i18n import ngettext


def item_count(count: int) -> str:
    """Say how many items: 1 item, 2 items (with each locale's plural forms)."""
    return ngettext("{count} item", "{count} items", count).format(count=count)


def more_items(count: int) -> str:
    """Say how many more items there are beyond the listed ones."""
    return ngettext("and {count} more item", "and {count} more items", count).format(count=count)

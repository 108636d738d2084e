"""Deep-link tokens that link a Telegram chat to a shop's customer.

`https://t.me/<bot>?start=<token>`: the token is signed with NUDGE_SECRET_KEY, names the shop
and the customer, expires, and fits Telegram's start parameter (at most 64 characters of
A-Z, a-z, 0-9, _ and -).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote

from bot.signing import BadToken, Signer

PURPOSE = "link"
DEFAULT_TTL = timedelta(days=30)


class ExpiredToken(BadToken):
    """The token was valid but its time has passed."""


def make_link_token(
    *, secret_key: str, shop_id: int, customer_id: int, now: datetime, ttl: timedelta = DEFAULT_TTL
) -> str:
    """Return a start parameter that links a chat to this customer until now + ttl."""
    expires = int((now + ttl).timestamp())
    return Signer(secret_key, PURPOSE).sign_ints(shop_id, customer_id, expires)


def read_link_token(*, secret_key: str, token: str, now: datetime) -> tuple[int, int]:
    """Return (shop_id, customer_id) of a valid, unexpired token; raise BadToken otherwise."""
    shop_id, customer_id, expires = Signer(secret_key, PURPOSE).unsign_ints(token, 3)
    if now.timestamp() > expires:
        raise ExpiredToken("link token expired")
    return shop_id, customer_id


def deep_link(bot_username: str | None, token: str) -> str:
    """Return the t.me link that opens the shop's bot with the token."""
    return f"https://t.me/{quote(bot_username or 'bot')}?start={token}"

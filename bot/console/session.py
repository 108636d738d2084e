"""The console's session and CSRF protection, without server-side session storage.

Logging in with an admin API token sets one cookie: the token's id and the login time, signed
with the service's secret key (HttpOnly, SameSite=Strict, Secure behind https, 12 hours). Every
request checks the signature, the age and that the token is still there and not revoked, so
revoking a token (`nudge token revoke`) ends its console sessions at once.

Every form carries a CSRF value signed for that session; the login form, before any session,
carries one signed for a random nonce cookie. A POST without the right value gets 403.
"""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Any

from aiohttp import web

from bot.models import ApiToken
from bot.signing import BadToken, Signer
from bot.store.tokens import Principal

COOKIE = "nudge_console"
NONCE = "nudge_login"
MAX_AGE = 12 * 3600


def _secret(request: web.Request) -> str:
    from bot.web.keys import SERVICES

    return request.app[SERVICES].secret_key


def _secure(request: web.Request) -> bool:
    from bot.web.keys import SETTINGS

    return request.app[SETTINGS].public_base.startswith("https://")


def _cookie_options(request: web.Request, max_age: int) -> dict[str, Any]:
    return {
        "max_age": max_age,
        "path": "/console",
        "httponly": True,
        "samesite": "Strict",
        "secure": _secure(request),
    }


def start(request: web.Request, response: web.StreamResponse, token_id: int) -> None:
    """Open a session for a token on the response."""
    value = Signer(_secret(request), "console-session", mac_bytes=16).sign_ints(
        token_id, int(time.time())
    )
    response.set_cookie(COOKIE, value, **_cookie_options(request, MAX_AGE))
    response.del_cookie(NONCE, path="/console")


def end(response: web.StreamResponse) -> None:
    """Close the session."""
    response.del_cookie(COOKIE, path="/console")


def _session(request: web.Request) -> tuple[int, int] | None:
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    try:
        token_id, issued = Signer(_secret(request), "console-session", mac_bytes=16).unsign_ints(
            value, 2
        )
    except BadToken:
        return None
    if not 0 <= time.time() - issued <= MAX_AGE:
        return None
    return token_id, issued


async def current(request: web.Request) -> Principal | None:
    """Return who the session speaks for, or None (no session, expired, token revoked)."""
    from bot.web.keys import SERVICES

    found = _session(request)
    if found is None:
        return None
    async with request.app[SERVICES].sessions() as session:
        row = await session.get(ApiToken, found[0])
    if row is None or row.revoked_at is not None or row.id is None:
        return None
    return Principal(row.id, row.kind, row.shop_id, row.read_only)


def csrf_value(request: web.Request) -> str:
    """Return the CSRF value forms of this session carry."""
    found = _session(request)
    if found is None:
        return ""
    return Signer(_secret(request), "console-csrf", mac_bytes=16).sign_ints(*found)


def login_nonce() -> str:
    """Return a fresh nonce for a login form (kept in a cookie, signed in the form)."""
    return secrets.token_urlsafe(16)


def set_login_nonce(request: web.Request, response: web.StreamResponse, nonce: str) -> None:
    """Keep the login form's nonce in its cookie."""
    response.set_cookie(NONCE, nonce, **_cookie_options(request, 3600))


def login_value(request: web.Request, nonce: str | None = None) -> str:
    """Return the login form's CSRF value for a nonce (by default the cookie's)."""
    nonce = nonce if nonce is not None else request.cookies.get(NONCE)
    if not nonce:
        return ""
    return Signer(_secret(request), "console-login", mac_bytes=16).sign(nonce.encode())


def check(expected: str, given: Any) -> None:
    """Raise 403 unless the form's CSRF value is the expected one."""
    if not expected or not isinstance(given, str) or not hmac.compare_digest(expected, given):
        raise web.HTTPForbidden(text="expired")  # error.html says it in words

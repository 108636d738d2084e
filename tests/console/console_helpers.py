"""What the console tests share: a running service with two shops and tokens, and a browser."""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiohttp

from bot.db import transaction
from bot.models import Consent
from bot.playground import Playground
from bot.store.customers import add_customer
from bot.store.tokens import create_token


@dataclass
class Console:
    """The service, its shops and tokens."""

    pg: Playground
    kvitka: object
    other: object
    tokens: dict

    @property
    def base(self) -> str:
        return self.pg.settings.public_base


async def make_console(pg: Playground) -> Console:
    kvitka = await pg.add_shop(name="Kvitka", default_locale="uk", currency="UAH", country="UA")
    other = await pg.add_shop(name="Other", default_locale="pl", currency="PLN")
    tokens = {}
    async with transaction(pg.services.sessions) as session:
        await add_customer(
            session=session,
            shop_id=kvitka.id,
            now=pg.clock.now(),
            first_name="Олена",
            last_name="Коваль",
            email="olena@example.com",
            locale="uk",
            telegram_chat_id=700,
            consent=Consent.OPTED_IN,
        )
        for key, shop_id, read_only in (
            ("owner", None, False),
            ("kvitka", kvitka.id, False),
            ("reader", kvitka.id, True),
        ):
            _record, secret = await create_token(
                session=session, now=pg.clock.now(), shop_id=shop_id, read_only=read_only
            )
            tokens[key] = secret
    return Console(pg, kvitka, other, tokens)


def hidden(html: str, name: str = "csrf") -> str:
    """Return a hidden input's value from a page."""
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, html[:500]
    return match.group(1)


async def logged_in(
    console: Console, who: str = "kvitka", **session_args
) -> aiohttp.ClientSession:
    """Return an HTTP client (with cookies) logged in with a token."""
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), **session_args)
    async with http.get(console.base + "/console/login") as r:
        csrf = hidden(await r.text())
    async with http.post(
        console.base + "/console/login",
        data={"token": console.tokens[who], "csrf": csrf},
        allow_redirects=False,
    ) as r:
        assert r.status == 303, await r.text()
    return http

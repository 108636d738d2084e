"""No log line holds a token, a bot token or a webhook secret, even with every logger on.

One run of what an owner does, logging set up as `nudge serve` does at NUDGE_LOG_LEVEL=debug,
every logger writing to a file (SQL statements at INFO, as `echo` gives them): tokens made
with the CLI, API calls with them, a console
login, a bot token connected (getMe in the sandbox), the webhook secret rotated, a signed
delivery, a customer talking to a bot. Then the file is searched for every secret and for its
SHA-256 (the form tokens are stored in).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from pathlib import Path

import aiohttp
from click.testing import CliRunner

from bot.cli import cli
from bot.cli.common import configure_logging
from bot.playground import Playground
from integrations.generic import sign

LOUD = {"": logging.DEBUG, "sqlalchemy.engine": logging.INFO, "aiohttp.access": logging.DEBUG}
DATA = Path(__file__).parent.parent / "data" / "generic"


def nudge(*args: str) -> str:
    """Run a `nudge` command (in a thread: it runs its own event loop) and return its output."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


class LogFile:
    """Every logger, at its loudest useful level, writing to one file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setLevel(logging.DEBUG)
        self.handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.levels: dict[str, int] = {}

    def __enter__(self) -> LogFile:
        from bot.cli.common import FLOORS

        for name in [*LOUD, *FLOORS]:
            self.levels[name] = logging.getLogger(name).level
        for name, level in LOUD.items():
            logging.getLogger(name).setLevel(level)
        configure_logging("debug")  # the service's own setup (its floors); pytest owns root
        logging.getLogger().addHandler(self.handler)
        return self

    def __exit__(self, *_exc: object) -> None:
        logging.getLogger().removeHandler(self.handler)
        self.handler.close()
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)


def found_in(text: str, secrets: dict[str, str]) -> list[str]:
    """Return where each secret (or its SHA-256) shows in the text: "what, line N: …"."""
    found = []
    for what, secret in secrets.items():
        for form, value in (
            ("", secret),
            (" (SHA-256)", hashlib.sha256(secret.encode()).hexdigest()),
        ):
            for number, line in enumerate(text.splitlines(), 1):
                if value in line:
                    found.append(f"{what}{form}, line {number}: {line[:200]}")
    return found


async def test_no_log_holds_a_secret(cli_database, clock, tmp_path, monkeypatch):
    monkeypatch.setenv("NUDGE_DATABASE_URL", cli_database.url)
    monkeypatch.setenv("NUDGE_SECRET_KEY", "test-secret-key-0123456789")
    secrets: dict[str, str] = {"secret key": "test-secret-key-0123456789"}
    with LogFile(tmp_path / "run.log") as log:
        async with Playground(cli_database.url, engine=cli_database.engine, clock=clock) as pg:
            pg.sandbox.auto_register = True
            shop = await pg.add_shop(name="Kvitka", platform="generic", default_locale="uk")
            assert shop.bot_token and shop.webhook_secret
            secrets["playground bot token"] = shop.bot_token
            secrets["first webhook secret"] = shop.webhook_secret

            owner = json.loads(
                await asyncio.to_thread(nudge, "token", "create", "--owner", "--json")
            )
            mine = json.loads(
                await asyncio.to_thread(nudge, "token", "create", "--shop", str(shop.id), "--json")
            )
            secrets["owner token"], secrets["shop token"] = owner["token"], mine["token"]
            await asyncio.to_thread(nudge, "token", "list", "--json")

            base = pg.settings.public_base
            jar = aiohttp.CookieJar(unsafe=True)  # the console's cookies on 127.0.0.1
            async with aiohttp.ClientSession(cookie_jar=jar) as http:

                async def api(method: str, path: str, token: str, **kwargs: object) -> dict:
                    headers = {"Authorization": f"Bearer {token}"}
                    async with http.request(
                        method, f"{base}/api/v1{path}", headers=headers, **kwargs
                    ) as r:
                        assert r.status < 300, await r.text()
                        return await r.json()

                await api("GET", "/shops", secrets["owner token"])
                await api("GET", f"/shops/{shop.id}/customers?query=olena", secrets["shop token"])
                connected = "7123456789:AAnewbotconnectedthroughtheapi_0123456789"
                secrets["connected bot token"] = connected
                await api(
                    "POST",
                    "/shops",
                    secrets["owner token"],
                    json={"platform": "generic", "name": "Sklep", "bot_token": connected},
                )
                rotated = await api(
                    "POST", f"/shops/{shop.id}/webhook-secret", secrets["shop token"]
                )
                secrets["rotated webhook secret"] = rotated["webhook_secret"]

                async with http.get(f"{base}/console/login") as r:
                    csrf = re.search(r'name="csrf" value="([^"]+)"', await r.text())
                assert csrf is not None
                form = {"csrf": csrf.group(1), "token": secrets["shop token"]}
                async with http.post(f"{base}/console/login", data=form) as r:
                    assert r.status == 200 and "/console/login" not in str(r.url)
                async with http.get(f"{base}/console") as r:
                    assert r.status == 200

                body = (DATA / "customer.upserted.json").read_bytes()
                headers = {
                    "Content-Type": "application/json",
                    "X-Nudge-Topic": "customer.upserted",
                    "X-Nudge-Signature": sign(body, secrets["rotated webhook secret"]),
                }
                async with http.post(
                    f"{base}/hooks/generic/{shop.id}", data=body, headers=headers
                ) as r:
                    assert r.status < 300, await r.text()

            olena = pg.customer(shop, user_id=1001, first_name="Olena", language_code="uk")
            await olena.send("/start")
            await pg.settle()
            assert olena.last_message() is not None
    text = log.path.read_text(encoding="utf-8")
    assert "aiohttp.access" in text and "sqlalchemy.engine" in text and "aiogram" in text
    leaks = found_in(text, secrets)
    assert not leaks, "secrets in the log:\n" + "\n".join(leaks)

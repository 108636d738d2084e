"""Fixtures for the sandbox tests: a running sandbox, an aiogram bot and a PTB bot on it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import telegram
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.sandbox import Customer, Limits, Sandbox, run_sandbox

TOKEN = "123456:TEST-token_abc"
DATA = Path(__file__).parent.parent / "data" / "telegram"


def load(name: str) -> Any:
    """Load a JSON file from tests/data/telegram."""
    return json.loads((DATA / name).read_text(encoding="utf-8"))


class PlainHttpSession(AiohttpSession):
    """aiogram's session without the 250 ms pause on close (it waits for TLS; we use HTTP)."""

    async def close(self) -> None:
        """Close the HTTP client at once."""
        if self._session is not None and not self._session.closed:
            await self._session.close()


def aiogram_bot(sb: Sandbox, token: str = TOKEN) -> Bot:
    """Return an aiogram Bot talking to the sandbox (close it with `async with`)."""
    return Bot(token, session=PlainHttpSession(api=TelegramAPIServer.from_base(sb.base_url)))


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    """A running sandbox with one bot, flood control off and fast webhook retries."""
    async with run_sandbox(
        limits=Limits.off(), webhook_retry_delay=0.02, webhook_retry_max=0.1
    ) as sandbox:
        sandbox.add_bot(TOKEN, username="shop_bot", first_name="Shop")
        yield sandbox


@pytest.fixture
async def bot(sb: Sandbox) -> AsyncIterator[Bot]:
    """An aiogram Bot on the sandbox."""
    async with aiogram_bot(sb) as instance:
        yield instance


@pytest.fixture
async def ptb(sb: Sandbox) -> AsyncIterator[telegram.Bot]:
    """A python-telegram-bot Bot on the sandbox."""
    async with telegram.Bot(TOKEN, base_url=f"{sb.base_url}/bot") as instance:
        yield instance


@pytest.fixture
def olena(sb: Sandbox) -> Customer:
    """A customer with a private chat open with the bot."""
    return sb.customer(TOKEN, 1001, "Olena", username="olena", language_code="uk")

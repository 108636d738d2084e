"""Fixtures of the CLI tests: a database the CLI accepts and a Telegram sandbox it talks to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from cli_helpers import SECRET_KEY


@dataclass
class CliEnv:
    """The database and sandbox the `nudge` commands of a test talk to."""

    database: Any
    sandbox: Any


@pytest.fixture
def env(cli_database, telegram_sandbox, monkeypatch, tmp_path) -> CliEnv:
    """Point `nudge` at the test's database and at a sandbox that knows any bot token."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NUDGE_DATABASE_URL", cli_database.url)
    monkeypatch.setenv("NUDGE_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("NUDGE_PUBLIC_URL", "https://nudge.example.com/")
    monkeypatch.setenv("NUDGE_TELEGRAM_API_BASE", telegram_sandbox.base_url)
    return CliEnv(cli_database, telegram_sandbox)

"""The `nudge` command as a shop owner and their scripts use it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli

NUDGE = [sys.executable, "-m", "bot"]


@pytest.fixture
def env(cli_database, monkeypatch, tmp_path, telegram_sandbox):
    """Point the CLI at the test's database and at a Telegram sandbox (bot tokens are checked)."""
    monkeypatch.setenv("NUDGE_TELEGRAM_API_BASE", telegram_sandbox.base_url)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NUDGE_DATABASE_URL", cli_database.url)
    monkeypatch.setenv("NUDGE_SECRET_KEY", "test-secret-key-0123456789")
    monkeypatch.setenv("NUDGE_PUBLIC_URL", "https://nudge.example.com/")
    return cli_database


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_shop_add_prints_a_usable_record(env):
    code, out = invoke(
        "shop",
        "add",
        "--platform",
        "shopify",
        "--name",
        "Kvitka",
        "--currency",
        "uah",
        "--country",
        "UA",
        "--locale",
        "uk",
        "--timezone",
        "Europe/Kyiv",
        "--bot-token",
        "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        "--json",
    )
    assert code == 0, out
    record = json.loads(out)
    assert record["platform"] == "shopify"
    assert record["webhook_url"] == f"https://nudge.example.com/hooks/shopify/{record['id']}"
    assert len(record["webhook_secret"]) >= 32
    assert record["currency"] == "UAH" and record["locale"] == "uk"
    assert "AAHdqTcv" not in out, "the bot token must never be printed"


def test_shop_list_show_and_set(env):
    invoke("shop", "add", "--platform", "woocommerce", "--name", "Sklep", "--json")
    code, out = invoke(
        "shop",
        "set",
        "1",
        "abandoned_cart_delay=90s",
        "followup_delay=3d",
        "quiet_hours_start=22:30",
        "--json",
    )
    assert code == 0, out
    settings = json.loads(out)["settings"]
    assert settings["abandoned_cart_delay"] == "90s"
    assert settings["followup_delay"] == "3d"
    assert settings["quiet_hours_start"] == "22:30"
    code, out = invoke("shop", "list", "--json")
    assert [s["name"] for s in json.loads(out)] == ["Sklep"]
    code, out = invoke("shop", "show", "1")
    assert "abandoned_cart_delay = 90s" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["shop", "set", "1", "abandoned_cart_delay=soon"], "not a duration"),
        (["shop", "set", "1", "colour=red"], "unknown setting 'colour'"),
        (["shop", "set", "1", "timezone=Mars/Base"], "not an IANA zone"),
        (["shop", "set", "1", "novalue"], "expected key=value"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(env, args, message):
    invoke("shop", "add", "--platform", "generic", "--name", "G")
    code, out = invoke(*args)
    assert code == 2
    assert message in out


def test_unknown_shop(env):
    code, out = invoke("shop", "show", "42")
    assert code == 1 and "no shop with id 42" in out


def test_shop_add_rejects_bad_values(env):
    code, out = invoke("shop", "add", "--platform", "shopify", "--name", "X", "--currency", "UAX")
    assert code == 2 and "ISO 4217" in out
    code, out = invoke("shop", "add", "--platform", "shopify", "--name", "X", "--bot-token", "x")
    assert code == 2 and "--bot-token" in out


def _run(args, **env_overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    env.update(env_overrides)
    return subprocess.run([*NUDGE, *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"NUDGE_DATABASE_URL": "mysql://localhost/x"}, "NUDGE_DATABASE_URL"),
        ({"NUDGE_PUBLIC_URL": "not a url"}, "NUDGE_PUBLIC_URL"),
        ({"NUDGE_HTTP_PORT": "99999"}, "NUDGE_HTTP_PORT"),
        ({"NUDGE_REDIS_URL": "http://x"}, "NUDGE_REDIS_URL"),
        (
            {
                "NUDGE_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/none",
                "NUDGE_SECRET_KEY": "0123456789abcdef",
            },
            "NUDGE_DATABASE_URL",
        ),
        (
            {"NUDGE_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/none"},
            "NUDGE_SECRET_KEY",
        ),
        ({"NUDGE_SECRET_KEY": "short"}, "NUDGE_SECRET_KEY"),
    ],
)
def test_bad_config_fails_fast_with_one_line_naming_the_setting(tmp_path, env, setting):
    overrides = {"NUDGE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/n.db", **env}
    result = _run(["shop", "list"], **overrides)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"nudge: error: {setting}:")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("env", "setting", "secret"),
    [
        ({"NUDGE_DATABASE_URL": "u:s3cret-pw@db.example.com/nudge"}, "NUDGE_DATABASE_URL", None),
        (
            {"NUDGE_DATABASE_URL": "postgresql+asyncpg://u:s3c@ret-pw@127.0.0.1:1/db"},
            "NUDGE_DATABASE_URL",
            "ret-pw",
        ),
        (
            {"NUDGE_DATABASE_URL": "postgresql+asyncpg://u:s3cret-pw@127.0.0.1:port/db"},
            "NUDGE_DATABASE_URL",
            None,
        ),
        (
            {"NUDGE_DATABASE_URL": "postgresql+asyncpg://u:s3cret-pw@127.0.0.1:1/db"},
            "NUDGE_DATABASE_URL",
            None,
        ),
        (
            {"NUDGE_DATABASE_URL": "postgresql+asyncpg://u@127.0.0.1:1/db?password=s3cret-pw"},
            "NUDGE_DATABASE_URL",
            None,
        ),
        ({"NUDGE_REDIS_URL": "http://:s3cret-pw@cache.example.com:6379"}, "NUDGE_REDIS_URL", None),
        ({"NUDGE_REDIS_URL": "redis://:s3c@ret-pw@cache:6379"}, "NUDGE_REDIS_URL", "ret-pw"),
        ({"NUDGE_DISPATCH": '{"rate_per_second": "s3cret-pw"'}, "NUDGE_DISPATCH", None),
    ],
)
def test_config_errors_never_print_a_secret(tmp_path, env, setting, secret):
    overrides = {
        "NUDGE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/n.db",
        "NUDGE_SECRET_KEY": "0123456789abcdef-s3cret-key",
        **env,
    }
    result = _run(["shop", "list"], **overrides)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"nudge: error: {setting}:"), result.stderr
    for shown in (result.stdout, result.stderr):
        assert "s3cret" not in shown and (secret is None or secret not in shown), shown


def test_sqlite_files_are_created_private(tmp_path):
    import asyncio

    from sqlalchemy import text

    from bot.db import create_engine

    umask = os.umask(0o022)
    try:
        url = f"sqlite+aiosqlite:///{tmp_path}/data/nudge.db"
        result = _run(["db", "upgrade"], NUDGE_DATABASE_URL=url)
        assert result.returncode == 0, result.stderr
        database = tmp_path / "data" / "nudge.db"
        files = [database, *(database.with_name(f"nudge.db{s}") for s in ("-wal", "-shm"))]
        for path in files:
            if path.exists():
                assert oct(path.stat().st_mode & 0o777) == "0o600", path

        async def write_and_look(url: str) -> dict[str, str]:
            engine = create_engine(url)
            try:
                async with engine.begin() as conn:
                    await conn.execute(text("CREATE TABLE IF NOT EXISTS t (x TEXT)"))
                    await conn.execute(text("INSERT INTO t VALUES ('token')"))
                found = sorted(p for p in Path(url.split("///", 1)[1]).parent.iterdir())
                return {p.name: oct(p.stat().st_mode & 0o777) for p in found if "nudge" in p.name}
            finally:
                await engine.dispose()

        modes = asyncio.run(write_and_look(f"sqlite+aiosqlite:///{tmp_path}/fresh/nudge.db"))
        assert modes == {name: "0o600" for name in ("nudge.db", "nudge.db-shm", "nudge.db-wal")}

        shared = tmp_path / "old" / "nudge.db"
        shared.parent.mkdir()
        shared.touch(mode=0o644)
        modes = asyncio.run(write_and_look(f"sqlite+aiosqlite:///{shared}"))
        assert set(modes.values()) == {"0o600"}, "an existing world-readable file is tightened"
    finally:
        os.umask(umask)


def test_secret_key_is_generated_once_beside_the_sqlite_database(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/data/nudge.db"
    first = _run(["db", "upgrade"], NUDGE_DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    secret = tmp_path / "data" / ".nudge-secret"
    assert secret.exists() and "generated one and kept it" in first.stderr
    kept = secret.read_text()
    second = _run(["shop", "list"], NUDGE_DATABASE_URL=url)
    assert second.returncode == 0 and secret.read_text() == kept
    assert "generated" not in second.stderr
    assert oct(secret.stat().st_mode & 0o777) == "0o600"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_migrates_answers_healthz_and_stops_on_sigterm(tmp_path: Path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    env.update(
        NUDGE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/nudge.db", NUDGE_HTTP_PORT=str(port)
    )
    proc = subprocess.Popen(
        [*NUDGE, "serve", "--migrate"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    body = json.loads(r.read())
            except OSError:
                time.sleep(0.1)
        assert body == {"status": "ok", "database": "ok"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            assert b"# TYPE nudge_http_requests_total counter" in r.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out

"""Exit codes as the README says: 1 for a missing shop or customer, 2 for input the user can
fix, one line either way; a busy port and a locked database included."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest
from cli_helpers import nudge, one_line_error

NUDGE = [sys.executable, "-m", "bot"]


@pytest.fixture
def shop(env) -> int:
    code, out = nudge("shop", "add", "--platform", "generic", "--name", "G", "--json")
    assert code == 0, out
    return json.loads(out)["id"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["outbox", "stats", "--shop", "999"], "no shop with id 999"),
        (["inbox", "failed", "--shop", "999"], "no shop with id 999"),
        (["survey", "send", "birthday", "--shop", "SHOP", "--customer", "999"], "no customer 999"),
        (["survey", "send", "birthday", "--shop", "999", "--all"], "no shop with id 999"),
        (["survey", "send", "5", "--shop", "SHOP", "--all"], "no survey 5 in shop"),
        (["report", "--shop", "999"], "no shop with id 999"),
        (["report", "nps", "--shop", "999"], "no shop with id 999"),
        (["codes", "status", "--shop", "999"], "no shop with id 999"),
        (["shop", "show", "999"], "no shop with id 999"),
        (["shop", "check", "999"], "no shop with id 999"),
        (["customer", "show", "999"], "no customer with id 999"),
        (["customer", "resolve", "999"], "999"),
        (["support", "reply", "999", "hello"], "999"),
        (["link", "--shop", "SHOP", "--customer", "999"], "no such customer"),
    ],
)
def test_a_missing_shop_or_customer_exits_1(shop, args, message):
    args = [a.replace("SHOP", str(shop)) for a in args]
    code, out = nudge(*args)
    assert code == 1, out
    assert message in one_line_error(out)


def test_survey_send_to_a_missing_customer_schedules_nothing(shop, env):
    code, out = nudge("survey", "send", "birthday", "--shop", str(shop), "--customer", "999")
    assert code == 1 and "nothing scheduled" in out
    code, out = nudge("outbox", "stats", "--shop", str(shop), "--json")
    assert code == 0 and sum(json.loads(out)["states"].values()) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--shop", "SHOP", "--flow", "carts"], "--flow: 'carts' is not a flow; known:"),
        (["report", "--shop", "SHOP", "--flow", "\x00"], "--flow: '\\x00' is not a flow"),
        (["report"], "--shop is required"),
        (["report", "nps"], "--shop is required"),
        (["report", "--flow", "cart", "--shop", "SHOP", "nps"], "--flow does not apply"),
        (["survey", "send", "99999999999999999999", "--shop", "SHOP", "--all"], "WHICH is"),
    ],
)
def test_bad_input_exits_2(shop, args, message):
    args = [a.replace("SHOP", str(shop)) for a in args]
    code, out = nudge(*args)
    assert code == 2, out
    assert message in one_line_error(out)


@pytest.mark.parametrize("value", ["99999999999999999999", "0", "abc", "١٢", "1.5"])
def test_an_id_that_cannot_be_an_id_is_a_usage_error(env, value):
    code, out = nudge("shop", "show", value)
    assert code == 2 and "is not an id" in out and "Traceback" not in out


def test_a_known_flow_reports(shop):
    code, out = nudge("report", "--shop", str(shop), "--flow", "cart", "--json")
    assert code == 0 and json.loads(out)["flow"] == "cart"


@pytest.mark.parametrize(
    "args",
    [
        ["report", "nps", "--shop", "SHOP", "--json"],
        ["report", "--shop", "SHOP", "nps", "--json"],
        ["report", "--shop", "SHOP", "--json", "nps"],
    ],
)
def test_report_nps_takes_shop_where_users_type_it(shop, args):
    code, out = nudge(*[a.replace("SHOP", str(shop)) for a in args])
    assert code == 0, out
    assert json.loads(out)["shop_id"] == shop


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    return subprocess.run(
        [*NUDGE, *args], capture_output=True, text=True, env={**clean, **env}, timeout=60
    )


def test_serve_on_a_busy_port_says_so_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(
            ["serve", "--migrate"],
            NUDGE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/n.db",
            NUDGE_SECRET_KEY="busy-port-secret-key-0123456789",
            NUDGE_HTTP_PORT=str(port),
        )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"nudge: error: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(is another nudge serve running? pass --port)"
    )
    assert "serving on" not in result.stdout + result.stderr
    assert not (tmp_path / "n.db").exists(), "nothing was done before the port was known free"


def _hold_write_lock(path, locked: threading.Event, release: threading.Event) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("UPDATE shops SET name = name")
    locked.set()
    release.wait(30)
    connection.execute("COMMIT")
    connection.close()


@contextmanager
def write_lock(env):
    """Hold SQLite's write lock from another connection, as a long write elsewhere would."""
    if env.database.backend != "sqlite":
        pytest.skip("SQLite's database-wide write lock")
    path = env.database.url.split("///", 1)[1]
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, locked, release))
    holder.start()
    locked.wait(10)
    try:
        yield release
    finally:
        release.set()
        holder.join()


def test_a_command_waits_for_a_locked_database(env):
    with write_lock(env) as release:
        threading.Timer(1.0, release.set).start()
        started = time.monotonic()
        code, out = nudge("shop", "add", "--platform", "generic", "--name", "G")
        waited = time.monotonic() - started
    assert code == 0, out
    assert waited >= 1.0, "it waited for the other write"


def test_a_database_locked_too_long_fails_in_one_line(env, monkeypatch):
    monkeypatch.setenv("NUDGE_DATABASE_BUSY_TIMEOUT", "0.5")
    with write_lock(env):
        started = time.monotonic()
        code, out = nudge("shop", "add", "--platform", "generic", "--name", "G")
        waited = time.monotonic() - started
    assert code == 2
    assert one_line_error(out) == (
        "nudge: error: the database stayed locked by another process (a long write, or a tool "
        "holding it open) for longer than NUDGE_DATABASE_BUSY_TIMEOUT; nothing was changed: "
        "try again"
    )
    assert waited < 5
    assert json.loads(nudge("shop", "list", "--json")[1]) == []

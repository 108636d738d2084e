"""The README's sandbox section, followed step by step with real processes: `nudge sandbox`
says where it is and how to point Nudge at it, and a customer is played over its control API."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

NUDGE = [sys.executable, "-m", "bot"]
TOKEN = "123456:ABCdefghijklmnop"


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        out, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out or ""


def test_play_a_customer_against_nudge_as_the_readme_says(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    sandbox = subprocess.Popen(
        [*NUDGE, "sandbox", "--port", "0", "--auto-register"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    serve = None
    try:
        printed = []
        assert sandbox.stdout is not None
        while not any(line.startswith("  GET ") for line in printed):
            line = sandbox.stdout.readline()
            assert line, "".join(printed)
            printed.append(line)
        text = "".join(printed)
        base = re.search(r"export NUDGE_TELEGRAM_API_BASE=(\S+)", text).group(1)
        assert base.startswith("http://127.0.0.1:") and f"{base}/_sandbox/" in text
        assert "export NUDGE_TELEGRAM_MODE=polling" in text

        env.update(
            NUDGE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/nudge.db",
            NUDGE_TELEGRAM_API_BASE=base,
            NUDGE_TELEGRAM_MODE="polling",
            NUDGE_HTTP_PORT=str(_free_port()),
        )
        run = {"env": env, "capture_output": True, "text": True, "timeout": 60}
        assert subprocess.run([*NUDGE, "db", "upgrade"], **run).returncode == 0
        added = subprocess.run(
            [*NUDGE, "shop", "add", "--platform", "generic", "--name", "Kvitka", "--country",
             "UA", "--bot-token", TOKEN, "--json"],
            **run,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert json.loads(added.stdout)["bot_username"] == "sandbox_123456_bot"
        serve = subprocess.Popen(
            [*NUDGE, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

        control = f"{base}/_sandbox/bots/{TOKEN}"
        _post(f"{control}/customers", {"user_id": 1001, "first_name": "Olena"})
        _post(f"{control}/customers/1001/send", {"text": "/help"})
        deadline = time.monotonic() + 30
        transcript: list = []
        while time.monotonic() < deadline:
            transcript = _get(f"{control}/customers/1001/transcript")["result"]
            if any(entry["from_bot"] for entry in transcript):
                break
            time.sleep(0.2)
        assert any(entry["from_bot"] for entry in transcript), _stop(serve)
        menu: list = []
        while time.monotonic() < deadline and not menu:  # sent within NUDGE_BOT_SYNC_INTERVAL
            menu = _get(f"{base}/bot{TOKEN}/getMyCommands")["result"]
            time.sleep(0.2)
        assert [c["command"] for c in menu] == ["start", "settings", "help", "stop"]
    finally:
        if serve is not None:
            log = _stop(serve)
            assert "connected by long polling" in log, log
        _stop(sandbox)

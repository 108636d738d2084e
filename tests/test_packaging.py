"""An installed nudge works outside the checkout: migrations and catalogs ship in the wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IGNORED = shutil.ignore_patterns(
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    ".git",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "*.db",
    "*.db-*",
    "tests",
    "bench",
)

PROBE = """
import bot, pathlib, sys
from bot.resources import resource_dir
assert pathlib.Path(bot.__file__).is_relative_to(sys.argv[1]), bot.__file__
from bot.migrate import upgrade
upgrade("sqlite+aiosqlite:///" + sys.argv[2])
from bot.i18n import locale_scope
from bot.messages.common import item_count
with locale_scope("uk"):
    print(item_count(3), resource_dir("migrations"))
"""


def test_wheel_carries_migrations_and_compiled_catalogs(tmp_path):
    source = tmp_path / "src"  # a copy, so no stale build/ directory of the checkout leaks in
    shutil.copytree(ROOT, source, ignore=IGNORED)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",  # the locked setuptools, as `make install` builds it
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Package would be ignored" not in built.stderr, built.stderr  # no warnings wall
    wheel = next((tmp_path / "dist").glob("nudge-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "bot/locales/uk/LC_MESSAGES/messages.mo" in names
    assert "bot/migrations/env.py" in names
    assert any(n.startswith("bot/migrations/versions/") for n in names)
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    env = {**os.environ, "PYTHONPATH": str(installed)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(installed), str(tmp_path / "n.db")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("3 товари ")
    assert str(installed) in result.stdout

"""The CLI is one package: each command group its own module and Click group, added by the
root, which nothing imports; every command name and flag of the contract is still there."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import click
import pytest

from bot.cli import cli

ROOT = Path(__file__).resolve().parents[2]
GROUP_MODULES = sorted(
    p.stem for p in (ROOT / "bot" / "cli").glob("*.py") if p.stem not in ("__init__", "root")
)

# The contract as it stood before the CLI became a package (names, flags): only additions.
CONTRACT = {
    "codes generate": ["--json", "--pattern", "--pool", "--shop"],
    "codes import": ["--json", "--pool", "--shop"],
    "codes status": ["--json", "--shop"],
    "customer erase": ["--customer", "--email", "--json", "--phone", "--shop", "--yes"],
    "customer export": ["--json", "--shop"],
    "customer resolve": ["--json", "--shop"],
    "db upgrade": ["--json", "--revision"],
    "demo": ["--locale"],
    "dispatch": ["--json", "--lease", "--once"],
    "inbox failed": ["--json", "--shop"],
    "inbox retry": ["--json"],
    "link": ["--customer", "--email", "--json", "--phone", "--shop"],
    "outbox stats": ["--json", "--shop"],
    "report": ["--flow", "--json", "--shop"],
    "report nps": ["--json", "--shop"],
    "sandbox": ["--auto-register", "--bot", "--host", "--no-limits", "--port"],
    "serve": ["--host", "--migrate", "--port"],
    "shop add": [
        "--bot-token", "--bot-username", "--country", "--currency", "--json", "--locale",
        "--name", "--platform", "--timezone", "--webhook-secret",
    ],
    "shop check": ["--backlog-age", "--json", "--stale"],
    "shop list": ["--json"],
    "shop set": ["--json"],
    "shop show": ["--json"],
    "support inbox": ["--json", "--shop"],
    "support reply": ["--json", "--shop"],
    "survey create": ["--attribute", "--choice", "--json", "--question", "--shop"],
    "survey list": ["--json", "--shop"],
    "survey send": ["--all", "--customer", "--json", "--shop"],
}  # fmt: skip


def _command(path: str) -> click.Command:
    command: click.Command = cli
    for name in path.split():
        assert isinstance(command, click.Group), path
        command = command.commands[name]
    return command


@pytest.mark.parametrize("path", sorted(CONTRACT))
def test_every_command_and_flag_of_the_contract_is_kept(path):
    flags = {o for p in _command(path).params for o in p.opts if o.startswith("-")}
    assert set(CONTRACT[path]) <= flags


def test_the_new_commands_are_there():
    for path in ("customer list", "customer show", "shop remove"):
        _command(path)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_nothing_imports_the_root():
    entry_points = {ROOT / "bot" / "cli" / "__init__.py", ROOT / "bot" / "__main__.py"}
    for path in (ROOT / "bot").rglob("*.py"):
        if path in entry_points:
            continue
        imported = _imports(path)
        root = {"bot.cli.root", "bot.cli.cli", "bot.cli.main", "bot.cli"} & imported
        assert not root, f"{path.relative_to(ROOT)} imports the root: {root}"


@pytest.mark.parametrize("module", GROUP_MODULES)
def test_each_group_module_loads_alone_with_its_own_click_command(module):
    probe = (
        f"import sys, click, bot.cli.{module} as m\n"
        "assert 'bot.cli.root' not in sys.modules, 'the root was loaded'\n"
        "print(sorted(n for n, v in vars(m).items() if isinstance(v, click.Command)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    if module != "common":
        assert result.stdout.strip() != "[]", f"bot/cli/{module}.py defines no command"


def test_the_root_adds_every_group_of_the_package():
    import importlib

    from bot.cli import root

    source = (ROOT / "bot" / "cli" / "root.py").read_text(encoding="utf-8")
    assert "cli.add_command(" in source and root.cli is cli
    for module in GROUP_MODULES:
        commands = [
            v
            for v in vars(importlib.import_module(f"bot.cli.{module}")).values()
            if isinstance(v, click.Command)
        ]
        nested = {
            id(c) for g in commands if isinstance(g, click.Group) for c in g.commands.values()
        }
        for command in commands:
            if id(command) not in nested:
                assert cli.commands.get(command.name) is command, f"{module}: {command.name}"
    assert {"shop", "customer", "report", "codes", "sandbox", "serve"} <= set(cli.commands)


def test_the_console_script_and_python_m_bot_still_work():
    (script,) = [
        e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "nudge"
    ]
    assert script.value == "bot.cli:main"
    from bot.cli import root

    assert script.load() is root.main
    for command in (
        [sys.executable, "-m", "bot", "--help"],
        [sys.executable, "-m", "bot.sandbox", "--help"],
    ):
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert result.returncode == 0, result.stderr
    assert (
        "customer"
        in subprocess.run(
            [sys.executable, "-m", "bot", "--help"], capture_output=True, text=True, timeout=60
        ).stdout
    )

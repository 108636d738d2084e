"""The `nudge` command: one module per command group, each its own Click group.

`root.py` adds the groups to the root command; the groups share bot/cli/common.py and never
import the root. `cli` and `main` (the console script `nudge = "bot.cli:main"`) are loaded on
first use, so importing one group (or `bot.cli.common`) does not load every other.
"""

from __future__ import annotations

from typing import Any

__all__ = ["cli", "main"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from bot.cli import root

        return getattr(root, name)
    raise AttributeError(f"module 'bot.cli' has no attribute {name!r}")

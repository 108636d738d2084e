"""Import every flow and message kind once, so they register with the flow and kind registries."""

from __future__ import annotations

import importlib

FEATURE_MODULES = (
    "bot.flows.abandoned_cart",
    "bot.flows.attribution",
    "bot.flows.birthday",
    "bot.flows.campaign",
    "bot.flows.lifecycle",
    "bot.flows.nps",
    "bot.flows.post_purchase",
    "bot.flows.welcome",
    "bot.flows.winback",
    "bot.surveys",
    "bot.support",
)


def load() -> None:
    """Import the feature modules (idempotent)."""
    for name in FEATURE_MODULES:
        importlib.import_module(name)

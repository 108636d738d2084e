"""Fixtures for the adapter tests: payload files and a parse context."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from integrations import ParseContext

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture
def data_dir() -> Path:
    """Return tests/data."""
    return DATA


@pytest.fixture
def load() -> Callable[[str], Any]:
    """Return a loader of tests/data/<relative> as parsed JSON."""

    def read(relative: str) -> Any:
        return json.loads((DATA / relative).read_text(encoding="utf-8"))

    return read


@pytest.fixture
def received_at() -> datetime:
    """Return when the test deliveries were received."""
    return datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def ctx(received_at: datetime) -> ParseContext:
    """Return the context of a Ukrainian shop receiving a delivery."""
    return ParseContext(default_region="UA", received_at=received_at)

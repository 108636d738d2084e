"""Faults on demand: 429 storms, 5xx answers, slow answers and dropped connections.

A fault matches requests by method, chat and bot token; it fires a given number of times (or
forever) and, optionally, only with some probability drawn from its own seeded generator.

`method="webhookAnswer"` is not a Bot API method: it is the bot's answer to a webhook delivery
as Telegram receives it. A 5xx or a drop there means the bot handled the update but Telegram
never saw the 2xx (a proxy or load balancer in between failed), so the update comes again.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from bot.sandbox.errors import ApiError, too_many_requests

FaultKind = Literal["retry_after", "server_error", "error", "slow", "drop"]
KINDS = ("retry_after", "server_error", "error", "slow", "drop")
WEBHOOK_ANSWER = "webhookAnswer"
_SERVER_ERRORS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(eq=False)
class Fault:
    """One injected misbehaviour and how often it has fired."""

    kind: FaultKind
    method: str | None = None
    chat_id: int | str | None = None
    token: str | None = None
    count: int | None = 1
    retry_after: int = 1
    status: int = 502
    description: str | None = None
    delay: float = 1.0
    probability: float = 1.0
    seed: int | None = None
    hits: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {KINDS}")
        if self.method is not None:
            self.method = self.method.lower()
        self._rng = random.Random(self.seed)

    @property
    def exhausted(self) -> bool:
        """Tell whether the fault has fired as often as it was asked to."""
        return self.count is not None and self.hits >= self.count

    def matches(self, token: str, method: str, chat_id: object) -> bool:
        """Tell whether this fault applies to a request (without firing it)."""
        if self.exhausted:
            return False
        if self.method is not None and self.method != method.lower():
            return False
        if self.token is not None and self.token != token:
            return False
        return self.chat_id is None or str(self.chat_id) == str(chat_id)

    def error(self) -> ApiError | None:
        """Return the error answer this fault produces, if it is an error kind."""
        if self.kind == "retry_after":
            return too_many_requests(self.retry_after)
        if self.kind == "server_error":
            return ApiError(
                self.status, self.description or _SERVER_ERRORS.get(self.status, "Server Error")
            )
        if self.kind == "error":
            return ApiError(self.status, self.description or "Bad Request: injected fault")
        return None


class Faults:
    """The registry of active faults, shared by every bot of a sandbox."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, kind: FaultKind = "retry_after", **options: object) -> Fault:
        """Add a fault, e.g. `add(method="sendMessage", kind="retry_after", count=5, ...)`."""
        fault = Fault(kind=kind, **options)  # type: ignore[arg-type]
        self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        """Remove one fault."""
        if fault in self._faults:
            self._faults.remove(fault)

    def clear(self) -> None:
        """Remove every fault."""
        self._faults.clear()

    def __len__(self) -> int:
        return len(self._faults)

    def __iter__(self) -> Iterator[Fault]:
        return iter(list(self._faults))

    def fire(
        self, token: str, method: str, chat_id: object, *, named_only: bool = False
    ) -> Fault | None:
        """Return the first fault that fires for this request, counting the hit.

        `named_only` skips faults that name no method (for the webhookAnswer pseudo-method).
        """
        if not self._faults:
            return None
        for fault in self._faults:
            if named_only and fault.method is None:
                continue
            if not fault.matches(token, method, chat_id):
                continue
            if fault.probability < 1.0 and fault._rng.random() >= fault.probability:
                continue
            fault.hits += 1
            if fault.exhausted:
                self._faults.remove(fault)
            return fault
        return None

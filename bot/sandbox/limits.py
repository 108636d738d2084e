"""Telegram's flood control: per-bot, per-chat and per-group send limits, and send statistics.

Limits are checked against the injected clock. Every accepted send is also recorded so tests can
ask for the most sends that fell into any one-second window, per bot and per chat. Every send
request that arrives, accepted or refused, is counted too (`arrived`, `arrivals`): the rate a
sender really achieved at the receiver, in any rolling second.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from bot.sandbox.errors import too_many_requests

ARRIVALS_KEPT = 200_000  # the newest send arrivals kept per bot, with their chat


@dataclass(frozen=True)
class Limits:
    """Flood-control settings; a field set to None switches that limit off."""

    per_bot_per_second: int | None = 30
    per_chat_per_second: float | None = 1.0
    per_chat_burst: int = 3
    per_group: int | None = 20
    group_window: float = 60.0

    @classmethod
    def off(cls) -> Limits:
        """Return limits that never refuse a send (for throughput benchmarks)."""
        return cls(per_bot_per_second=None, per_chat_per_second=None, per_group=None)

    @property
    def enabled(self) -> bool:
        """Tell whether any limit is on."""
        return any(
            x is not None
            for x in (self.per_bot_per_second, self.per_chat_per_second, self.per_group)
        )


def _wait(seconds: float) -> int:
    return max(1, math.ceil(seconds - 1e-9))


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class SendWindow:
    """The sends of the last second, and the most ever seen inside one second."""

    recent: deque[float] = field(default_factory=deque)
    peak: int = 0

    def add(self, now: float) -> None:
        """Record a send at `now` and update the peak."""
        recent = self.recent
        recent.append(now)
        while recent[0] <= now - 1.0:
            recent.popleft()
        if len(recent) > self.peak:
            self.peak = len(recent)


class SendLimiter:
    """Decides whether one bot may send now, and records what it sent."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._bot_window: deque[float] = deque()
        self._buckets: dict[int, _Bucket] = {}
        self._groups: dict[int, deque[float]] = {}
        self.sent = SendWindow()
        self.sent_per_chat: dict[int, SendWindow] = {}
        self.arrived = SendWindow()
        self.arrivals: deque[tuple[float, int]] = deque(maxlen=ARRIVALS_KEPT)

    def acquire(self, chat_id: int, *, is_group: bool, now: float) -> None:
        """Record a send to `chat_id` at `now`, or raise a 429 ApiError past a limit."""
        self.arrived.add(now)
        self.arrivals.append((now, chat_id))
        limits = self.limits
        if limits.per_bot_per_second is not None:
            window = self._bot_window
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limits.per_bot_per_second:
                raise too_many_requests(_wait(window[0] + 1.0 - now))
        bucket = None
        if limits.per_chat_per_second is not None:
            rate = limits.per_chat_per_second
            bucket = self._buckets.get(chat_id)
            if bucket is None:
                bucket = self._buckets[chat_id] = _Bucket(float(limits.per_chat_burst), now)
            else:
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(float(limits.per_chat_burst), bucket.tokens + elapsed * rate)
                bucket.updated = now
            if bucket.tokens < 1.0:
                raise too_many_requests(_wait((1.0 - bucket.tokens) / rate))
        group = None
        if is_group and limits.per_group is not None:
            group = self._groups.setdefault(chat_id, deque())
            while group and group[0] <= now - limits.group_window:
                group.popleft()
            if len(group) >= limits.per_group:
                raise too_many_requests(_wait(group[0] + limits.group_window - now))
        if limits.per_bot_per_second is not None:
            self._bot_window.append(now)
        if bucket is not None:
            bucket.tokens -= 1.0
        if group is not None:
            group.append(now)
        self.record(chat_id, now)

    def record(self, chat_id: int, now: float) -> None:
        """Count a send in the one-second window statistics."""
        self.sent.add(now)
        per_chat = self.sent_per_chat.get(chat_id)
        if per_chat is None:
            per_chat = self.sent_per_chat[chat_id] = SendWindow()
        per_chat.add(now)

    def reset(self) -> None:
        """Forget all windows and statistics."""
        self._bot_window.clear()
        self._buckets.clear()
        self._groups.clear()
        self.sent = SendWindow()
        self.sent_per_chat.clear()
        self.arrived = SendWindow()
        self.arrivals.clear()

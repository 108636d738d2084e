"""Send-rate limits per bot: a global rate, a per-chat rate, and the pause after a 429.

`RateLimiter` is the interface the channel uses; `SlidingWindowLimiter` is the in-process
implementation. A Redis-backed one (a sorted set of grant times per bot, a key per chat, a key
holding the pause deadline) can replace it to share limits between several dispatchers.

The guarantee is strict: in any window of `window` seconds at most `rate` sends of one bot are
granted, and two sends to one chat are at least `1 / per_chat + margin` seconds apart. The
window is one second plus a small margin by default, so that network jitter between here and
Telegram cannot squeeze one more send into a one-second window on their side. Within the window
sends are also paced (a GCRA with a burst of a tenth of the rate): 25/s goes out as bursts of
three 40 ms apart, not 25 at once, so a delay on the way cannot bunch two windows' sends.

What counts is when a send *arrives*, and a send granted just before this process stalls (a
loaded machine, a garbage collection) leaves late, next to the sends granted after the stall.
So the margin also follows the stalls this limiter sees: a wait that overslept by 80 ms widens
the window (and the pacing) by 80 ms at once, before the next grant; the extra margin is held
for a window, then fades by `LAG_DECAY` seconds per second while the process runs smoothly.
The channel also reports how long each send took (`observe`, optional for other limiters): a
send answered 80 ms slower than the quickest ones may have arrived up to 80 ms late, and
widens the window the same way.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Protocol

DEFAULT_MARGIN = 0.05
LAG_DECAY = 0.02  # seconds of stall margin forgotten per second of smooth running
MAX_LAG_MARGIN = 0.25
RTT_FLOOR_KEPT = 30.0  # seconds the quickest answer stays the yardstick


class RateLimiter(Protocol):
    """Decides when a bot may send to a chat."""

    async def acquire(self, bot: Hashable, chat: Hashable) -> None:
        """Wait until `bot` may send one message to `chat`, then count it."""
        ...

    def pause(self, bot: Hashable, seconds: float) -> None:
        """Stop every send of `bot` for `seconds` (Telegram answered 429 retry_after)."""
        ...


class _BotState:
    __slots__ = ("chats", "grants", "lock", "paused_until", "since_prune", "tat")

    def __init__(self) -> None:
        self.grants: deque[float] = deque()
        self.chats: dict[Hashable, float] = {}
        self.lock = asyncio.Lock()
        self.paused_until = 0.0
        self.since_prune = 0
        self.tat = 0.0  # GCRA: the theoretical arrival time of the next send


class SlidingWindowLimiter:
    """In-process limiter: a sliding window of grant times per bot, a spacing per chat."""

    def __init__(
        self,
        rate: float,
        per_chat: float | None = 1.0,
        *,
        margin: float = DEFAULT_MARGIN,
        window: float = 1.0,
        burst: float = 0.1,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.margin = margin
        self.window = window + margin
        # A fractional rate (0.5/s) means one send per 2 s: the window grows, the count stays 1.
        self._count = max(1, int(rate * window))
        if rate * window < 1:
            self.window = window / rate + margin
        self.chat_spacing = (1.0 / per_chat + margin) if per_chat else 0.0
        self._interval = self.window / self._count
        self._burst_allowance = (max(1, math.ceil(self._count * burst)) - 1) * self._interval
        self._now = monotonic
        self._bots: dict[Hashable, _BotState] = {}
        self._lag = 0.0  # the worst recent oversleep, fading
        self._lag_at = 0.0
        self._rtt_floor = math.inf  # the quickest recent answer to a send
        self._rtt_floor_at = 0.0

    @property
    def stall_margin(self) -> float:
        """Return the extra margin the recent stalls of this process call for (seconds)."""
        # Held in full while sends delayed by the stall may still share a window with new ones.
        fading = max(0.0, self._now() - self._lag_at - self.window - self._lag)
        return max(0.0, self._lag - fading * LAG_DECAY)

    def _overslept(self, seconds: float) -> None:
        # The last send granted before the stall went out up to a pacing interval earlier
        # than this wait was due to end: it may arrive that much later still. The base
        # margin covers what it can; the rest widens the window.
        self._widen(seconds + self._interval - self.margin)

    def _widen(self, lag: float) -> None:
        lag = min(MAX_LAG_MARGIN, lag)
        if lag > self.stall_margin:
            self._lag = lag
            self._lag_at = self._now()

    def observe(self, bot: Hashable, seconds: float) -> None:
        """Note how long a granted send took to be answered (not part of `RateLimiter`).

        A send that takes longer than the quickest recent ones may have reached Telegram that
        much later than granted (a busy network, a busy receiver): the window widens by the
        excess over the base margin, as after a stall here.
        """
        now = self._now()
        if seconds < self._rtt_floor or now - self._rtt_floor_at > RTT_FLOOR_KEPT:
            self._rtt_floor, self._rtt_floor_at = seconds, now
        self._widen(seconds - self._rtt_floor - self.margin)

    def _state(self, bot: Hashable) -> _BotState:
        state = self._bots.get(bot)
        if state is None:
            state = self._bots[bot] = _BotState()
        return state

    def pause(self, bot: Hashable, seconds: float) -> None:
        """Stop every send of `bot` for `seconds` from now (extending, never shortening)."""
        state = self._state(bot)
        state.paused_until = max(state.paused_until, self._now() + max(0.0, seconds))

    def paused_for(self, bot: Hashable) -> float:
        """Return how many seconds `bot` stays paused (0 when it may send)."""
        state = self._bots.get(bot)
        return max(0.0, state.paused_until - self._now()) if state else 0.0

    async def acquire(self, bot: Hashable, chat: Hashable) -> None:
        """Wait for the pause, the bot's window and the chat's spacing; then count the send."""
        state = self._state(bot)
        while True:
            chat_wait = self._chat_wait(state, chat)
            if chat_wait > 0:
                await asyncio.sleep(chat_wait)
            async with state.lock:  # FIFO: waiters are served in arrival order
                while True:
                    now = self._now()
                    wait = max(state.paused_until - now, self._window_wait(state, now))
                    if wait <= 0:
                        break
                    await asyncio.sleep(wait)
                    self._overslept(self._now() - now - wait)
                if self._chat_wait(state, chat) > 0:  # another send to this chat went first
                    continue
                now = self._now()
                state.grants.append(now)
                stall = self.stall_margin
                state.tat = max(state.tat, now) + self._interval * (1 + stall / self.window)
                if self.chat_spacing:
                    state.chats[chat] = now
                    self._prune(state, now)
                return

    def _window_wait(self, state: _BotState, now: float) -> float:
        grants = state.grants
        oldest = now - self.window - MAX_LAG_MARGIN  # kept long enough for any stall margin
        while grants and grants[0] <= oldest:
            grants.popleft()
        paced = state.tat - self._burst_allowance - now
        if len(grants) < self._count:
            return paced
        # one more fits once the count-th newest grant has left the (widened) window
        return max(paced, grants[-self._count] + self.window + self.stall_margin - now)

    def _chat_wait(self, state: _BotState, chat: Hashable) -> float:
        if not self.chat_spacing:
            return 0.0
        last = state.chats.get(chat)
        if last is None:
            return 0.0
        return last + self.chat_spacing - self._now()

    def _prune(self, state: _BotState, now: float) -> None:
        state.since_prune += 1
        if state.since_prune < 4096:
            return
        state.since_prune = 0
        horizon = now - self.chat_spacing
        state.chats = {chat: t for chat, t in state.chats.items() if t > horizon}


__all__ = ["DEFAULT_MARGIN", "RateLimiter", "SlidingWindowLimiter"]

"""Send-rate limits per bot: a global rate, a per-chat rate, and the pause after a 429.

`RateLimiter` is the interface the channel uses; `SlidingWindowLimiter` is the in-process
implementation, `RedisLimiter` (redis_limiter.py) shares the same limits between instances.

The guarantee is strict, and it holds where Telegram counts: when sends *arrive*. In any window
of `window` seconds at most `rate` sends of one bot go out, and two sends to one chat are at
least `1 / per_chat + margin` seconds apart. The window is one second plus a small margin by
default, so that network jitter between here and Telegram cannot squeeze one more send into a
one-second window on their side. Within the window sends are also paced (a GCRA with a burst of
a tenth of the rate): 25/s goes out as bursts of three 40 ms apart, not 25 at once.

A grant is not a departure. Between the two lie the cap on requests in flight, a connection to
take or to open, and the event loop's turn, which on a loaded machine can take hundreds of
milliseconds: sends granted 40 ms apart then leave together, beside the sends granted after
them. So the channel takes a `Grant` (`reserve`) and tells it when the request goes on the wire
(`Grant.leave`): until then the send counts as leaving *now* in every window, from then on at
the moment it left. A send held up anywhere on its way holds back the sends granted after it,
however long it was held. (`acquire` is `reserve` and `leave` at once: the send is dated at
its grant.)

The way from the wire to Telegram can still be uneven (a busy network, a busy receiver). The
channel reports how long each send took from its departure to its answer (`observe`): a send
answered 80 ms slower than the quickest ones may have arrived up to 80 ms late, and widens the
window (and the pacing) by the excess over the base margin at once, before the next grant. A
send dated at its grant may also have been held by a stall of this process: a wait for a
grant that overslept by 80 ms widens the window the same way. The extra margin is held for a
window, then fades by `LAG_DECAY` seconds per second while things run smoothly.
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


class Grant(Protocol):
    """A granted send, counted as leaving now until `leave` dates it."""

    def leave(self) -> None:
        """Date the send: it goes on the wire now (later calls do nothing)."""
        ...


class RateLimiter(Protocol):
    """Decides when a bot may send to a chat."""

    async def reserve(self, bot: Hashable, chat: Hashable) -> Grant:
        """Wait until `bot` may send one message to `chat`; count it until it leaves."""
        ...

    async def acquire(self, bot: Hashable, chat: Hashable) -> None:
        """Wait until `bot` may send one message to `chat`, then count it as sent now."""
        ...

    def pause(self, bot: Hashable, seconds: float) -> None:
        """Stop every send of `bot` for `seconds` (Telegram answered 429 retry_after)."""
        ...


class StallMargin:
    """The extra window margin that recent stalls and slow answers call for (seconds).

    A lag widens it at once (up to `MAX_LAG_MARGIN`); it is held for a window, while sends
    delayed by the lag may still share a window with new ones, then fades by `LAG_DECAY`
    seconds per second while things run smoothly. Answer times (`observe`) count from the
    quickest recent one: what a send took beyond it, it may have arrived late.
    """

    def __init__(self, window: float, margin: float, monotonic: Callable[[], float]) -> None:
        self.window = window
        self.margin = margin
        self._now = monotonic
        self._lag = 0.0
        self._lag_at = 0.0
        self._rtt_floor = math.inf  # the quickest recent answer to a send
        self._rtt_floor_at = 0.0

    @property
    def seconds(self) -> float:
        """Return the margin now."""
        fading = max(0.0, self._now() - self._lag_at - self.window - self._lag)
        return max(0.0, self._lag - fading * LAG_DECAY)

    def widen(self, lag: float) -> None:
        """Widen the margin to `lag` seconds (capped) unless it is wider already."""
        lag = min(MAX_LAG_MARGIN, lag)
        if lag > self.seconds:
            self._lag = lag
            self._lag_at = self._now()

    def observe(self, seconds: float) -> None:
        """Note a send's time from departure to answer; widen by its excess over the margin."""
        now = self._now()
        if seconds < self._rtt_floor or now - self._rtt_floor_at > RTT_FLOOR_KEPT:
            self._rtt_floor, self._rtt_floor_at = seconds, now
        self.widen(seconds - self._rtt_floor - self.margin)


class _BotState:
    __slots__ = (
        "chats",
        "departed",
        "grants",
        "lock",
        "paused_until",
        "pending",
        "since_prune",
        "tat",
    )

    def __init__(self) -> None:
        self.grants: deque[float] = deque()  # departure times of sends that left
        self.pending = 0  # sends granted and not yet left: they count as leaving now
        self.departed = asyncio.Event()  # a pending send left
        self.chats: dict[Hashable, float] = {}
        self.lock = asyncio.Lock()
        self.paused_until = 0.0
        self.since_prune = 0
        self.tat = 0.0  # GCRA: the theoretical arrival time of the next send


class _Grant:
    """One send granted by `SlidingWindowLimiter`, pending until it leaves."""

    __slots__ = ("_chat", "_limiter", "_state")

    def __init__(self, limiter: SlidingWindowLimiter, state: _BotState, chat: Hashable) -> None:
        self._limiter: SlidingWindowLimiter | None = limiter
        self._state = state
        self._chat = chat

    def leave(self) -> None:
        """Date the send: it goes on the wire now (later calls do nothing)."""
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._leave(self._state, self._chat)


class SlidingWindowLimiter:
    """In-process limiter: a sliding window of departures per bot, a spacing per chat."""

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
        self._stalls = StallMargin(self.window, margin, monotonic)

    @property
    def stall_margin(self) -> float:
        """Return the extra margin the recent stalls and slow answers call for (seconds)."""
        return self._stalls.seconds

    def _overslept(self, seconds: float) -> None:
        # The last send dated at its grant before the stall went out up to a pacing interval
        # earlier than this wait was due to end: it may arrive that much later still. The
        # base margin covers what it can; the rest widens the window.
        self._stalls.widen(seconds + self._interval - self.margin)

    def observe(self, bot: Hashable, seconds: float) -> None:
        """Note how long a send took from its departure to its answer.

        A send that takes longer than the quickest recent ones may have reached Telegram that
        much later than it left (a busy network, a busy receiver): the window widens by the
        excess over the base margin, as after a stall here.
        """
        self._stalls.observe(seconds)

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
        """Wait for the pause, the bot's window and the chat's spacing; count the send now."""
        (await self._grant(bot, chat, dated=True)).leave()

    async def reserve(self, bot: Hashable, chat: Hashable) -> Grant:
        """Wait as `acquire` does; the send counts as leaving now until the grant's `leave`."""
        return await self._grant(bot, chat, dated=False)

    async def _grant(self, bot: Hashable, chat: Hashable, *, dated: bool) -> _Grant:
        state = self._state(bot)
        while True:
            chat_wait = self._chat_wait(state, chat)
            if chat_wait > 0:
                await asyncio.sleep(chat_wait)
            async with state.lock:  # FIFO: waiters are served in arrival order
                while True:
                    now = self._now()
                    window = self._window_wait(state, now)
                    if window is None:  # the window is full of sends on their way out
                        state.departed.clear()
                        await state.departed.wait()
                        continue
                    wait = max(state.paused_until - now, window)
                    if wait <= 0:
                        break
                    await asyncio.sleep(wait)
                    if dated:  # dated at the grant: a stall here may delay its departure
                        self._overslept(self._now() - now - wait)
                if self._chat_wait(state, chat) > 0:  # another send to this chat went first
                    continue
                now = self._now()
                state.pending += 1
                stall = self.stall_margin
                state.tat = max(state.tat, now) + self._interval * (1 + stall / self.window)
                if self.chat_spacing:
                    state.chats[chat] = now
                    self._prune(state, now)
                return _Grant(self, state, chat)

    def _leave(self, state: _BotState, chat: Hashable) -> None:
        now = self._now()
        state.pending -= 1
        state.grants.append(now)
        if self.chat_spacing:  # the chat's spacing runs from when the send really left
            state.chats[chat] = max(state.chats.get(chat, now), now)
        state.departed.set()

    def _window_wait(self, state: _BotState, now: float) -> float | None:
        """Return how long until one more send fits (None: until a pending one leaves)."""
        grants = state.grants
        oldest = now - self.window - MAX_LAG_MARGIN  # kept long enough for any stall margin
        while grants and grants[0] <= oldest:
            grants.popleft()
        paced = state.tat - self._burst_allowance - now
        room = self._count - state.pending  # what the departed sends may still take
        if room <= 0:
            return None
        if len(grants) < room:
            return paced
        # one more fits once the room-th newest departure has left the (widened) window
        return max(paced, grants[-room] + self.window + self.stall_margin - now)

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


__all__ = [
    "DEFAULT_MARGIN",
    "MAX_LAG_MARGIN",
    "Grant",
    "RateLimiter",
    "SlidingWindowLimiter",
    "StallMargin",
]

"""Send-rate limits shared by every instance through Redis: one atomic script per acquire.

`RedisLimiter` keeps `SlidingWindowLimiter`'s guarantee (bot/delivery/limiter.py) across any
number of processes: in any window of `1 s + margin` at most `rate` sends of one bot leave,
paced as a GCRA with a burst of a tenth of the rate, two sends to one chat are at least
`1 / per_chat + margin` apart, and a 429 `retry_after` pause stops that bot everywhere.

Per bot, in one Redis hash slot (`nudge:limits:{<bot key>}:…`, the bot key a hash of the bot's
id, never its token): a sorted set of sends, the GCRA's theoretical arrival time, the pause
deadline, the widest stall margin an instance reported, and one short-lived key per chat
holding its last send. The scripts read Redis's own clock (TIME), so instances on hosts with
different clocks still share one window. The acquire script grants and records the send, or
answers how long to wait and why (the bot's window or pause: the caller keeps its place in this
process's queue for that bot; the chat's spacing: the caller steps aside so sends to other chats
go first).

As in-process, a grant is not a departure: a send granted by `reserve` is recorded as still on
its way (scored `PENDING_HOLD` ahead, so it counts in every window until then) and dated by the
departure script once the channel saw it leave (`Grant.leave`; departures are written in the
background, several per call). A send held on its way therefore holds back the sends every
instance grants after it; one whose instance died is counted until its hold lapses. Each
instance's stall margin (`observe`: answers slower than the quickest ones) widens the window
and the pacing of that bot for every instance for a window.

`pause` is synchronous (the channel calls it from an exception handler): the pause holds here at
once and is written to Redis in the background, retried until Redis takes it or it has expired.

Redis unreachable: `reserve` does not grant. It waits and tries again, logging once when the
outage starts and once when it ends, so sending pauses and resumes by itself; nothing is granted
that Redis did not count, so no instance can exceed Telegram's limits in the meantime (a
departure Redis did not take stays counted as on its way until its hold lapses).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import math
import time
import uuid
from collections.abc import Callable, Hashable
from typing import Any

from bot.delivery.limiter import DEFAULT_MARGIN, MAX_LAG_MARGIN, Grant, StallMargin

log = logging.getLogger(__name__)

KEY_PREFIX = "nudge:limits:"
RETRY_MIN, RETRY_MAX = 0.05, 2.0  # seconds between attempts while Redis does not answer
SOCKET_TIMEOUT = 2.0  # seconds a Redis call may take before it counts as unreachable
MAX_SLEEP = 5.0  # never trust one wait hint longer than this: re-ask Redis
# Between a grant and its arrival at Telegram lie a Redis round trip, another process's event
# loop and the network: the window is widened more than in-process (DEFAULT_MARGIN) so that
# uneven delays cannot squeeze one more send into a second on Telegram's side.
SHARED_MARGIN = max(DEFAULT_MARGIN, 0.2)
# How long a granted send counts as on its way before its departure must have been dated: the
# channel's request timeout, the longest a send can be held (a dead instance's grants lapse then).
PENDING_HOLD = 10.0

# KEYS: sends (zset), tat, pause, chat (a dummy when spacing is 0), widest stall margin
# ARGV: window_us, count, interval_us, burst_us, chat_spacing_us, member, hold_us, stall_us,
#       keep_us (how long sends are kept: the window and the widest margin)
# Returns {0, 0} granted; {1, us} wait for the bot (window, pacing or pause); {2, us} for the chat.
ACQUIRE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local interval = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local spacing = tonumber(ARGV[5])
local hold = tonumber(ARGV[7])
local stall = tonumber(ARGV[8])
local keep = tonumber(ARGV[9])
local pause = tonumber(redis.call('GET', KEYS[3]) or '0')
if pause > now then
  return {1, math.ceil(pause - now)}
end
if spacing > 0 then
  local last = redis.call('GET', KEYS[4])
  if last then
    local wait = tonumber(last) + spacing - now
    if wait > 0 then
      return {2, math.ceil(wait)}
    end
  end
end
local shared = tonumber(redis.call('GET', KEYS[5]) or '0')
if stall > 0 and stall >= shared then
  redis.call('SET', KEYS[5], string.format('%.0f', stall), 'PX', math.ceil(window / 1000))
end
stall = math.max(stall, shared)
interval = interval * (1 + stall / window)
window = window + stall
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - keep))
local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
local wait = tat - burst - now
local since = string.format('(%.0f', now - window)
local inside = redis.call('ZCOUNT', KEYS[1], since, '+inf')
if inside >= count then
  local nth = redis.call('ZRANGEBYSCORE', KEYS[1], since, '+inf', 'WITHSCORES',
                         'LIMIT', inside - count, 1)
  local score = tonumber(nth[2])
  if score > now then
    wait = math.max(wait, interval)
  else
    wait = math.max(wait, score + window - now)
  end
end
if wait > 0 then
  return {1, math.ceil(wait)}
end
redis.call('ZADD', KEYS[1], string.format('%.0f', now + hold), ARGV[6])
redis.call('PEXPIRE', KEYS[1], math.ceil((keep + hold) / 1000) + 1000)
tat = math.max(tat, now) + interval
redis.call('SET', KEYS[2], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
if spacing > 0 then
  redis.call('SET', KEYS[4], string.format('%.0f', now), 'PX', math.ceil(spacing / 1000) + 1)
end
return {0, 0}
"""

# KEYS: pause; ARGV: seconds as microseconds. Extends the deadline, never shortens it.
PAUSE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local deadline = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < deadline then
  redis.call('SET', KEYS[1], string.format('%.0f', deadline),
             'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
end
return 1
"""

# KEYS: sends, then the chat of each departure; ARGV: chat_spacing_us, then per departure its
# member and how long ago it left (us, by the sender's clock). Each send is dated when it left;
# its chat's spacing runs from then.
DEPART_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local spacing = tonumber(ARGV[1])
for i = 2, #KEYS do
  local left = now - tonumber(ARGV[2 * i - 1])
  redis.call('ZADD', KEYS[1], string.format('%.0f', left), ARGV[2 * i - 2])
  if spacing > 0 and left + spacing > now then
    local last = tonumber(redis.call('GET', KEYS[i]) or '0')
    if left > last then
      redis.call('SET', KEYS[i], string.format('%.0f', left),
                 'PX', math.ceil((left + spacing - now) / 1000) + 1)
    end
  end
end
return 1
"""

GRANTED, BOT_WAIT, CHAT_WAIT = 0, 1, 2


def bot_key(bot: Hashable) -> str:
    """Return the Redis name of a bot: a hash of its identity, so no token ends up in Redis."""
    return hashlib.sha256(str(bot).encode("utf-8", "surrogatepass")).hexdigest()[:20]


def _chat_key(chat: Hashable) -> str:
    text = str(chat)
    if len(text) <= 40 and text.lstrip("-").isalnum():
        return text
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def redis_errors() -> tuple[type[BaseException], ...]:
    """Return the exceptions that mean Redis did not answer (worth waiting for)."""
    import redis.exceptions

    return (redis.exceptions.RedisError, OSError, TimeoutError, ConnectionError)


class _RedisGrant:
    """A send granted through Redis, recorded as on its way until `leave` dates it."""

    __slots__ = ("_chat_key", "_limiter", "_member", "_name")

    def __init__(self, limiter: RedisLimiter, name: str, chat_key: str, member: str) -> None:
        self._limiter: RedisLimiter | None = limiter
        self._name = name
        self._chat_key = chat_key
        self._member = member

    def leave(self) -> None:
        """Date the send: it goes on the wire now (later calls do nothing)."""
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._departed(self._name, self._chat_key, self._member)


class RedisLimiter:
    """Per-bot rate, per-chat spacing and 429 pauses shared through Redis (see the module)."""

    def __init__(
        self,
        client: Any,
        rate: float,
        per_chat: float | None = 1.0,
        *,
        margin: float = SHARED_MARGIN,
        window: float = 1.0,
        burst: float = 0.1,
        prefix: str = KEY_PREFIX,
        monotonic: Callable[[], float] = time.monotonic,
        owns_client: bool = False,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.client = client
        self.rate = rate
        self.window = window + margin
        count = max(1, int(rate * window))
        if rate * window < 1:
            self.window = window / rate + margin
        self.count = count
        self.chat_spacing = (1.0 / per_chat + margin) if per_chat else 0.0
        self.interval = self.window / count
        self.burst_allowance = (max(1, math.ceil(count * burst)) - 1) * self.interval
        self.prefix = prefix
        self._now = monotonic
        self._owns_client = owns_client
        self._acquire = client.register_script(ACQUIRE_SCRIPT)
        self._pause = client.register_script(PAUSE_SCRIPT)
        self._depart = client.register_script(DEPART_SCRIPT)
        self._stalls = StallMargin(self.window, margin, monotonic)
        self._locks: dict[str, asyncio.Lock] = {}
        self._paused_until: dict[str, float] = {}
        self._writes: set[asyncio.Task[None]] = set()
        self._departures: dict[str, list[tuple[str, str, float]]] = {}
        self._dating: asyncio.Task[None] | None = None
        self._member = f"{uuid.uuid4().hex[:12]}:"
        self._serial = itertools.count()
        self._down_since: float | None = None
        self._errors = redis_errors()

    @classmethod
    def from_url(cls, url: str, rate: float, per_chat: float | None = 1.0, **kw: Any) -> Any:
        """Build a limiter with its own client for `url` (closed by `close`)."""
        return cls(redis_client(url), rate, per_chat, owns_client=True, **kw)

    # ---------------------------------------------------------------------------- keys

    def _keys(self, name: str, chat: Hashable) -> list[str]:
        base = f"{self.prefix}{{{name}}}:"
        chat_key = base + "chat:" + _chat_key(chat) if self.chat_spacing else base + "chat:-"
        return [base + "grants", base + "tat", base + "pause", chat_key, base + "stall"]

    # ---------------------------------------------------------------------------- pause

    def pause(self, bot: Hashable, seconds: float) -> None:
        """Stop every send of `bot` for `seconds`: here at once, everywhere once Redis has it."""
        seconds = max(0.0, float(seconds))
        name = bot_key(bot)
        until = self._now() + seconds
        self._paused_until[name] = max(self._paused_until.get(name, 0.0), until)
        task = asyncio.get_running_loop().create_task(self._share_pause(name, seconds, until))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def paused_for(self, bot: Hashable) -> float:
        """Return how many seconds `bot` stays paused as this process knows it."""
        return max(0.0, self._paused_until.get(bot_key(bot), 0.0) - self._now())

    async def _share_pause(self, name: str, seconds: float, until: float) -> None:
        key = f"{self.prefix}{{{name}}}:pause"
        delay = RETRY_MIN
        while True:
            left = until - self._now()
            if left <= 0:
                return  # expired before Redis answered: nothing left to share
            try:
                await self._pause(keys=[key], args=[math.ceil(left * 1_000_000)])
                return
            except self._errors as exc:
                self._outage(exc)
                await asyncio.sleep(min(delay, left))
                delay = min(RETRY_MAX, delay * 2)

    # ---------------------------------------------------------------------- stall margin

    @property
    def stall_margin(self) -> float:
        """Return the extra margin this instance's recent slow answers call for (seconds)."""
        return self._stalls.seconds

    def observe(self, bot: Hashable, seconds: float) -> None:
        """Note how long a send took from its departure to its answer.

        A send answered later than the quickest recent ones may have reached Telegram that much
        later than it left: the bot's window and pacing widen by the excess over the margin,
        for every instance (the widest margin an instance reports holds for a window).
        """
        self._stalls.observe(seconds)

    # -------------------------------------------------------------------------- acquire

    async def acquire(self, bot: Hashable, chat: Hashable) -> None:
        """Wait for the bot's pause and window and the chat's spacing, shared; count it now."""
        await self._grant(bot, chat, hold=0.0)

    async def reserve(self, bot: Hashable, chat: Hashable) -> Grant:
        """Wait as `acquire` does; the send counts as on its way until the grant's `leave`."""
        return await self._grant(bot, chat, hold=PENDING_HOLD)

    async def _grant(self, bot: Hashable, chat: Hashable, *, hold: float) -> _RedisGrant:
        name = bot_key(bot)
        keys = self._keys(name, chat)
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        while True:
            async with lock:  # FIFO within this process; the script arbitrates between them
                chat_wait, member = await self._try_as_head(name, keys, hold)
                if member is not None:
                    return _RedisGrant(self, name, keys[3], member)
            await asyncio.sleep(chat_wait)  # step aside: sends to other chats go first

    async def _try_as_head(
        self, name: str, keys: list[str], hold: float
    ) -> tuple[float, str | None]:
        """Ask Redis until the send is granted (its member) or only the chat holds it (wait)."""
        delay = RETRY_MIN
        while True:
            local = self._paused_until.get(name, 0.0) - self._now()
            if local > 0:
                await asyncio.sleep(local)
                continue
            member = self._member + str(next(self._serial))
            try:
                kind, micros = await self._acquire(
                    keys=keys,
                    args=[
                        math.ceil(self.window * 1_000_000),
                        self.count,
                        round(self.interval * 1_000_000),
                        round(self.burst_allowance * 1_000_000),
                        math.ceil(self.chat_spacing * 1_000_000),
                        member,
                        math.ceil(hold * 1_000_000),
                        round(self._stalls.seconds * 1_000_000),
                        math.ceil((self.window + MAX_LAG_MARGIN) * 1_000_000),
                    ],
                )
            except self._errors as exc:
                self._outage(exc)
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)
                continue
            self._recovered()
            delay = RETRY_MIN
            wait = int(micros) / 1_000_000
            if int(kind) == GRANTED:
                return 0.0, member
            if int(kind) == CHAT_WAIT:
                return max(wait, 0.001), None
            await asyncio.sleep(min(wait, MAX_SLEEP))

    # ------------------------------------------------------------------------ departures

    def _departed(self, name: str, chat_key: str, member: str) -> None:
        """Queue a send's departure; one task writes what queued meanwhile, per bot a call."""
        self._departures.setdefault(name, []).append((chat_key, member, self._now()))
        if self._dating is None or self._dating.done():
            self._dating = asyncio.get_running_loop().create_task(self._date_departures())

    async def _date_departures(self) -> None:
        while self._departures:
            batch, self._departures = self._departures, {}
            await asyncio.gather(*(self._date(name, sends) for name, sends in batch.items()))

    async def _date(self, name: str, sends: list[tuple[str, str, float]]) -> None:
        now = self._now()
        args: list[Any] = [math.ceil(self.chat_spacing * 1_000_000)]
        for _chat_key, member, left in sends:
            args += [member, max(0, round((now - left) * 1_000_000))]
        keys = [f"{self.prefix}{{{name}}}:grants", *(chat_key for chat_key, _, _ in sends)]
        try:
            await self._depart(keys=keys, args=args)
        except self._errors as exc:  # they stay counted as on their way until the hold lapses
            self._outage(exc)

    # --------------------------------------------------------------------------- outage

    def _outage(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = self._now()
            log.warning(
                "Redis unreachable (%s): sending paused until it answers", type(exc).__name__
            )

    def _recovered(self) -> None:
        if self._down_since is not None:
            log.warning(
                "Redis answers again after %.1f s: sending resumes", self._now() - self._down_since
            )
            self._down_since = None

    @property
    def reachable(self) -> bool:
        """Tell whether the last call to Redis succeeded."""
        return self._down_since is None

    async def close(self) -> None:
        """Write the departures still queued, stop writing pauses, close an own client."""
        if self._dating is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._dating
        for task in list(self._writes):
            task.cancel()
        for task in list(self._writes):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._owns_client:
            await self.client.aclose()


def redis_client(url: str) -> Any:
    """Return a redis.asyncio client for `url` that gives up on a silent server in seconds."""
    import redis.asyncio as redis

    return redis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT
    )


def shared_redis(settings: Any) -> Any:
    """Return a client for NUDGE_REDIS_URL, or None when it is not set."""
    return redis_client(settings.redis_url) if settings.redis_url else None


def build_limiter(settings: Any, client: Any = None) -> Any:
    """Return the limiter the settings ask for: shared through Redis when NUDGE_REDIS_URL is set
    (on `client` when given, else its own), else in-process."""
    from bot.delivery.limiter import SlidingWindowLimiter

    dispatch = settings.dispatch
    if not settings.redis_url:
        return SlidingWindowLimiter(dispatch.rate_per_second, dispatch.per_chat_per_second)
    if client is not None:
        return RedisLimiter(client, dispatch.rate_per_second, dispatch.per_chat_per_second)
    return RedisLimiter.from_url(
        settings.redis_url, dispatch.rate_per_second, dispatch.per_chat_per_second
    )


__all__ = [
    "KEY_PREFIX",
    "RedisLimiter",
    "bot_key",
    "build_limiter",
    "redis_client",
    "shared_redis",
]

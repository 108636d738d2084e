"""Send-rate limits shared by every instance through Redis: one atomic script per acquire.

`RedisLimiter` keeps `SlidingWindowLimiter`'s guarantee (bot/delivery/limiter.py) across any
number of processes: in any window of `1 s + margin` at most `rate` sends of one bot are
granted, paced as a GCRA with a burst of a tenth of the rate, two sends to one chat are at least
`1 / per_chat + margin` apart, and a 429 `retry_after` pause stops that bot everywhere.

Per bot, in one Redis hash slot (`nudge:limits:{<bot key>}:…`, the bot key a hash of the bot's
id, never its token): a sorted set of grant times, the GCRA's theoretical arrival time, the pause
deadline, and one short-lived key per chat holding its last grant. The script reads Redis's own
clock (TIME), so instances on hosts with different clocks still share one window. It grants and
records the send, or answers how long to wait and why (the bot's window or pause: the caller
keeps its place in this process's queue for that bot; the chat's spacing: the caller steps aside
so sends to other chats go first).

`pause` is synchronous (the channel calls it from an exception handler): the pause holds here at
once and is written to Redis in the background, retried until Redis takes it or it has expired.

Redis unreachable: `acquire` does not grant. It waits and tries again, logging once when the
outage starts and once when it ends, so sending pauses and resumes by itself; nothing is granted
that Redis did not count, so no instance can exceed Telegram's limits in the meantime.
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

from bot.delivery.limiter import DEFAULT_MARGIN

log = logging.getLogger(__name__)

KEY_PREFIX = "nudge:limits:"
RETRY_MIN, RETRY_MAX = 0.05, 2.0  # seconds between attempts while Redis does not answer
SOCKET_TIMEOUT = 2.0  # seconds a Redis call may take before it counts as unreachable
MAX_SLEEP = 5.0  # never trust one wait hint longer than this: re-ask Redis
# Between a grant and its arrival at Telegram lie a Redis round trip, another process's event
# loop and the network: the window is widened more than in-process (DEFAULT_MARGIN) so that
# uneven delays cannot squeeze one more send into a second on Telegram's side.
SHARED_MARGIN = max(DEFAULT_MARGIN, 0.2)
RESTAMP_AFTER = 0.02  # a grant that took longer to reach us is re-dated to when it arrived

# KEYS: grants (zset), tat, pause, chat (may be a dummy when spacing is 0)
# ARGV: window_us, count, interval_us, burst_us, chat_spacing_us, member
# Returns {0, 0} granted; {1, us} wait for the bot (window, pacing or pause); {2, us} for the chat.
ACQUIRE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local interval = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local spacing = tonumber(ARGV[5])
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
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
local wait = tat - burst - now
if redis.call('ZCARD', KEYS[1]) >= count then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  wait = math.max(wait, tonumber(oldest[2]) + window - now)
end
if wait > 0 then
  return {1, math.ceil(wait)}
end
redis.call('ZADD', KEYS[1], now, ARGV[6])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
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

# KEYS: grants, chat; ARGV: member, chat_spacing_us. A grant that reached its process late
# (a slow round trip, a busy event loop) counts from now: the window and the chat's spacing
# then run from when the send really leaves, not from when Redis decided.
RESTAMP_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('SET', KEYS[2], string.format('%.0f', now), 'PX',
             math.ceil(tonumber(ARGV[2]) / 1000) + 1)
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
        self._restamp = client.register_script(RESTAMP_SCRIPT)
        self._locks: dict[str, asyncio.Lock] = {}
        self._paused_until: dict[str, float] = {}
        self._writes: set[asyncio.Task[None]] = set()
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
        return [base + "grants", base + "tat", base + "pause", chat_key]

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

    # -------------------------------------------------------------------------- acquire

    async def acquire(self, bot: Hashable, chat: Hashable) -> None:
        """Wait for the bot's pause and window and the chat's spacing, shared; count the send."""
        name = bot_key(bot)
        keys = self._keys(name, chat)
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        while True:
            async with lock:  # FIFO within this process; the script arbitrates between them
                chat_wait = await self._try_as_head(name, keys)
                if chat_wait == 0:
                    return
            await asyncio.sleep(chat_wait)  # step aside: sends to other chats go first

    async def _try_as_head(self, name: str, keys: list[str]) -> float:
        """Ask Redis until the send is granted (0) or only the chat holds it (its wait, s)."""
        delay = RETRY_MIN
        while True:
            local = self._paused_until.get(name, 0.0) - self._now()
            if local > 0:
                await asyncio.sleep(local)
                continue
            member = self._member + str(next(self._serial))
            asked = self._now()
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
                if self._now() - asked > RESTAMP_AFTER:
                    await self._late_grant(keys, member)
                return 0.0
            if int(kind) == CHAT_WAIT:
                return max(wait, 0.001)
            await asyncio.sleep(min(wait, MAX_SLEEP))

    async def _late_grant(self, keys: list[str], member: str) -> None:
        spacing = math.ceil(self.chat_spacing * 1_000_000)
        try:
            await self._restamp(keys=[keys[0], keys[3]], args=[member, spacing])
        except self._errors as exc:  # granted already: the send goes, dated as Redis decided
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
        """Stop writing pauses and close the client if this limiter opened it."""
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

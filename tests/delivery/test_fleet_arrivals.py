"""The rate holds where Telegram counts it, at arrival, not at the limiter's grant (#12).

A granted send can be held on its way to the wire: by the cap on requests in flight while other
bots' requests hang, by a new connection that is slow to open, by the event loop's turn on a
loaded machine. Sends granted apart then leave together, beside the sends granted after them;
the receiver must still never see more than the rate in any rolling second.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from lanes_support import most_in_any_window

from bot.delivery.channels.telegram import TelegramChannel
from bot.delivery.limiter import SlidingWindowLimiter
from bot.messages.render import Rendered

STEADY, JAMMER = "720001:steady-bot", "720002:jammer-bot"
SLOW_START = "720003:slow-start-bot"


def arrived(sandbox: Any, token: str) -> list[float]:
    """Return when each send request of the bot arrived at the sandbox, in order."""
    return sorted(t for t, _chat in sandbox.bot(token).limiter.arrivals)


async def send_all(channel: TelegramChannel, token: str, chats: list[int]) -> None:
    """Send one message to each chat through the channel, all at once, and check each went."""

    async def send(chat: int) -> None:
        delivery = await channel.send(sender=token, recipient=chat, message=Rendered("Sale"))
        assert delivery.message_id is not None, delivery

    await asyncio.gather(*(send(chat) for chat in chats))


async def test_sends_held_by_the_in_flight_cap_do_not_bunch_with_later_ones(sandbox, bots):
    sandbox.add_bot(STEADY)
    sandbox.add_bot(JAMMER)
    steady = [sandbox.customer(STEADY, 900_000 + n, f"S{n}").chat.id for n in range(30)]
    jammed = [sandbox.customer(JAMMER, 910_000 + n, f"J{n}").chat.id for n in range(4)]
    for chat in jammed:  # the other bot's requests hang for a second and fill the cap
        sandbox.faults.add(kind="slow", method="sendMessage", chat_id=chat, count=1, delay=1.0)
    channel = TelegramChannel(bots, SlidingWindowLimiter(10, per_chat=None), max_in_flight=4)

    steady_sends = asyncio.create_task(send_all(channel, STEADY, steady))
    await asyncio.sleep(0.5)  # the steady bot is sending at its rate when the cap jams
    await asyncio.gather(steady_sends, send_all(channel, JAMMER, jammed))

    stats = sandbox.stats(STEADY)
    assert stats.sends == 30 and stats.errors.get(429, 0) == 0
    times = arrived(sandbox, STEADY)
    # Its sends granted during the jam left together when it ended; the ones granted after
    # waited for them to count, instead of filling the next second beside them.
    assert most_in_any_window(times) <= 10, [round(t - times[0], 3) for t in times]
    assert stats.max_arrivals_in_1s <= 10


async def test_sends_waiting_for_new_connections_do_not_bunch_with_later_ones(sandbox, bots):
    sandbox.add_bot(SLOW_START)
    chats = [sandbox.customer(SLOW_START, 930_000 + n, f"C{n}").chat.id for n in range(60)]
    opened = 0

    async def slow_to_open(_session: Any, _context: Any, _params: Any) -> None:
        nonlocal opened
        opened += 1
        await asyncio.sleep(0.4)  # a busy receiver, a far one: the first sends wait for this

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(slow_to_open)
    trace.freeze()
    client = await bots.get(SLOW_START).session.create_session()
    client.trace_configs.append(trace)
    channel = TelegramChannel(bots, SlidingWindowLimiter(20, per_chat=None))

    await send_all(channel, SLOW_START, chats)

    assert opened >= 3  # the first burst opened connections of its own
    stats = sandbox.stats(SLOW_START)
    assert stats.sends == 60 and stats.errors.get(429, 0) == 0
    times = arrived(sandbox, SLOW_START)
    assert most_in_any_window(times) <= 20, [round(t - times[0], 3) for t in times]
    assert stats.max_arrivals_in_1s <= 20

"""A dispatcher process killed with SIGKILL mid-batch, then restarted: nothing lost, none twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from delivery_support import SECRET, TOKEN, Shopfront, stamped_at_head

from bot.cli import cli
from bot.clock import ManualClock
from bot.db import transaction
from bot.models import Lane, OutboxState
from bot.sandbox import run_sandbox
from bot.store import outbox as store
from bot.store.shops import create_shop

NUDGE = Path(sys.executable).with_name("nudge")


def dispatcher_env(database_url: str, api_base: str) -> dict[str, str]:
    """Return the environment of a `nudge dispatch` process for this test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    env.update(
        NUDGE_DATABASE_URL=database_url,
        NUDGE_TELEGRAM_API_BASE=api_base,
        NUDGE_SECRET_KEY=SECRET,
        NUDGE_LOG_LEVEL="WARNING",
        NUDGE_DISPATCH__BATCH_SIZE="10",
        NUDGE_DISPATCH__POLL_INTERVAL="0.05",
    )
    return env


async def states(shopfront: Shopfront) -> dict[int, str]:
    async with shopfront.sessions() as session:
        rows = await store.list_outbox(session=session, shop_id=shopfront.shop.id)
    return {row.id: row.state for row in rows}


async def test_a_killed_dispatcher_loses_nothing_and_sends_nothing_twice(database, tmp_path):
    # The subprocess runs on the wall clock; the rows are due a moment ago.
    clock = ManualClock(datetime.now(UTC) - timedelta(seconds=1))
    async with stamped_at_head(database.engine), run_sandbox() as sb:
        sb.add_bot(TOKEN, username="kvitka_bot")
        async with transaction(database.sessions) as session:
            shop = await create_shop(
                session=session,
                name="Kvitka",
                platform="shopify",
                bot_token=TOKEN,
                settings={"quiet_hours_start": "00:00", "quiet_hours_end": "00:00"},
                now=clock.now(),
            )
        shopfront = Shopfront(database, sb, clock, shop)
        people = await shopfront.crowd(40)
        await shopfront.broadcast(people, "Spring sale", lane=Lane.PROMO)
        # Half the sends answer slowly, so a batch always has requests in flight.
        sb.faults.add(
            kind="slow", method="sendMessage", count=None, delay=1.0, probability=0.5, seed=7
        )
        env = dispatcher_env(database.url, sb.base_url)

        first = await asyncio.create_subprocess_exec(
            str(NUDGE), "dispatch", env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
        )
        deadline = time.monotonic() + 30
        world = sb.bot(TOKEN)
        while world.stats.sends < 12 or world.inflight == 0:  # kill it with requests in flight
            assert first.returncode is None, await first.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the dispatcher sent too little"
            await asyncio.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        await first.communicate()
        assert first.returncode == -signal.SIGKILL
        await asyncio.sleep(0.1)  # let the sandbox drop the requests of the dead process
        at_kill = await states(shopfront)
        in_flight = {i for i, state in at_kill.items() if state == OutboxState.SENDING}
        assert in_flight, "the kill should land mid-batch"
        async with shopfront.sessions() as session:
            rows = await store.list_outbox(session=session, shop_id=shop.id)
        claimers = {row.claimed_by for row in rows if row.id in in_flight}
        assert len(claimers) == 1 and f":{first.pid}:" in str(claimers.pop())  # its own name
        assert OutboxState.SCHEDULED in at_kill.values(), "the kill should leave work to do"

        # Restart through the same command, in a thread of this process (starting another
        # interpreter costs seconds of imports; the crash above is what needs a real process).
        restart = await asyncio.to_thread(
            CliRunner().invoke, cli, ["dispatch", "--once", "--lease", "0", "--json"], env=env
        )
        assert restart.exit_code == 0, restart.output
        report = json.loads(restart.stdout)

        final = await states(shopfront)
        transcripts = {p.id: shopfront.person(p).bot_messages() for p in people}

    assert set(final.values()) <= {OutboxState.SENT, OutboxState.UNKNOWN}  # nothing lost
    unknown = {i for i, state in final.items() if state == OutboxState.UNKNOWN}
    assert unknown == in_flight and report["recovered_unknown"] == len(in_flight)
    assert report["sent"] == sum(1 for s in at_kill.values() if s == OutboxState.SCHEDULED)
    async with database.sessions() as session:
        rows = await store.list_outbox(session=session, shop_id=shop.id)
    for row in rows:
        messages = transcripts[row.customer_id]
        assert len(messages) <= 1, "a customer got the message twice"
        if row.state == OutboxState.SENT:
            assert [m.message_id for m in messages] == [row.telegram_message_id]
            assert messages[0].text == "Spring sale"

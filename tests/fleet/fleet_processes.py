"""Several `nudge` processes on one PostgreSQL and one Redis, against a sandbox in the test.

`Fleet` starts and kills instances (`nudge dispatch`, `nudge serve`) as subprocesses, each
logging to a file the failure message quotes; `seed` puts shops with bots, their customers and
one due message per customer in the database; `outbox_states` reads how the rows ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fleet_support import eventually, free_port, unavailable
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db import create_engine, session_factory, transaction
from bot.models import Consent, Customer, Lane, Outbox
from bot.sandbox import Limits, Sandbox
from bot.store import outbox as outbox_store
from bot.store.shops import create_shop

PG_BASE_URL = os.environ.get(
    "NUDGE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
SECRET = "fleet-tests-secret-key-0123456789"
NUDGE = [sys.executable, "-m", "bot"]
# The full size is 10,000 messages over 10 bots; by default a size that runs in seconds
FULL = os.environ.get("NUDGE_FLEET_FULL", "") not in ("", "0")
BOTS = 10
PER_BOT = 1000 if FULL else 150
SENDER_NICENESS = 10
RATE = 25.0  # what each bot is configured to send per second (the sandbox refuses past 30)


async def _admin(statement: str) -> None:
    import asyncpg

    url = make_url(PG_BASE_URL)
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def throwaway_database() -> AsyncIterator[str]:
    """Create an empty PostgreSQL database migrated to head; drop it after."""
    from bot.migrate import upgrade_async

    name = f"nudge_fleet_{uuid.uuid4().hex[:10]}"
    try:
        await _admin(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # no PostgreSQL here
        unavailable(f"PostgreSQL at {make_url(PG_BASE_URL).render_as_string()}: {exc}")
    url = make_url(PG_BASE_URL).set(database=name).render_as_string(hide_password=False)
    try:
        await upgrade_async(url)
        yield url
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bot_token(n: int) -> str:
    """Return the n-th test bot's token."""
    return f"{7420000000 + n}:AAfleetbot{n:03d}secret"


@dataclass
class Seeded:
    """What `seed` put in the database: per bot token, the chat ids of its recipients."""

    chats: dict[str, list[int]] = field(default_factory=dict)
    shops: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Return how many messages are due."""
        return sum(len(c) for c in self.chats.values())


async def seed(url: str, sandbox: Sandbox, *, bots: int, per_bot: int) -> Seeded:
    """Add `bots` shops with a bot each, `per_bot` linked customers each, one message each."""
    engine = create_engine(url)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    seeded = Seeded()
    try:
        for b in range(bots):
            token = bot_token(b)
            sandbox.add_bot(token, username=f"fleet{b}_bot")
            async with transaction(sessions) as session:
                shop = await create_shop(
                    session=session,
                    name=f"Fleet {b}",
                    platform="generic",
                    currency="EUR",
                    default_locale="en",
                    bot_token=token,
                    now=now,
                )
                chats = [100_000 * (b + 1) + i for i in range(per_bot)]
                people = [
                    Customer(
                        shop_id=shop.id,
                        first_name=f"C{chat}",
                        telegram_chat_id=chat,
                        consent=Consent.OPTED_IN,
                        consent_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                    for chat in chats
                ]
                session.add_all(people)
                await session.flush()
                await outbox_store.schedule_many(
                    session=session,
                    rows=(
                        {
                            "shop_id": shop.id,
                            "customer_id": person.id,
                            "kind": "text",
                            "dedupe_key": f"fleet:{person.id}",
                            "due_at": now,
                            "lane": Lane.TRANSACTIONAL,
                            "payload": {"text": f"Hello {person.telegram_chat_id}"},
                        }
                        for person in people
                    ),
                )
            for chat in chats:
                sandbox.customer(token, chat, f"C{chat}")
            seeded.chats[token] = chats
            assert shop.id is not None
            seeded.shops[token] = shop.id
    finally:
        await engine.dispose()
    return seeded


async def outbox_states(engine: AsyncEngine) -> dict[str, int]:
    """Return how many outbox rows are in each state."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Outbox.state, func.count()).group_by(Outbox.state)  # type: ignore[arg-type]
        )
        return {state: int(count) for state, count in rows.all()}


async def count(engine: AsyncEngine, sql: str) -> int:
    """Run a COUNT query."""
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar() or 0)


class SandboxThread:
    """The sandbox on its own thread and event loop, with Telegram's limits (30/s per bot, 1/s
    per chat): it stamps arrivals on time even while the test's own loop is busy."""

    def __init__(self) -> None:
        import threading

        self.sandbox = Sandbox(limits=Limits(per_bot_per_second=30, per_chat_per_second=1.0))
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="sandbox")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self.sandbox.start("127.0.0.1", 0))
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> Sandbox:
        """Start serving; return the sandbox (set it up before any bot calls it)."""
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the sandbox did not start")
        return self.sandbox

    def stop(self) -> None:
        """Stop serving and end the thread."""
        asyncio.run_coroutine_threadsafe(self.sandbox.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()


def niced() -> list[str]:
    """Return the prefix that runs a sender below the sandbox's priority.

    The sandbox stands in for Telegram's own servers: on a busy machine a receiver that waits
    for the CPU stamps a backlog of requests with one arrival time, which no sender could
    prevent. The senders yield to it instead, so any bunching the test sees is theirs.
    """
    nice = shutil.which("nice")
    return [nice, "-n", str(SENDER_NICENESS)] if nice else []


@dataclass
class Instance:
    """One `nudge` process."""

    name: str
    process: asyncio.subprocess.Process
    log: Path
    port: int | None = None

    def output(self) -> str:
        """Return what the process logged so far (the tail)."""
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL: the process dies mid-work."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)

    async def stop(self, timeout: float = 30.0) -> int:  # noqa: ASYNC109
        """SIGTERM, then wait (SIGKILL after `timeout`); return the exit code."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.kill()
                await self.process.wait()
        return int(self.process.returncode or 0)


@dataclass
class Fleet:
    """The instances of one test, all on one database, one Redis and one sandbox."""

    workdir: Path
    database_url: str
    redis_url: str | None
    sandbox_url: str
    env: dict[str, str] = field(default_factory=dict)
    instances: list[Instance] = field(default_factory=list)

    def environment(self, **extra: str) -> dict[str, str]:
        """Return a clean NUDGE_* environment for an instance."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
        env.update(
            NUDGE_DATABASE_URL=self.database_url,
            NUDGE_SECRET_KEY=SECRET,
            NUDGE_TELEGRAM_API_BASE=self.sandbox_url,
            NUDGE_DISPATCH__RATE_PER_SECOND=str(RATE),
            NUDGE_DISPATCH__POLL_INTERVAL="0.2",
            NUDGE_LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        if self.redis_url:
            env["NUDGE_REDIS_URL"] = self.redis_url
        env.update(self.env)
        env.update(extra)
        return env

    async def start(self, *args: str, **extra_env: str) -> Instance:
        """Start `nudge ARGS…` (`serve` gets a free port and a public URL of its own)."""
        name = f"{args[0]}-{len(self.instances) + 1}"
        log = self.workdir / f"{name}.log"
        port = None
        if args[0] == "serve":
            port = free_port()
            args = (*args, "--port", str(port))
            extra_env.setdefault("NUDGE_PUBLIC_URL", f"http://127.0.0.1:{port}")
        with log.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                *niced(),
                *NUDGE,
                *args,
                env=self.environment(**extra_env),
                cwd=self.workdir,
                stdout=sink,
                stderr=asyncio.subprocess.STDOUT,
            )
        instance = Instance(name, process, log, port)
        self.instances.append(instance)
        return instance

    def logs(self) -> str:
        """Return every instance's log tail, for a failure message."""
        return "\n".join(f"--- {i.name}\n{i.output()}" for i in self.instances)

    async def until(self, check: Callable[[], object], timeout: float, what: str) -> None:  # noqa: ASYNC109
        """Wait until `check()` is true; fail with every instance's log."""
        try:
            await eventually(check, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    async def stop(self) -> None:
        """Stop every instance still running."""
        await asyncio.gather(*(i.stop() for i in self.instances))

"""Whole-deployment loops run in one instance at a time on PostgreSQL, and move to another
instance when the one running them stops or loses its database connection."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from aiohttp import web
from fleet_support import TcpProxy, eventually
from sqlalchemy.engine import make_url

from bot.db import create_engine
from bot.exclusive import exclusive
from bot.web.keys import ENGINE


class Instance:
    """A minimal app holding an engine, with a worker that notes when it runs."""

    def __init__(self, url: str, name: str, running: set[str]) -> None:
        self.app = web.Application()
        self.app[ENGINE] = create_engine(url, pool_pre_ping=False)
        self.name = name
        self.running = running
        self._stack = contextlib.AsyncExitStack()

    async def worker(self, _app: web.Application) -> AsyncIterator[None]:
        self.running.add(self.name)
        try:
            yield
        finally:
            self.running.discard(self.name)

    async def start(self, loop_name: str) -> None:
        wrapped = exclusive(loop_name, self.worker, retry_every=0.2)
        await self._stack.enter_async_context(contextlib.asynccontextmanager(wrapped)(self.app))

    async def stop(self) -> None:
        await self._stack.aclose()
        await self.app[ENGINE].dispose()


async def test_one_instance_runs_the_loop_and_another_takes_over(postgres_url):
    loop_name = f"test-{uuid.uuid4().hex[:8]}"
    running: set[str] = set()
    target = make_url(postgres_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    via_proxy = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    first = Instance(via_proxy, "first", running)
    second = Instance(postgres_url, "second", running)
    try:
        await first.start(loop_name)
        await eventually(lambda: running == {"first"}, 10, "the first instance runs it")
        await second.start(loop_name)
        for _ in range(10):
            await asyncio.sleep(0.1)
            assert running == {"first"}, "never two at a time"

        proxy.cut()  # the first loses its database: the server releases its lock
        await eventually(lambda: running == {"second"}, 20, "the second took over")
        proxy.restore()
        for _ in range(10):
            await asyncio.sleep(0.1)
            assert running == {"second"}, "the first does not come back beside it"

        await second.stop()
        await eventually(lambda: running == {"first"}, 20, "back to the first")
    finally:
        await first.stop()
        await proxy.close()
        with contextlib.suppress(Exception):
            await second.stop()
    assert running == set()


async def test_on_sqlite_the_loop_simply_runs(tmp_path):
    running: set[str] = set()
    only = Instance(f"sqlite+aiosqlite:///{tmp_path}/x.db", "only", running)
    await only.start("anything")
    assert running == {"only"}
    await only.stop()
    assert running == set()

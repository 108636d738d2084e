"""Webhook delivery: POST each update to the bot's URL in order, retrying with backoff.

An update counts as delivered when the bot answers 2xx. Like Telegram, the sandbox runs a
method the bot puts in its webhook answer (JSON or multipart with a `method` field). A fault on
the `webhookAnswer` pseudo-method turns the bot's 2xx into a failure after the bot handled the
update (as a failing proxy would), so the same update is delivered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bot.sandbox.faults import WEBHOOK_ANSWER, Faults
from bot.sandbox.params import Params, Upload
from bot.sandbox.world import BotWorld, RawUpdate, Webhook

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

Execute = Callable[[BotWorld, str, Params], Awaitable[Any]]


class WebhookDelivery:
    """Delivers every bot's updates to its webhook as background tasks."""

    def __init__(
        self,
        execute: Execute,
        *,
        faults: Faults | None = None,
        retry_delay: float = 1.0,
        retry_max: float = 60.0,
        timeout: float = 10.0,
    ) -> None:
        self._execute = execute
        self._faults = faults if faults is not None else Faults()
        self.retry_delay = retry_delay
        self.retry_max = retry_max
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, world: BotWorld) -> None:
        """(Re)start delivering `world`'s updates to its current webhook."""
        self.stop(world)
        task = asyncio.get_running_loop().create_task(self._run(world))
        world.delivery_task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stop(self, world: BotWorld) -> None:
        """Stop delivering `world`'s updates."""
        task, world.delivery_task = world.delivery_task, None
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        """Cancel every delivery and close the HTTP client."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout)
            )
        return self._session

    async def _run(self, world: BotWorld) -> None:
        delay = self.retry_delay
        while True:
            webhook = world.webhook
            if webhook is None:
                return
            if not world.updates:
                await world.wait_update()
                continue
            update = world.updates[0]
            error = await self._post(world, webhook, update)
            if error is None:
                world.acknowledge(update)
                delay = self.retry_delay
                continue
            webhook.last_error_date = world.date()
            webhook.last_error_message = error
            world.stats.webhook_failures += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)

    async def _post(self, world: BotWorld, webhook: Webhook, update: dict[str, Any]) -> str | None:
        headers = {"Content-Type": "application/json"}
        if webhook.secret_token:
            headers[SECRET_HEADER] = webhook.secret_token
        if isinstance(update, RawUpdate):
            body = update.body
        else:
            body = json.dumps(update, ensure_ascii=False).encode()
        try:
            async with self._client().post(webhook.url, data=body, headers=headers) as resp:
                if not 200 <= resp.status < 300:
                    return f"Wrong response from the webhook: {resp.status} {resp.reason}"
                call = await _method_in_answer(resp)
        except TimeoutError:
            return "Read timeout expired"
        except (aiohttp.ClientError, OSError) as exc:
            return f"Connection failed: {type(exc).__name__}"
        lost = self._lost_answer(world)
        if lost is not None:
            return lost
        if call is not None:
            name, params = call
            try:
                await self._execute(world, name, params)
            except Exception as exc:  # the bot never sees this answer either
                log.info("method %s from a webhook answer failed: %s", name, exc)
        return None

    def _lost_answer(self, world: BotWorld) -> str | None:
        """Return why the bot's 2xx never reached Telegram, when a webhookAnswer fault fires."""
        fault = self._faults.fire(world.token, WEBHOOK_ANSWER, None, named_only=True)
        if fault is None:
            return None
        world.stats.faults_injected += 1
        if fault.kind == "drop":
            return "Connection failed: ServerDisconnectedError"
        error = fault.error()
        if error is None:
            return None
        return f"Wrong response from the webhook: {error.code} {error.description}"


async def _method_in_answer(resp: aiohttp.ClientResponse) -> tuple[str, Params] | None:
    """Return the method call a bot placed in its webhook answer, if any."""
    content_type = resp.content_type
    if content_type == "application/json":
        try:
            body = json.loads(await resp.read() or b"null")
        except ValueError:
            return None
        if isinstance(body, dict) and isinstance(body.get("method"), str):
            name = body.pop("method")
            return name, Params(body)
        return None
    if content_type.startswith("multipart/"):
        raw: dict[str, Any] = {}
        files: dict[str, Upload] = {}
        reader = aiohttp.MultipartReader.from_response(resp)
        while (part := await reader.next()) is not None:
            if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
                continue
            if part.filename:
                files[part.name] = Upload(part.filename, bytes(await part.read()))
            else:
                raw[part.name] = await part.text()
        name = raw.pop("method", None)
        return (name, Params(raw, files)) if isinstance(name, str) else None
    await resp.read()
    return None

"""The sandbox server: the Bot API at /bot<token>/<method> and a control API at /_sandbox/.

`Sandbox` owns every bot world, the faults and the webhook delivery; `run_sandbox` starts it on
a real port for a test and stops it cleanly afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from bot.clock import Clock, SystemClock
from bot.sandbox import errors as e
from bot.sandbox.customers import Customer, ForumGroup, make_user
from bot.sandbox.delivery import WebhookDelivery
from bot.sandbox.errors import ApiError
from bot.sandbox.faults import Faults
from bot.sandbox.limits import Limits
from bot.sandbox.methods import METHODS, Described, call
from bot.sandbox.params import Params, read_params
from bot.sandbox.world import BotStats, BotWorld, ChatState, RawUpdate

TOKEN_RE = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{1,100}")
CONTROL = "/_sandbox"
_UNTRACKED = "getupdates"


def _dumps(body: Any) -> bytes:
    result = body.get("result") if isinstance(body, dict) else None
    if isinstance(result, list) and any(isinstance(u, RawUpdate) for u in result):
        head = _dumps({key: value for key, value in body.items() if key != "result"})
        items = b",".join(u.body if isinstance(u, RawUpdate) else _dumps(u) for u in result)
        return head[:-1] + b',"result":[' + items + b"]}"
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _answer(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=_dumps(body), status=status, content_type="application/json")


class Sandbox:
    """An emulated Telegram Bot API: many bots, their chats, customers, limits and faults."""

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        clock: Clock | None = None,
        callback_timeout: float = 15.0,
        auto_register: bool = False,
        webhook_retry_delay: float = 1.0,
        webhook_retry_max: float = 60.0,
        webhook_timeout: float = 10.0,
        latency: float = 0.0,
        jitter: float = 0.0,
    ) -> None:
        self.limits = limits or Limits()
        self.set_latency(latency, jitter)
        self.clock = clock or SystemClock()
        self.callback_timeout = callback_timeout
        self.auto_register = auto_register
        self.bots: dict[str, BotWorld] = {}
        self.faults = Faults()
        self.delivery = WebhookDelivery(
            self._execute,
            faults=self.faults,
            retry_delay=webhook_retry_delay,
            retry_max=webhook_retry_max,
            timeout=webhook_timeout,
        )
        self.base_url = ""
        self._customers: dict[tuple[str, int], Customer] = {}
        self._groups: dict[tuple[str, int], ForumGroup] = {}
        self._runner: web.AppRunner | None = None
        self.app = self._build_app()

    # ------------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 picks a free port) and return the base URL."""
        self._runner = web.AppRunner(
            self.app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        self.base_url = f"http://{host}:{bound}"
        return self.base_url

    async def stop(self) -> None:
        """Stop serving, end pending long polls and close the webhook client."""
        for world in self.bots.values():
            if world.poller is not None and not world.poller.done():
                world.poller.set_result(None)
        await self.delivery.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---------------------------------------------------------------------------- bots

    def add_bot(
        self, token: str, username: str | None = None, first_name: str | None = None
    ) -> BotWorld:
        """Register a bot token (its world is empty) and return its world."""
        if token in self.bots:
            return self.bots[token]
        world = BotWorld(
            token,
            username=username,
            first_name=first_name,
            limits=self.limits,
            clock=self.clock,
            callback_timeout=self.callback_timeout,
        )
        world.delivery = self.delivery
        self.bots[token] = world
        return world

    def bot(self, token: str) -> BotWorld:
        """Return the world of a registered bot."""
        try:
            return self.bots[token]
        except KeyError:
            raise KeyError(f"bot token not registered; call add_bot({token!r}) first") from None

    def set_limits(self, limits: Limits, token: str | None = None) -> None:
        """Change the limits of one bot, or of every bot and future bots."""
        if token is None:
            self.limits = limits
            worlds = list(self.bots.values())
        else:
            worlds = [self.bot(token)]
        for world in worlds:
            world.limiter.limits = limits

    def set_latency(self, latency: float, jitter: float = 0.0) -> None:
        """Answer every Bot API call `latency` ± `jitter` seconds after it arrived.

        Telegram answers in tens of milliseconds; a benchmark or test against an instant
        loopback server flatters every design. Limits count a call when it arrives.
        """
        if latency < 0 or jitter < 0 or jitter > latency:
            raise ValueError("latency and jitter are seconds, 0 <= jitter <= latency")
        self.latency, self.jitter = latency, jitter

    async def _network(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency + random.uniform(-self.jitter, self.jitter))

    def stats(self, token: str) -> BotStats:
        """Return a snapshot of one bot's counters and one-second send peaks."""
        return self.bot(token).stats_snapshot()

    def reset_stats(self, token: str | None = None) -> None:
        """Zero the counters (of one bot or all)."""
        for world in [self.bot(token)] if token else self.bots.values():
            world.reset_stats()

    # ----------------------------------------------------------------------------- people

    def customer(
        self,
        token: str,
        user_id: int,
        first_name: str = "Customer",
        *,
        username: str | None = None,
        last_name: str | None = None,
        language_code: str | None = None,
    ) -> Customer:
        """Open (or return) a private chat between a user and the bot."""
        key = (token, user_id)
        if key in self._customers:
            return self._customers[key]
        world = self.bot(token)
        user = make_user(
            user_id,
            first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
        )
        chat = world.open_private_chat(user)
        customer = self._customers[key] = Customer(world, chat, user)
        return customer

    def forum_group(
        self,
        token: str,
        title: str = "Support",
        chat_id: int | None = None,
        *,
        username: str | None = None,
        forum: bool = True,
    ) -> ForumGroup:
        """Create (or return) a supergroup (with topics unless `forum` is False), bot an admin."""
        world = self.bot(token)
        if chat_id is None:
            chat_id = -1001000000000 - sum(1 for c in world.chats.values() if c.is_group)
        key = (token, chat_id)
        if key in self._groups:
            return self._groups[key]
        chat = ChatState(chat_id, "supergroup", title=title, is_forum=forum, username=username)
        chat.members[world.id] = {"status": "administrator", "user": world.user}
        world.chats[chat_id] = chat
        group = self._groups[key] = ForumGroup(world, chat)
        return group

    # ----------------------------------------------------------------------------- idle

    async def wait_idle(
        self,
        token: str | None = None,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline for tests, raising TimeoutError
        quiet: float = 0.05,
    ) -> None:
        """Wait until every update was acknowledged and the bot made no request for `quiet` s."""
        worlds = [self.bot(token)] if token else list(self.bots.values())
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            busy = [w for w in worlds if w.pending or w.inflight or now - w.last_activity < quiet]
            if not busy:
                return
            if now >= deadline:
                w = busy[0]
                raise TimeoutError(
                    f"bot @{w.username} not idle after {timeout}s: {w.pending} updates "
                    f"unacknowledged, {w.inflight} requests in flight"
                )
            await asyncio.sleep(min(0.01, quiet / 2))

    # ------------------------------------------------------------------------- Bot API

    def _world_for(self, token: str) -> BotWorld | None:
        world = self.bots.get(token)
        if world is None and self.auto_register and TOKEN_RE.fullmatch(token):
            world = self.add_bot(token)
        return world

    async def _execute(self, world: BotWorld, name: str, params: Params) -> Any:
        """Run a method the bot put in a webhook answer."""
        world.stats.requests[METHODS.get(name.lower(), (name,))[0]] += 1
        return await call(world, name, params)

    async def _api(self, request: web.Request) -> web.StreamResponse:
        world = self._world_for(request.match_info["token"])
        if world is None:
            return _answer(ApiError(401, e.UNAUTHORIZED).payload(), 401)
        lowered = request.match_info["method"].lower()
        entry = METHODS.get(lowered)
        if entry is None:
            return _answer(ApiError(404, e.NOT_FOUND).payload(), 404)
        name = entry[0]
        world.stats.requests[name] += 1
        tracked = lowered != _UNTRACKED
        if tracked:
            world.inflight += 1
            world.touch()
        try:
            params = await read_params(request)
            fault = self.faults.fire(world.token, name, params.get("chat_id"))
            if fault is not None:
                world.stats.faults_injected += 1
                if fault.kind == "drop":
                    if request.transport is not None:
                        request.transport.close()
                    return web.Response(status=204)
                if fault.kind == "slow":
                    await asyncio.sleep(fault.delay)
                else:
                    error = fault.error()
                    assert error is not None
                    raise error
            result = await call(world, name, params)
        except ApiError as exc:
            world.stats.errors[exc.code] += 1
            await self._network()
            return _answer(exc.payload(), exc.code)
        finally:
            if tracked:
                world.inflight -= 1
                world.touch()
        await self._network()
        if isinstance(result, Described):
            body = {"ok": True, "result": result.result, "description": result.description}
            return _answer(body)
        return _answer({"ok": True, "result": result})

    # ------------------------------------------------------------------------- control

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        control = web.Application(middlewares=[_control_errors])
        bot = "/bots/{token}"
        control.add_routes(
            [
                web.get("/", self._c_overview),
                web.post("/bots", self._c_add_bot),
                web.get(f"{bot}/stats", self._c_stats),
                web.delete(f"{bot}/stats", self._c_reset_stats),
                web.post(f"{bot}/wait_idle", self._c_wait_idle),
                web.post(f"{bot}/customers", self._c_add_customer),
                web.get(f"{bot}/customers/{{user_id}}/transcript", self._c_transcript),
                web.post(f"{bot}/customers/{{user_id}}/{{action}}", self._c_customer_action),
                web.post(f"{bot}/groups", self._c_add_group),
                web.post(f"{bot}/groups/{{chat_id}}/members", self._c_add_member),
                web.post(f"{bot}/groups/{{chat_id}}/post", self._c_group_post),
                web.get(f"{bot}/groups/{{chat_id}}/transcript", self._c_group_transcript),
                web.post("/faults", self._c_add_fault),
                web.delete("/faults", self._c_clear_faults),
                web.put("/limits", self._c_set_limits),
            ]
        )
        app.add_subapp(CONTROL, control)
        return app

    async def _c_overview(self, request: web.Request) -> web.Response:
        bots = [
            {
                "id": w.id,
                "username": w.username,
                "webhook": w.webhook.url if w.webhook else None,
                "pending_updates": w.pending,
                "chats": len(w.chats),
            }
            for w in self.bots.values()
        ]
        return _ok({"bots": bots, "limits": self.limits.__dict__})

    async def _c_add_bot(self, request: web.Request) -> web.Response:
        body = await _body(request)
        world = self.add_bot(body["token"], body.get("username"), body.get("first_name"))
        return _ok(world.user)

    async def _c_stats(self, request: web.Request) -> web.Response:
        stats = self.stats(request.match_info["token"])
        data = dict(stats.__dict__)
        data["requests"] = dict(stats.requests)
        data["errors"] = {str(k): v for k, v in stats.errors.items()}
        return _ok(data)

    async def _c_reset_stats(self, request: web.Request) -> web.Response:
        self.reset_stats(request.match_info["token"])
        return _ok(True)

    async def _c_wait_idle(self, request: web.Request) -> web.Response:
        body = await _body(request)
        await self.wait_idle(request.match_info["token"], timeout=float(body.get("timeout", 5)))
        return _ok(True)

    async def _c_add_customer(self, request: web.Request) -> web.Response:
        body = await _body(request)
        customer = self.customer(
            request.match_info["token"],
            int(body["user_id"]),
            body.get("first_name", "Customer"),
            username=body.get("username"),
            last_name=body.get("last_name"),
            language_code=body.get("language_code"),
        )
        return _ok(customer.user)

    def _known_customer(self, request: web.Request) -> Customer:
        key = (request.match_info["token"], int(request.match_info["user_id"]))
        if key not in self._customers:
            raise LookupError(f"no customer {key[1]}; POST .../customers first")
        return self._customers[key]

    async def _c_customer_action(self, request: web.Request) -> web.Response:
        customer = self._known_customer(request)
        body = await _body(request)
        action = request.match_info["action"]
        result: Any
        if action == "send":
            result = await customer.send(body["text"], reply_to=body.get("reply_to"))
        elif action == "start":
            result = await customer.start(body.get("payload"))
        elif action == "contact":
            result = await customer.share_contact(body["phone_number"])
        elif action == "photo":
            result = await customer.send_photo(body.get("caption"))
        elif action == "tap":
            tap = await customer.tap(body["text"], message_id=body.get("message_id"))
            result = {k: v for k, v in tap.__dict__.items() if not k.startswith("_")}
        elif action == "block":
            result = await customer.block()
        elif action == "unblock":
            result = await customer.unblock()
        else:
            raise LookupError(f"unknown customer action {action!r}")
        return _ok(result if result is not None else True)

    async def _c_transcript(self, request: web.Request) -> web.Response:
        customer = self._known_customer(request)
        return _ok([_entry_json(entry) for entry in customer.transcript()])

    async def _c_add_group(self, request: web.Request) -> web.Response:
        body = await _body(request)
        group = self.forum_group(
            request.match_info["token"], body.get("title", "Support"), body.get("chat_id")
        )
        return _ok(group.chat.summary)

    def _known_group(self, request: web.Request) -> ForumGroup:
        key = (request.match_info["token"], int(request.match_info["chat_id"]))
        if key not in self._groups:
            raise LookupError(f"no group {key[1]}; POST .../groups first")
        return self._groups[key]

    async def _c_add_member(self, request: web.Request) -> web.Response:
        group = self._known_group(request)
        body = await _body(request)
        agent = group.add_member(
            int(body["user_id"]),
            body.get("first_name", "Agent"),
            username=body.get("username"),
            status=body.get("status", "member"),
        )
        return _ok(agent.user)

    async def _c_group_post(self, request: web.Request) -> web.Response:
        group = self._known_group(request)
        body = await _body(request)
        message = await group.post(int(body["user_id"]), body["text"], body.get("thread_id"))
        return _ok(message)

    async def _c_group_transcript(self, request: web.Request) -> web.Response:
        group = self._known_group(request)
        thread = request.query.get("thread_id")
        entries = group.transcript(int(thread) if thread else None)
        return _ok([_entry_json(entry) for entry in entries])

    async def _c_add_fault(self, request: web.Request) -> web.Response:
        body = await _body(request)
        fault = self.faults.add(**body)
        return _ok({"kind": fault.kind, "method": fault.method, "count": fault.count})

    async def _c_clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return _ok(True)

    async def _c_set_limits(self, request: web.Request) -> web.Response:
        body = await _body(request)
        limits = Limits.off() if body.pop("off", False) else Limits(**body)
        self.set_limits(limits)
        return _ok(limits.__dict__)


def _ok(result: Any) -> web.Response:
    return _answer({"ok": True, "result": result})


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    body = await request.json()
    if not isinstance(body, dict):
        raise ValueError("JSON object expected")
    return body


def _entry_json(entry: Any) -> dict[str, Any]:
    data = {k: v for k, v in entry.__dict__.items() if k != "message"}
    data["buttons"] = [[list(b) for b in row] for row in entry.buttons]
    return data


@web.middleware
async def _control_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn mistakes in control requests into 400/404 JSON answers."""
    try:
        return await handler(request)
    except (LookupError, RuntimeError) as exc:
        return _answer({"ok": False, "description": str(exc)}, 404)
    except (ValueError, TypeError) as exc:
        return _answer({"ok": False, "description": str(exc)}, 400)


@contextlib.asynccontextmanager
async def run_sandbox(
    host: str = "127.0.0.1",
    port: int = 0,
    limits: Limits | None = None,
    clock: Clock | None = None,
    **options: Any,
) -> AsyncIterator[Sandbox]:
    """Start a sandbox on a real port (0 = free one) for the duration of the block."""
    sandbox = Sandbox(limits=limits, clock=clock, **options)
    await sandbox.start(host, port)
    try:
        yield sandbox
    finally:
        await sandbox.stop()

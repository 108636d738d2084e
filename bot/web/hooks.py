"""Shop webhooks: POST /hooks/{platform}/{shop_id} verifies a delivery and stores it durably.

The hot path is lean: the shop's secret comes from a short-lived in-process cache, the adapter
verifies the raw bytes and parses the body (so a malformed delivery is refused at once), and the
delivery is written to the inbox by `InboxWriter`, which stores the deliveries of concurrent
requests together: one multi-row INSERT … ON CONFLICT DO NOTHING per transaction (group
commit). A request is answered only after its transaction committed: 200 means durable, 503
means "retry later". The inbox worker (bot/inbox_worker.py) applies the deliveries.

Answers: 404 unknown platform or shop (or a shop of another platform), 413 body over 1 MiB,
200 for WooCommerce's unsigned activation ping (not stored; it counts as the shop's last
delivery), 401 bad signature (logged at WARNING and counted on the shop for `nudge shop check`),
400 body that is not JSON (any platform) or a generic delivery the schema refuses or that holds
a value no database can store (with the reason), 409 a generic `id` already stored with other
content, 200 "ignored" for an authentic topic Nudge does not use, 200 "stored" or "duplicate",
503 when the database cannot be reached. An authentic Shopify or WooCommerce delivery that its
adapter cannot read, or that holds a value no database can store (NUL, lone surrogates, money
beyond the column, far dates: `integrations.base.storable`), is stored parked with the reason
(visible in `nudge inbox failed`, never retried) and answered 200: those platforms disable
webhooks that keep failing, and nothing authentic is dropped.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import metrics
from bot.store.inbox import (
    NewDelivery,
    ShopNote,
    is_permanent,
    store_deliveries,
    stored_body,
)
from bot.store.shops import find_shop
from bot.web.keys import CLOCK, ENGINE, SESSIONS
from integrations import ADAPTERS, NotSupported, ParseContext, ParseError, load_json
from integrations.base import payload_digest, printable

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

MAX_BODY = 1024 * 1024
STORED_HEADER_PREFIXES = ("x-shopify-", "x-wc-", "x-nudge-")
MAX_STORED_HEADERS = 40


@dataclass(frozen=True, slots=True)
class WebhookShop:
    """What verifying a delivery needs to know about its shop."""

    id: int
    platform: str
    secret: str
    country: str | None


class ShopDirectory:
    """Shops by id, cached for a few seconds so the hot path rarely reads the shops table."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, ttl: float = 2.0) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._cache: dict[int, tuple[float, WebhookShop]] = {}

    async def get(self, shop_id: int) -> WebhookShop | None:
        """Return the shop, or None when there is no such shop."""
        cached = self._cache.get(shop_id)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        async with self._sessions() as session:
            shop = await find_shop(session=session, shop_id=shop_id)
        if shop is None:
            self._cache.pop(shop_id, None)
            return None
        found = WebhookShop(shop.id, shop.platform, shop.webhook_secret, shop.country)  # type: ignore[arg-type]
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[shop_id] = (time.monotonic(), found)
        return found

    def forget(self) -> None:
        """Drop every cached shop (after a shop's secret or platform changed)."""
        self._cache.clear()


AUTHENTIC, PING, BAD_SIGNATURE = "authentic", "ping", "bad_signature"


@dataclass(slots=True)
class _Job:
    delivery: NewDelivery | None
    shop_id: int
    at: datetime
    kind: str = AUTHENTIC
    future: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class InboxWriter:
    """Group commit: deliveries that arrive together are stored in one transaction."""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 256) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: list[_Job] = []
        self._task: asyncio.Task[None] | None = None

    async def store(self, delivery: NewDelivery) -> bool:
        """Store a delivery durably; return False when its key was already stored."""
        return await self._submit(_Job(delivery, delivery.shop_id, delivery.received_at))

    async def touch(self, shop_id: int, at: datetime, *, kind: str = AUTHENTIC) -> None:
        """Record a delivery that is not stored: authentic (an unused topic, a refused body),
        a WooCommerce ping, or one that failed its signature check (`kind`)."""
        await self._submit(_Job(None, shop_id, at, kind))

    async def close(self) -> None:
        """Wait for the writes in flight."""
        if self._task is not None:
            await self._task

    async def _submit(self, job: _Job) -> bool:
        self._queue.append(job)
        if self._task is None:
            self._task = asyncio.create_task(self._drain())
        return await job.future

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(0)  # let requests that are ready join this transaction
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: len(batch)]
                await self._write(batch)
        finally:
            self._task = None

    async def _write(self, batch: list[_Job]) -> None:
        try:
            inserted = await self._commit(batch)
        except Exception as exc:
            bad_row = isinstance(exc, IntegrityError | DataError) or is_permanent(exc)
            if len(batch) > 1 and bad_row:
                for job in batch:  # one bad row must not fail its neighbours
                    await self._write([job])
                return
            _settle(batch, exc)  # unreachable or failing database: everyone gets 503
            return
        for job in batch:
            if job.future.done():
                continue
            if job.delivery is None:
                job.future.set_result(False)
                continue
            key = (job.shop_id, job.delivery.delivery_key[:255])
            job.future.set_result(key in inserted)
            inserted.discard(key)  # a second copy in the same batch is a duplicate

    async def _commit(self, batch: list[_Job]) -> set[tuple[int, str]]:
        touched: dict[int, datetime] = {}
        notes: dict[int, ShopNote] = {}
        for job in batch:
            if job.kind != BAD_SIGNATURE:
                touched[job.shop_id] = max(touched.get(job.shop_id, job.at), job.at)
            if job.kind != PING:
                notes.setdefault(job.shop_id, ShopNote()).add(job.at, job.kind == AUTHENTIC)
        deliveries = [job.delivery for job in batch if job.delivery is not None]
        async with self._engine.begin() as connection:
            return await store_deliveries(
                connection=connection, deliveries=deliveries, touched=touched, notes=notes
            )


def _settle(batch: list[_Job], exc: BaseException) -> None:
    for job in batch:
        if not job.future.done():
            job.future.set_exception(exc)


@dataclass(slots=True)
class Intake:
    """The webhook endpoint's state: the shop cache and the inbox writer."""

    shops: ShopDirectory
    writer: InboxWriter


INTAKE = web.AppKey("intake", Intake)


async def intake_context(app: web.Application) -> AsyncIterator[None]:
    """Create the shop cache and the inbox writer; wait for writes in flight at shutdown."""
    app[INTAKE] = Intake(ShopDirectory(app[SESSIONS]), InboxWriter(app[ENGINE]))
    # What imports and startup built (aiogram, pydantic schemas: ~250k objects) lives as long
    # as the process; freezing it keeps full GC passes from stalling requests for ~200 ms.
    gc.freeze()
    yield
    await app[INTAKE].writer.close()


def _answer(code: int, platform: str, outcome: str, **body: Any) -> web.Response:
    metrics.WEBHOOK_DELIVERIES.labels(platform, outcome).inc()
    if "error" in body:
        body["error"] = printable(str(body["error"]))
    if code >= 400:
        log.info("%s webhook answered %s: %s", platform, code, body.get("error"))
    return web.json_response(body, status=code)


def stored_headers(headers: Any) -> dict[str, str]:
    """Return the platform headers worth keeping with a delivery (printable ASCII only)."""
    kept: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered.startswith(STORED_HEADER_PREFIXES) and value.isascii() and value.isprintable():
            kept[lowered] = value[:512]
            if len(kept) >= MAX_STORED_HEADERS:
                break
    return kept


async def _touch(intake: Intake, shop: WebhookShop, at: datetime, kind: str = AUTHENTIC) -> None:
    try:
        await intake.writer.touch(shop.id, at, kind=kind)
    except Exception as exc:  # only bookkeeping; the answer does not depend on it
        log.warning("shop %s: could not record the last delivery time: %r", shop.id, exc)


async def _conflicting_reuse(request: web.Request, delivery: NewDelivery, payload: Any) -> bool:
    """Tell whether a duplicate key was stored with other content (a reused generic `id`)."""
    try:
        async with request.app[SESSIONS]() as session:
            body = await stored_body(
                session=session, shop_id=delivery.shop_id, delivery_key=delivery.delivery_key
            )
        return body is not None and payload_digest(load_json(body)) != payload_digest(payload)
    except Exception as exc:  # cannot compare: the first delivery stands, as before
        log.warning("shop %s: could not compare a repeated id: %r", delivery.shop_id, exc)
        return False


@routes.post("/hooks/{platform}/{shop_id}")
async def receive_delivery(request: web.Request) -> web.Response:
    """Verify a shop webhook and store it in the inbox before answering 200."""
    platform = request.match_info["platform"]
    adapter = ADAPTERS.get(platform)
    raw_id = request.match_info["shop_id"]
    if adapter is None:
        return _answer(404, "unknown", "unknown_platform", error="unknown platform")
    if not raw_id.isdigit() or len(raw_id) > 18:
        return _answer(404, platform, "unknown_shop", error="unknown shop")
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _answer(413, platform, "too_large", error="body over 1 MiB")
    intake = request.app[INTAKE]
    try:
        shop = await intake.shops.get(int(raw_id))
    except Exception as exc:  # the database is down: the platform must retry
        log.warning("webhook %s/%s: database unavailable: %r", platform, raw_id, exc)
        return _answer(503, platform, "unavailable", error="database unavailable, retry later")
    if shop is None or shop.platform != platform:
        return _answer(404, platform, "unknown_shop", error="unknown shop")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _answer(413, platform, "too_large", error="body over 1 MiB")
    if len(body) > MAX_BODY:
        return _answer(413, platform, "too_large", error="body over 1 MiB")
    headers = request.headers
    received_at = request.app[CLOCK].now()
    if adapter.is_ping(headers, body):
        await _touch(intake, shop, received_at, PING)
        return _answer(200, platform, "ping", status="ping")
    if not adapter.verify(headers, body, shop.secret):
        log.warning(
            "shop %s: a %s delivery failed its signature check; is the webhook secret right?",
            shop.id,
            platform,
        )
        await _touch(intake, shop, received_at, BAD_SIGNATURE)
        return _answer(401, platform, "bad_signature", error="bad signature")
    topic = adapter.topic(headers)
    try:
        payload = load_json(body)
    except ParseError as exc:
        await _touch(intake, shop, received_at)
        return _answer(400, platform, "malformed", error=str(exc))
    try:
        key = adapter.delivery_key(topic, headers, payload)
    except ParseError as exc:
        await _touch(intake, shop, received_at)
        return _answer(400, platform, "malformed", error=str(exc))
    except Exception:  # an adapter bug must not lose the delivery
        log.exception("%s delivery_key failed", platform)
        key = f"{platform}:sha256:{hashlib.sha256(body).hexdigest()}"
    parked: str | None = None
    try:
        context = ParseContext(default_region=shop.country, received_at=received_at)
        events = adapter.parse(topic, headers, payload, context)
    except Exception as exc:  # ParseError (InvalidValue among them), or an adapter bug
        if adapter.answers_errors:
            reason = str(exc) if isinstance(exc, ParseError) else f"{type(exc).__name__}: {exc}"
            await _touch(intake, shop, received_at)
            return _answer(400, platform, "malformed", error=reason)
        parked, events = printable(f"{type(exc).__name__}: {exc}"), []
    if parked is None and all(isinstance(event, NotSupported) for event in events):
        log.info("shop %s: %s topic %r is not used; acknowledged", shop.id, platform, topic)
        await _touch(intake, shop, received_at)
        return _answer(200, platform, "unsupported", status="ignored", topic=topic)
    delivery = NewDelivery(
        shop_id=shop.id,
        platform=platform,
        topic=topic[:64],
        delivery_key=key,
        headers=stored_headers(headers),
        body=body,
        received_at=received_at,
        parked_reason=parked,
    )
    try:
        new = await intake.writer.store(delivery)
    except Exception as exc:  # not durable: the platform must retry
        log.warning("shop %s: could not store a delivery: %r", shop.id, exc)
        return _answer(503, platform, "unavailable", error="database unavailable, retry later")
    if parked is not None and new:
        log.error("shop %s: %s %r stored parked: %s", shop.id, platform, topic, parked)
    if not new and adapter.answers_errors and await _conflicting_reuse(request, delivery, payload):
        return _answer(
            409,
            platform,
            "conflict",
            error=f"{key.split(':', 1)[1]!r} was already used for other content; "
            "use a new id for every change",
        )
    outcome = ("parked" if parked else "stored") if new else "duplicate"
    return _answer(200, platform, outcome, status=outcome)

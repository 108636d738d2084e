"""The inbox worker: applies stored shop deliveries to the profile store, in order, never twice.

One transaction per delivery: the events are parsed by the platform adapter, applied by
`bot.store`, and `bot.flows.run_flows` runs for every applied event in that same transaction,
which also marks the delivery done. A failure rolls all of it back. A permanent failure (the
delivery cannot be parsed or holds values no database stores, or the database refuses its data:
`is_permanent`) parks the delivery at once with its error; anything else (connection lost,
timeouts, lock conflicts, a bug a deploy may fix) is retried with exponential backoff and
parked after `max_attempts` (`nudge inbox failed`, `nudge inbox retry ID`). A worker killed
mid-delivery leaves the row pending.

Order: pending deliveries are taken in the order they were received (by id). Each delivery has
ordering keys (its cart, order, product and customer identifiers; shop-wide topics have "*").
A delivery is skipped, without counting an attempt, while an earlier delivery of the same shop
sharing a key is still pending (waiting for a retry, or being applied by another worker on
PostgreSQL); it runs once that one is done or parked. A skipped delivery is postponed to the
time the delivery it waits for is next tried (`postpone`), so the next claim reaches newer
deliveries: a failing delivery delays only the deliveries that share its keys (and, to keep
their order, later ones sharing keys with those), never the rest of its shop nor other shops.
Every older pending delivery of a batch's shops (up to `max_waiting` per shop; newer ones wait
a little when a shop has more) is consulted, so postponed deliveries keep holding their keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db import transaction
from bot.flows import FlowContext, run_flows
from bot.models import Customer, Inbox, InboxState, Shop
from bot.store import commerce, privacy
from bot.store import inbox as inbox_store
from bot.store.commerce import Applied, identity_of, usable
from bot.store.customers import record_event
from bot.store.inbox import is_permanent
from integrations import (
    ADAPTERS,
    AppUninstalled,
    CartUpdated,
    CheckoutStarted,
    CustomerDataRequest,
    CustomerRedact,
    CustomerRef,
    CustomerUpserted,
    NotSupported,
    OrderCancelled,
    OrderPlaced,
    OrderRefunded,
    ParseContext,
    ParseError,
    ProductUpserted,
    ProductViewed,
    ShopEvent,
    ShopRedact,
    load_json,
)

log = logging.getLogger(__name__)
EVERYTHING = "*"


# ------------------------------------------------------------------------- applying events


@dataclass(frozen=True, slots=True)
class Apply:
    """Where one event is applied: session, shop, time and the platform it came from."""

    session: AsyncSession
    shop: Shop
    now: datetime
    source: str

    async def customer(
        self, ref: CustomerRef | None, occurred_at: datetime, **kwargs: Any
    ) -> tuple[Any, bool]:
        """Upsert the customer a reference names; return (customer or tombstone, stale)."""
        if ref is None:
            return None, False
        return await commerce.upsert_customer(
            session=self.session,
            shop_id=self.shop.id,  # type: ignore[arg-type]
            region=self.shop.country,
            ref=ref,
            occurred_at=occurred_at,
            now=self.now,
            **kwargs,
        )

    async def record(
        self, customer: Any, type: str, occurred_at: datetime, payload: dict[str, Any]
    ) -> None:
        """Append a customer event unless nobody (or a redacted tombstone) is concerned."""
        live = usable(customer)
        if live is None:
            return
        await record_event(
            session=self.session,
            shop_id=self.shop.id,  # type: ignore[arg-type]
            customer_id=live.id,
            type=type,
            source=self.source,
            occurred_at=occurred_at,
            payload=payload,
        )


async def _customer_upserted(a: Apply, e: CustomerUpserted) -> Applied:
    customer, stale = await a.customer(
        e.customer, e.occurred_at, authoritative=True, birthday=e.birthday
    )
    if not stale:
        await a.record(customer, "customer_updated", e.occurred_at, {})
    return Applied(customer=customer, stale=stale)


def _cart_payload(e: CartUpdated) -> dict[str, Any]:
    return {
        "token": e.token,
        "items": sum(item.quantity for item in e.items),
        "total": str(e.total) if e.total is not None else None,
        "currency": e.currency,
    }


async def _cart_updated(a: Apply, e: CartUpdated) -> Applied:
    customer, _ = await a.customer(e.customer, e.occurred_at)
    cart, stale = await commerce.apply_cart(
        session=a.session,
        shop_id=a.shop.id,  # type: ignore[arg-type]
        token=e.token,
        items=e.items,
        occurred_at=e.occurred_at,
        now=a.now,
        customer=usable(customer),
        currency=e.currency,
        total=e.total,
        recovery_url=e.recovery_url,
        completed=e.completed,
        supersedes=e.cart_token,
    )
    if not stale:
        await a.record(customer, "cart_updated", e.occurred_at, _cart_payload(e))
    return Applied(customer=customer, cart=cart, stale=stale)


async def _checkout_started(a: Apply, e: CheckoutStarted) -> Applied:
    customer, _ = await a.customer(e.customer, e.occurred_at)
    cart = await commerce.attach_cart_customer(
        session=a.session,
        shop_id=a.shop.id,  # type: ignore[arg-type]
        token=e.token,
        customer=usable(customer),
        recovery_url=e.recovery_url,
        now=a.now,
    )
    await a.record(customer, "checkout_started", e.occurred_at, {"token": e.token})
    return Applied(customer=customer, cart=cart)


async def _order_placed(a: Apply, e: OrderPlaced) -> Applied:
    customer, _ = await a.customer(e.customer, e.occurred_at)
    tokens = [t for t in (e.checkout_token, e.cart_token) if t]
    order, stale, converted = await commerce.apply_order(
        session=a.session,
        shop_id=a.shop.id,  # type: ignore[arg-type]
        external_id=e.order_id,
        items=e.items,
        occurred_at=e.occurred_at,
        now=a.now,
        customer=usable(customer),
        total=e.total,
        currency=e.currency,
        discount_codes=e.discount_codes,
        cart_tokens=tokens,
        placed_at=e.placed_at,
    )
    if not stale:
        payload = {
            "order_id": e.order_id,
            "name": e.name,
            "total": str(e.total) if e.total is not None else None,
            "currency": e.currency,
            "status": order.status,
        }
        await a.record(customer, "order_placed", e.occurred_at, payload)
    return Applied(customer=customer, order=order, stale=stale, converted=converted)


async def _order_cancelled(a: Apply, e: OrderCancelled) -> Applied:
    order, stale = await commerce.cancel_order(
        session=a.session,
        shop_id=a.shop.id,  # type: ignore[arg-type]
        external_id=e.order_id,
        occurred_at=e.occurred_at,
        now=a.now,
    )
    customer = None
    if order.customer_id is not None:
        customer = await a.session.get(Customer, order.customer_id)
    if not stale:
        payload = {"order_id": e.order_id, "reason": e.reason}
        await a.record(customer, "order_cancelled", e.occurred_at, payload)
    return Applied(customer=customer, order=order, stale=stale)


async def _locked_customer(a: Apply, customer_id: int | None) -> Customer | None:
    """Return the order's customer, row-locked until commit (PostgreSQL).

    A refund names no customer, so its delivery may run beside one of the customer's orders on
    another worker; taking the row lock (the order's upsert holds it too) makes the later of the
    two refresh the metrics seeing the other's rows.
    """
    if customer_id is None:
        return None
    query = (
        select(Customer)
        .where(Customer.id == customer_id)  # type: ignore[arg-type]
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await a.session.scalars(query)).first()


async def _order_refunded(a: Apply, e: OrderRefunded) -> Applied:
    order, new, changed = await commerce.apply_refund(
        session=a.session,
        shop_id=a.shop.id,  # type: ignore[arg-type]
        order_external_id=e.order_id,
        refund_external_id=e.refund_id,
        occurred_at=e.occurred_at,
        now=a.now,
        amount=e.amount,
        currency=e.currency,
        full=e.full,
        reason=e.reason,
    )
    customer = await _locked_customer(a, order.customer_id if order is not None else None)
    if new:
        payload = {
            "order_id": e.order_id,
            "refund_id": e.refund_id,
            "amount": str(e.amount) if e.amount is not None else None,
            "currency": e.currency or (order.currency if order is not None else None),
            "order_status": order.status if order is not None else None,
        }
        await a.record(customer, "order_refunded", e.occurred_at, payload)
    if order is None and new:
        log.info(
            "shop %s: refund %s of order %s, not known yet, is kept for it",
            a.shop.id,
            e.refund_id,
            e.order_id,
        )
    return Applied(customer=customer, order=order, stale=not changed)


async def _product_upserted(a: Apply, e: ProductUpserted) -> Applied:
    product, stale = await commerce.upsert_product(
        session=a.session,
        shop_id=a.shop.id,  # type: ignore[arg-type]
        external_id=e.product_id,
        occurred_at=e.occurred_at,
        now=a.now,
        authoritative=True,
        title=e.title,
        category=e.category,
        url=e.url,
        image_url=e.image,
        price=e.price,
    )
    return Applied(product=product, stale=stale)


async def _product_viewed(a: Apply, e: ProductViewed) -> Applied:
    product, _ = await commerce.upsert_product(
        session=a.session,
        shop_id=a.shop.id,  # type: ignore[arg-type]
        external_id=e.product_id,
        occurred_at=e.occurred_at,
        now=a.now,
        authoritative=False,
        title=e.title,
        category=e.category,
        url=e.url,
        image_url=e.image,
        price=e.price,
        currency=e.currency,
    )
    customer, _ = await a.customer(e.customer, e.occurred_at)
    if customer is None and e.cart_token:
        customer = await commerce.customer_of_cart(
            session=a.session,
            shop_id=a.shop.id,  # type: ignore[arg-type]
            tokens=(e.cart_token, commerce.STOREFRONT_PREFIX + e.cart_token),
        )
    payload = {"product_id": e.product_id, "variant_id": e.variant_id, "title": e.title}
    await a.record(customer, "product_viewed", e.occurred_at, payload)
    return Applied(customer=customer, product=product)


async def _customer_redact(a: Apply, e: CustomerRedact) -> Applied:
    ids = await privacy.redact_customers(
        session=a.session,
        shop_id=a.shop.id,  # type: ignore[arg-type]
        identity=identity_of(e.customer, a.shop.country),
        order_ids=e.order_ids,
        now=a.now,
    )
    log.info("shop %s: redacted customers %s", a.shop.id, ids or "(none stored)")
    return Applied()


async def _customer_data_request(a: Apply, e: CustomerDataRequest) -> Applied:
    identity = identity_of(e.customer, a.shop.country)
    found = await privacy.find_customers(
        session=a.session,
        shop_id=a.shop.id,  # type: ignore[arg-type]
        identity=identity,
    )
    exports = []
    for customer in found:
        exported = await privacy.export_customer(
            session=a.session,
            shop_id=a.shop.id,  # type: ignore[arg-type]
            customer_id=customer.id,  # type: ignore[arg-type]
        )
        exports.append(exported)
        payload = {"request_id": e.request_id, "order_ids": list(e.order_ids)}
        await a.record(customer, "data_requested", e.occurred_at, payload)
        log.info(
            "shop %s: data request %s for customer %s: nudge customer export %s --shop %s",
            a.shop.id,
            e.request_id,
            customer.id,
            customer.id,
            a.shop.id,
        )
    if not found:
        log.info("shop %s: data request %s: no customer stored", a.shop.id, e.request_id)
    return Applied(customer=found[0] if found else None, export={"customers": exports})


async def _shop_redact(a: Apply, e: ShopRedact) -> Applied:
    await privacy.redact_shop(session=a.session, shop_id=a.shop.id)  # type: ignore[arg-type]
    log.warning("shop %s: shop/redact received; every row of the shop was deleted", a.shop.id)
    return Applied()


async def _app_uninstalled(a: Apply, e: AppUninstalled) -> Applied:
    await privacy.mark_uninstalled(session=a.session, shop_id=a.shop.id, at=e.occurred_at)  # type: ignore[arg-type]
    log.warning("shop %s: the app was uninstalled; nothing will be sent for it", a.shop.id)
    return Applied()


Handler = Callable[[Apply, Any], Coroutine[Any, Any, Applied]]
APPLIERS: dict[type, Handler] = {
    CustomerUpserted: _customer_upserted,
    CartUpdated: _cart_updated,
    CheckoutStarted: _checkout_started,
    OrderPlaced: _order_placed,
    OrderCancelled: _order_cancelled,
    OrderRefunded: _order_refunded,
    ProductUpserted: _product_upserted,
    ProductViewed: _product_viewed,
    CustomerRedact: _customer_redact,
    CustomerDataRequest: _customer_data_request,
    ShopRedact: _shop_redact,
    AppUninstalled: _app_uninstalled,
}


async def apply_event(
    *, session: AsyncSession, shop: Shop, event: ShopEvent, now: datetime, source: str
) -> Applied | None:
    """Apply one normalized event to the profile store; None for NotSupported."""
    handler = APPLIERS.get(type(event))
    if handler is None:
        return None
    return await handler(Apply(session, shop, now, source), event)


# ------------------------------------------------------------------------- ordering keys


def _identity_keys(ref: CustomerRef | None, region: str | None) -> set[str]:
    if ref is None:
        return set()
    identity = identity_of(ref, region)
    pairs = (("ext", identity.external_id), ("email", identity.email), ("phone", identity.phone))
    return {f"customer:{kind}:{value}" for kind, value in pairs if value}


def ordering_keys(event: ShopEvent, region: str | None) -> set[str]:
    """Return what the event touches: deliveries sharing a key are applied in received order."""
    if isinstance(event, ShopRedact | AppUninstalled):
        return {EVERYTHING}
    if isinstance(event, NotSupported):
        return set()
    keys = _identity_keys(getattr(event, "customer", None), region)
    for name, prefix in (
        ("token", "cart"),
        ("cart_token", "cart"),
        ("checkout_token", "cart"),
        ("order_id", "order"),
        ("product_id", "product"),
    ):
        value = getattr(event, name, None)
        if value:
            keys.add(f"{prefix}:{value}")
    return keys


def parse_delivery(row: Inbox, shop: Shop) -> list[ShopEvent]:
    """Parse a stored delivery with its platform's adapter; raise ParseError when impossible."""
    adapter = ADAPTERS.get(row.platform)
    if adapter is None:
        raise ParseError(f"no adapter for platform {row.platform!r}")
    context = ParseContext(default_region=shop.country, received_at=row.received_at)
    payload = load_json(row.body)
    return adapter.parse(row.topic, row.headers, payload, context)


# ---------------------------------------------------------------------------------- worker


@dataclass(slots=True)
class RunReport:
    """What one pass over the inbox did."""

    done: int = 0
    retrying: int = 0
    parked: int = 0
    deferred: int = 0
    postponed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        """Return how many deliveries reached an outcome."""
        return self.done + self.retrying + self.parked


class _Held:
    """The ordering keys taken by earlier pending deliveries of one shop, with when each may
    next move (the latest next attempt time of the deliveries holding it)."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: dict[str, datetime] = {}

    def blocked_until(self, keys: set[str]) -> datetime | None:
        """Return until when deliveries with these keys must wait; None when they need not."""
        if not self.keys:
            return None
        if EVERYTHING in keys:
            return max(self.keys.values())
        times = [self.keys[k] for k in keys if k in self.keys]
        if EVERYTHING in self.keys:
            times.append(self.keys[EVERYTHING])
        return max(times) if times else None

    def hold(self, keys: set[str], until: datetime) -> None:
        """Take keys until a moment (keeping a later one already held)."""
        for key in keys:
            held = self.keys.get(key)
            self.keys[key] = until if held is None else max(held, until)


class InboxWorker:
    """Claims due deliveries and applies each in its own transaction."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        batch_size: int = 100,
        max_attempts: int = 8,
        base_delay: timedelta = timedelta(seconds=10),
        max_delay: timedelta = timedelta(hours=1),
        poll_interval: float = 0.5,
        max_waiting: int = 5000,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.poll_interval = poll_interval
        self.max_waiting = max_waiting
        self._stopping = asyncio.Event()
        self._key_cache: dict[tuple[int, str | None], frozenset[str]] = {}

    async def run_once(self) -> RunReport:
        """Apply every delivery that is due now (one batch), in order; return what happened."""
        report = RunReport()
        now = self.clock.now()
        async with self.sessions() as session:
            batch = await inbox_store.due_deliveries(
                session=session, now=now, limit=self.batch_size
            )
            if not batch:
                return report
            shop_ids = sorted({r.shop_id for r in batch})
            waiting = await inbox_store.waiting_before(
                session=session,
                before_id=batch[-1].id,  # type: ignore[arg-type]
                shop_ids=shop_ids,
                exclude=[r.id for r in batch],  # type: ignore[misc]
                per_shop=self.max_waiting,
            )
            shops = {s.id: s for s in await _shops(session, set(shop_ids))}
            held, horizon = await self._held_by(session, waiting, shops, now)
        postponed: dict[int, datetime] = {}
        for row in batch:
            if self._stopping.is_set():
                break
            shop = shops.get(row.shop_id)
            if shop is None:
                continue
            try:
                events = parse_delivery(row, shop)
            except Exception as exc:  # ParseError, or an adapter bug: the same every time
                await self._fail(row, f"{type(exc).__name__}: {exc}", report, permanent=True)
                continue
            keys = set().union(*(ordering_keys(e, shop.country) for e in events))
            shop_held = held.setdefault(row.shop_id, _Held())
            until = shop_held.blocked_until(keys)
            if row.shop_id in horizon and row.id > horizon[row.shop_id]:  # type: ignore[operator]
                until = max(until or now, now + self.base_delay)  # older rows not all seen
            if until is not None:
                shop_held.hold(keys, until)
                report.deferred += 1
                if until > now:
                    postponed[row.id] = until  # type: ignore[index]
                continue
            failed_until = await self._apply(row, events, report)
            if failed_until is not None:
                shop_held.hold(keys, failed_until)
        if postponed:
            report.postponed = await self._postpone(postponed)
        return report

    async def _held_by(
        self,
        session: AsyncSession,
        waiting: list[inbox_store.Waiting],
        shops: dict[int | None, Shop],
        now: datetime,
    ) -> tuple[dict[int, _Held], dict[int, int]]:
        """Return the keys older pending deliveries hold per shop, and per shop the last id
        seen when a shop has more than `max_waiting` of them."""
        unknown = [
            w.id
            for w in waiting
            if w.shop_id in shops and (w.id, shops[w.shop_id].country) not in self._key_cache
        ]
        for start in range(0, len(unknown), 500):
            rows = await inbox_store.deliveries_by_id(
                session=session, ids=unknown[start : start + 500]
            )
            for row in rows:
                shop = shops[row.shop_id]
                self._key_cache[(row.id, shop.country)] = self._keys(row, shop)  # type: ignore[index]
        if len(self._key_cache) > 200_000:  # deliveries are immutable; forget the oldest ids
            for cached in sorted(self._key_cache)[:100_000]:
                del self._key_cache[cached]
        held: dict[int, _Held] = {}
        counts: dict[int, int] = {}
        last_seen: dict[int, int] = {}
        for w in waiting:
            shop = shops.get(w.shop_id)
            counts[w.shop_id] = counts.get(w.shop_id, 0) + 1
            last_seen[w.shop_id] = w.id
            keys = self._key_cache.get((w.id, shop.country)) if shop else None
            if keys:
                held.setdefault(w.shop_id, _Held()).hold(set(keys), max(w.next_attempt_at, now))
        horizon = {sid: last_seen[sid] for sid, n in counts.items() if n >= self.max_waiting}
        return held, horizon

    def _keys(self, row: Inbox, shop: Shop) -> frozenset[str]:
        try:
            events = parse_delivery(row, shop)
        except Exception:  # parked as soon as its turn comes; it holds nothing meanwhile
            return frozenset()
        return frozenset().union(*(ordering_keys(e, shop.country) for e in events))

    async def _postpone(self, until: dict[int, datetime]) -> int:
        try:
            async with transaction(self.sessions) as session:
                return await inbox_store.postpone(session=session, until=until)
        except Exception as exc:  # only an optimisation: the rows are checked again next pass
            log.warning("inbox worker: could not postpone %d deliveries: %r", len(until), exc)
            return 0

    async def _apply(
        self, row: Inbox, events: list[ShopEvent], report: RunReport
    ) -> datetime | None:
        """Apply one delivery; return None when it is done (or gone), else until when the
        deliveries that share its keys must wait."""
        try:
            async with transaction(self.sessions) as session:
                locked = await inbox_store.lock_delivery(session=session, inbox_id=row.id)  # type: ignore[arg-type]
                if locked is None:
                    state = await inbox_store.delivery_state(session=session, inbox_id=row.id)  # type: ignore[arg-type]
                    return self.clock.now() if state == InboxState.PENDING else None
                shop = await session.get(Shop, row.shop_id)
                if shop is None:
                    return None
                now = self.clock.now()
                about_erased = False
                for event in events:
                    applied = await apply_event(
                        session=session, shop=shop, event=event, now=now, source=row.platform
                    )
                    if applied is not None and not applied.stale:
                        await run_flows(FlowContext(session, shop, self.clock, applied), event)
                    about_erased = about_erased or _names_erased(applied)
                await inbox_store.mark_done(session=session, inbox_id=row.id, now=now)  # type: ignore[arg-type]
                if about_erased:  # an erased person stays erased: keep nothing of this either
                    await privacy.forget_delivery(session=session, inbox_id=row.id)  # type: ignore[arg-type]
        except Exception as exc:  # any failure: the transaction rolled back; park or retry
            permanent = is_permanent(exc)
            log.warning(
                "inbox %s (%s %s) failed%s: %r",
                row.id,
                row.platform,
                row.topic,
                " for good" if permanent else "",
                exc,
            )
            return await self._fail(
                row, f"{type(exc).__name__}: {exc}", report, permanent=permanent
            )
        report.done += 1
        return None

    async def _fail(
        self, row: Inbox, error: str, report: RunReport, *, permanent: bool = False
    ) -> datetime:
        """Record a failed attempt; return until when deliveries sharing its keys must wait."""
        report.errors.append(f"{row.id}: {error}")
        now = self.clock.now()
        try:
            async with transaction(self.sessions) as session:
                failure = await inbox_store.mark_failed(
                    session=session,
                    inbox_id=row.id,  # type: ignore[arg-type]
                    error=error,
                    now=now,
                    max_attempts=self.max_attempts,
                    base_delay=self.base_delay,
                    max_delay=self.max_delay,
                    permanent=permanent,
                )
        except Exception as exc:  # the database itself is failing; the row stays pending
            log.error("inbox %s: could not record the failure: %r", row.id, exc)
            return now
        if failure is None:
            return now
        if failure.state == InboxState.PARKED:
            report.parked += 1
            log.error("inbox %s parked: %s", row.id, error)
            return now
        report.retrying += 1
        return failure.next_attempt_at

    async def run_until_idle(self, *, max_passes: int = 100) -> RunReport:
        """Run passes until nothing due is left to handle (tests and the demo)."""
        total = RunReport()
        for _ in range(max_passes):
            report = await self.run_once()
            total.done += report.done
            total.retrying += report.retrying
            total.parked += report.parked
            total.deferred += report.deferred
            total.postponed += report.postponed
            total.errors += report.errors
            if report.handled == 0 and report.postponed == 0:
                break
        return total

    async def run_forever(self) -> None:
        """Apply deliveries as they come until stop() is called."""
        pause = self.poll_interval
        while not self._stopping.is_set():
            try:
                report = await self.run_once()
                pause = self.poll_interval
            except Exception as exc:  # database down: wait and try again, longer each time
                log.warning("inbox worker: %r; retrying in %.1fs", exc, pause)
                report = RunReport()
                pause = min(pause * 2, 30.0)
            if report.postponed or (report.handled and not report.deferred):
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=pause)

    def stop(self) -> None:
        """Ask run_forever to return after the delivery in hand."""
        self._stopping.set()


def _names_erased(applied: Applied | None) -> bool:
    """Tell whether applying an event met the tombstone of an erased customer."""
    customer = getattr(applied, "customer", None)
    return getattr(customer, "redacted_hash", None) is not None


async def _shops(session: AsyncSession, ids: set[int]) -> list[Shop]:
    from sqlalchemy import select

    if not ids:
        return []
    return list((await session.scalars(select(Shop).where(Shop.id.in_(ids)))).all())  # type: ignore[union-attr]


async def inbox_worker(app: web.Application) -> AsyncIterator[None]:
    """Run the inbox worker beside the web app (an aiohttp cleanup context)."""
    from bot.web.keys import CLOCK, SESSIONS

    worker = InboxWorker(app[SESSIONS], app[CLOCK])
    task = asyncio.create_task(worker.run_forever(), name="inbox-worker")
    yield
    worker.stop()
    try:
        await asyncio.wait_for(task, timeout=10)
    except TimeoutError:
        log.warning("inbox worker did not stop in time; its delivery stays pending")

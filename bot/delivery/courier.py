"""The Courier: claims due outbox rows, re-checks suppression, renders, sends, records.

Every shop's bot has its own **lane** (`run_forever`, `drain`): a task that claims that bot's
due rows, about `claim_seconds` of its sends at its rate (so a crash leaves few rows
`unknown`), transactional lane first, and sends them at the bot's own rate while the other
bots' lanes do the same: a shop's campaign backlog never waits behind another's. A lane claims
its next batch while the second half of the current one is still going out, so the bot never
idles between batches. The outcomes of every lane are written together a few times a second.

A claim is four short steps, whatever the backlog:

1. claim a batch (`scheduled -> sending`, committed before anything is sent);
2. read what the rules need for the whole batch at once (shops, customers, exclusions, recent
   promos), decide each row, render the ones that go out; write skips and postponements;
3. send concurrently through the channel, which holds the rate limits, the cap on requests in
   flight and the per-request timeout (a hung request costs its own row: `unknown`);
4. write the outcomes with a few UPDATEs and mark customers who turned out unreachable.

One customer's messages go out one after another, in claim order, across batches.
`run_once` is one claim over all shops, sent and recorded before it returns (tests, the demo).
`run_forever` runs the lanes until its stop event is set, recovering rows a crashed dispatcher
left in `sending` at start and periodically, and refreshing the queue gauges.

SQLite has one writer: claims and outcome writes of all lanes take turns (one claimer).
PostgreSQL claims with FOR UPDATE SKIP LOCKED, so lanes, and other instances, claim at once.
Each claimed row names the instance that claimed it (`claimed_by`, see `instance_id`), so the
rows a killed instance left in `sending` are known to be its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.db import transaction
from bot.delivery import metrics
from bot.delivery.channels import Channel, Delivery, DeliveryStatus
from bot.delivery.suppression import decide
from bot.i18n import customer_locale, offered_locales
from bot.messages.render import RenderContext, Rendered, SkipMessage, UnknownKind, render_message
from bot.models import Customer, Lane, Outbox, OutboxState, Shop
from bot.services import Services
from bot.shop_settings import ShopSettings, load_shop_settings
from bot.store import outbox as store

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=5)
RECORD_EVERY = 0.2  # seconds between two writes of the lanes' outcomes
RECORD_AT = 500  # or as soon as this many outcomes wait
PG_DATABASE_TURNS = 8  # lanes claiming or recording at once on PostgreSQL (pool: 10 + 10)


def instance_id() -> str:
    """Return a name for this dispatcher: host, process id and a random part (64 chars at most)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class RunCounts:
    """What one or more cycles did."""

    claimed: int = 0
    sent: int = 0
    skipped: int = 0
    postponed: int = 0
    retried: int = 0
    failed: int = 0
    blocked: int = 0
    unknown: int = 0  # no answer in time: may have arrived, never sent again
    released: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)

    def add(self, other: RunCounts) -> None:
        """Add another run's counts to these."""
        names = ("claimed", "sent", "skipped", "postponed", "retried", "failed", "blocked")
        for name in (*names, "unknown"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.released += other.released
        for reason, count in other.skip_reasons.items():
            self.skip_reasons[reason] = self.skip_reasons.get(reason, 0) + count

    def as_dict(self) -> dict[str, object]:
        """Return the counts as plain data."""
        return asdict(self)


@dataclass(slots=True)
class _Plan:
    row: Outbox
    shop: Shop
    customer: Customer
    message: Rendered


@dataclass(slots=True)
class _Batch:
    rows: list[Outbox]
    plans: list[_Plan]
    early: list[store.Outcome]


class Courier:
    """Delivers the outbox: claim, suppress, render, send, record; batch after batch."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        channel: Channel,
        clock: Clock,
        settings: Settings,
        batch_size: int | None = None,
        max_attempts: int | None = None,
        lease: timedelta = DEFAULT_LEASE,
        retry_backoff: timedelta = timedelta(seconds=30),
        max_backoff: timedelta = timedelta(hours=1),
        concurrency: int = 256,
        poll_interval: float | None = None,
        recover_every: float = 30.0,
        gauges_every: float = 5.0,
        claim_seconds: float | None = None,
        rate: float | None = None,
    ) -> None:
        dispatch = settings.dispatch
        self.sessions = sessions
        self.channel = channel
        self.clock = clock
        self.settings = settings
        # A claim holds about four seconds of one bot's sends, so a stop or a more urgent
        # transactional message never waits long behind a claimed promo batch.
        self.batch_size = batch_size or min(
            dispatch.batch_size, max(20, int(dispatch.rate_per_second * 4))
        )
        self.max_attempts = max_attempts or dispatch.max_attempts
        self.lease = lease
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self.poll_interval = poll_interval or dispatch.poll_interval
        self.recover_every = recover_every
        self.gauges_every = gauges_every
        # A lane's claim: what the bot sends in `claim_seconds` at its rate (the limiter's).
        limiter = getattr(channel, "limiter", None)
        self.rate = rate or getattr(limiter, "rate", None) or dispatch.rate_per_second
        self.claim_seconds = claim_seconds or dispatch.claim_seconds
        self.lane_batch = max(
            1, min(batch_size or dispatch.batch_size, math.ceil(self.rate * self.claim_seconds))
        )
        self._slots = asyncio.Semaphore(concurrency)
        self._stopping = asyncio.Event()
        bind = getattr(sessions, "kw", {}).get("bind")
        single_writer = bind is None or bind.dialect.name == "sqlite"
        # SQLite: one claimer/writer at a time (reads run beside it: WAL). PostgreSQL: a few.
        self._single_writer = single_writer
        self._database = asyncio.Semaphore(1 if single_writer else PG_DATABASE_TURNS)
        self.lanes: dict[int, asyncio.Task[None]] = {}
        self.claims: list[tuple[int, int, float]] = []  # (shop, rows, monotonic): last claims
        self.instance = instance_id()  # written on every row this Courier claims

    # ------------------------------------------------------------------------ running

    async def recover(self) -> store.Recovered:
        """Resolve rows left in `sending` past the lease: `unknown`, or again if at least once."""
        async with transaction(self.sessions) as session:
            recovered = await store.recover_stale(
                session=session,
                now=self.clock.now(),
                lease=self.lease,
                max_attempts=self.max_attempts,
            )
        if recovered.unknown:
            metrics.OUTBOX_UNKNOWN.inc(recovered.unknown)
            log.warning("%d outbox rows left in sending are now unknown", recovered.unknown)
        if recovered.requeued:
            log.warning("%d at-least-once outbox rows scheduled again", recovered.requeued)
        return recovered

    async def refresh_gauges(self) -> store.QueueDepth:
        """Measure the queue depth and the oldest due row's lag for the gauges."""
        now = self.clock.now()
        async with self.sessions() as session:
            queue = await store.queue_depth(session=session, now=now)
        metrics.QUEUE_DEPTH.set(queue.depth)
        metrics.QUEUE_LAG.set(queue.lag(now))
        return queue

    async def drain(self, *, max_cycles: int | None = None) -> RunCounts:
        """Send until nothing is due (every bot in its lane); return the totals.

        With `max_cycles`, run that many `run_once` cycles at most instead (one claim each).
        """
        if max_cycles is not None:
            total = RunCounts()
            for _ in range(max_cycles):
                counts = await self.run_once()
                total.add(counts)
                if counts.claimed == 0 or self._stopping.is_set():
                    break
            return total
        return await self._fleet(until_idle=True)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; batches in hand are finished or handed back first."""
        self._stopping = stop
        log.info("dispatcher %s started", self.instance)
        await self.recover()
        await self._fleet(until_idle=False)

    # -------------------------------------------------------------------------- lanes

    async def _fleet(self, *, until_idle: bool) -> RunCounts:
        """Run a lane per bot with due rows; find new ones every poll interval."""
        total = RunCounts()
        recorder = _Recorder(self, total)
        last_recover = last_gauges = time.monotonic()
        lanes = self.lanes
        try:
            while not self._stopping.is_set():
                try:
                    async with self.sessions() as session:
                        waiting = await store.due_shops(session=session, now=self.clock.now())
                except Exception:  # the database may be away a while; the rows are safe
                    log.exception("looking for due rows failed")
                    waiting = []
                for shop_id in waiting:
                    if shop_id not in lanes:
                        lanes[shop_id] = asyncio.create_task(
                            self._lane(shop_id, total, recorder), name=f"nudge-lane-{shop_id}"
                        )
                if until_idle and not lanes:
                    break
                if not until_idle:
                    now = time.monotonic()
                    try:
                        if now - last_recover >= self.recover_every:
                            last_recover = now
                            await self.recover()
                        if now - last_gauges >= self.gauges_every:
                            last_gauges = now
                            await self.refresh_gauges()
                    except Exception:
                        log.exception("outbox housekeeping failed")
                stopping = asyncio.ensure_future(self._stopping.wait())
                try:
                    await asyncio.wait(
                        [stopping, *lanes.values()],
                        timeout=None if until_idle else self.poll_interval,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    stopping.cancel()
                self._reap(lanes)
        finally:
            if lanes:
                await asyncio.wait(list(lanes.values()))
                self._reap(lanes)
            await recorder.close()
        return total

    @staticmethod
    def _reap(lanes: dict[int, asyncio.Task[None]]) -> None:
        for shop_id, task in list(lanes.items()):
            if task.done():
                del lanes[shop_id]
                if not task.cancelled() and task.exception() is not None:
                    log.error("lane of shop %s failed", shop_id, exc_info=task.exception())

    async def _lane(self, shop_id: int, total: RunCounts, recorder: _Recorder) -> None:
        """Send one bot's due rows at its rate: claim, and claim again before running dry."""
        lane = _Lane(shop_id)
        upcoming: asyncio.Task[_Batch] | None = asyncio.create_task(
            self._take(shop_id, self.lane_batch)
        )
        try:
            while upcoming is not None:
                batch = await upcoming
                upcoming = None
                if not batch.rows:
                    break
                total.claimed += len(batch.rows)
                self._count(total, batch.early, batch.rows)
                progress = _Progress(len(batch.plans))
                by_customer: dict[int, list[_Plan]] = {}
                for plan in batch.plans:
                    by_customer.setdefault(plan.row.customer_id, []).append(plan)
                for customer_id, plans in by_customer.items():
                    after = lane.tails.get(customer_id)
                    task = asyncio.create_task(
                        self._lane_deliver(lane, plans, after, progress, total, recorder)
                    )
                    lane.sending.add(task)
                    lane.tails[customer_id] = task
                    task.add_done_callback(lane.forget(customer_id))
                # The next claim is ready before this one runs dry: half of it out is the cue.
                await progress.halfway.wait()
                if self._stopping.is_set():
                    break
                upcoming = asyncio.create_task(self._take(shop_id, self.lane_batch))
        finally:
            if upcoming is not None:  # a claim made ahead and not sent: hand it back
                await asyncio.wait([upcoming])
                if not upcoming.cancelled() and upcoming.exception() is None:
                    left = [plan.row for plan in upcoming.result().plans]
                    if left:
                        await self._release(left, self.clock.now())
            if lane.sending:
                await asyncio.wait(list(lane.sending))

    async def _lane_deliver(
        self,
        lane: _Lane,
        plans: list[_Plan],
        after: asyncio.Task[None] | None,
        progress: _Progress,
        total: RunCounts,
        recorder: _Recorder,
    ) -> None:
        """Send one customer's rows of a batch in order, after their rows of earlier batches."""
        try:
            if after is not None and not after.done():
                await asyncio.wait([after])
            for plan in plans:
                if plan.row.customer_id in lane.unreachable:
                    outcome, delivery = _skip(plan.row, "unreachable"), None
                else:
                    try:
                        outcome, delivery = await self._deliver(plan, slot=False)
                    except Exception as exc:  # never leave a row unaccounted for
                        log.exception("delivering outbox row %s failed", plan.row.id)
                        outcome = _fail(plan.row, f"{type(exc).__name__}: {exc}")
                        delivery = None
                    if delivery is not None and delivery.status is DeliveryStatus.UNREACHABLE:
                        lane.unreachable.add(plan.row.customer_id)
                self._count(total, [outcome], [])
                recorder.add((plan, outcome, delivery))
                progress.advance()
        finally:
            lane.sending.discard(asyncio.current_task())  # type: ignore[arg-type]

    # ---------------------------------------------------------------------- one cycle

    async def run_once(self) -> RunCounts:
        """Claim one batch of due rows (any shop), deliver it and record what happened."""
        return await self._send(await self._take(None, self.batch_size))

    async def _take(self, shop_id: int | None, limit: int) -> _Batch:
        """Claim a batch, decide and render it, and write what will not be sent now."""
        now = self.clock.now()
        async with self._database:
            async with transaction(self.sessions) as session:
                rows = await store.claim_due(
                    session=session, now=now, limit=limit, shop_id=shop_id
                )
                if rows:  # in the claim's transaction: no row is ever ours without our name
                    await session.execute(
                        update(Outbox)
                        .where(Outbox.id.in_([row.id for row in rows]))  # type: ignore[union-attr]
                        .values(claimed_by=self.instance)
                        .execution_options(synchronize_session=False)
                    )
        if shop_id is not None:
            self.claims.append((shop_id, len(rows), time.monotonic()))
            del self.claims[:-1000]
        if not rows:
            return _Batch([], [], [])
        if self._single_writer:  # reads need no turn on SQLite (WAL); the writes take one
            return await self._prepared(rows, now)
        async with self._database:
            return await self._prepared(rows, now)

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[None]:
        """Take the single writer's turn on SQLite (PostgreSQL callers hold a turn already)."""
        if self._single_writer:
            async with self._database:
                yield
        else:
            yield

    async def _prepared(self, rows: list[Outbox], now: datetime) -> _Batch:
        try:
            plans, early = await self._prepare(rows, now)
            if early:
                async with self._writing():
                    async with transaction(self.sessions) as session:
                        await store.record_outcomes(session=session, outcomes=early, now=now)
        except Exception:
            # Nothing has left yet: hand the batch back rather than let it become unknown.
            await self._release(rows, now)
            raise
        return _Batch(rows, plans, early)

    async def _send(self, batch: _Batch) -> RunCounts:
        """Send a prepared batch and record the outcomes."""
        counts = RunCounts(claimed=len(batch.rows))
        if not batch.rows:
            return counts
        # One customer's rows go one after another (their chat takes one message a second
        # anyway), so a 403 on the first skips the rest; customers are served concurrently.
        by_customer: dict[int, list[_Plan]] = {}
        for plan in batch.plans:
            by_customer.setdefault(plan.row.customer_id, []).append(plan)
        groups = await asyncio.gather(*(self._deliver_all(g) for g in by_customer.values()))
        results = [result for group in groups for result in group]
        await self._record(results, self.clock.now())
        self._count(counts, batch.early, batch.rows)
        self._count(counts, [outcome for _, outcome, _ in results], batch.rows)
        return counts

    async def _record(
        self, results: list[tuple[_Plan, store.Outcome, Delivery | None]], now: datetime
    ) -> None:
        """Write what the sends came to; retry a few times, as the messages are already out."""
        for attempt in range(3):
            try:
                async with self._database, transaction(self.sessions) as session:
                    await store.record_outcomes(
                        session=session, outcomes=[o for _, o, _ in results], now=now
                    )
                    for plan, _, delivery in results:
                        if delivery is None or delivery.status is not DeliveryStatus.UNREACHABLE:
                            continue
                        skipped = await store.mark_unreachable(
                            session=session,
                            shop_id=plan.shop.id,  # type: ignore[arg-type]
                            customer_id=plan.customer.id,  # type: ignore[arg-type]
                            now=now,
                        )
                        if skipped:
                            metrics.OUTBOX_SKIPPED.labels("unreachable").inc(skipped)
                return
            except Exception:
                if attempt == 2:
                    raise  # the rows stay `sending` and become `unknown` after the lease
                log.exception("recording outcomes failed; trying again")
                await asyncio.sleep(0.5 * (attempt + 1))

    async def _release(self, rows: list[Outbox], now: datetime) -> None:
        try:
            async with self._writing(), transaction(self.sessions) as session:
                await store.record_outcomes(
                    session=session, outcomes=[_postpone(r, now, None) for r in rows], now=now
                )
        except Exception:
            log.exception("could not hand back %d claimed rows", len(rows))

    async def _prepare(
        self, rows: list[Outbox], now: datetime
    ) -> tuple[list[_Plan], list[store.Outcome]]:
        """Decide every row of the batch; render the ones that go out now."""
        plans: list[_Plan] = []
        early: list[store.Outcome] = []
        async with self.sessions() as session:
            shops = await store.shops_by_id(session=session, shop_ids={r.shop_id for r in rows})
            customers = await store.customers_by_id(
                session=session, keys={(r.shop_id, r.customer_id) for r in rows}
            )
            excluded = await store.excluded_topics(
                session=session,
                keys={(r.shop_id, r.customer_id, r.topic) for r in rows if r.topic},
            )
            shop_settings = {
                shop_id: load_shop_settings(s.settings) for shop_id, s in shops.items()
            }
            recent: dict[int, list[datetime]] = {}
            promo_shops: dict[int, set[int]] = {}
            for r in rows:
                if r.lane == Lane.PROMO:
                    promo_shops.setdefault(r.shop_id, set()).add(r.customer_id)
            for shop_id, promo_customers in promo_shops.items():
                recent.update(
                    await store.recent_promo_sends(
                        session=session,
                        shop_id=shop_id,
                        customer_ids=promo_customers,
                        since=now - shop_settings[shop_id].frequency_window,
                        exclude_ids=[r.id for r in rows if r.id is not None],
                    )
                )
            for row in rows:
                shop = shops[row.shop_id]
                customer = customers.get(row.customer_id)
                settings = shop_settings[row.shop_id]
                verdict = decide(
                    row=row,
                    customer=customer,
                    shop=shop,
                    settings=settings,
                    now=now,
                    excluded=(row.shop_id, row.customer_id, row.topic) in excluded,
                    promo_sends=recent.get(row.customer_id, ()),
                )
                if verdict.until is not None:
                    early.append(_postpone(row, verdict.until, "quiet_hours"))
                    continue
                if verdict.reason is not None:
                    early.append(_skip(row, verdict.reason))
                    continue
                assert customer is not None
                outcome, message = await self._render(session, row, shop, customer, settings)
                if outcome is not None:
                    early.append(outcome)
                    continue
                assert message is not None
                if row.lane == Lane.PROMO:
                    recent.setdefault(row.customer_id, []).append(now)
                plans.append(_Plan(row, shop, customer, message))
        return plans, early

    async def _render(
        self,
        session: AsyncSession,
        row: Outbox,
        shop: Shop,
        customer: Customer,
        settings: ShopSettings,
    ) -> tuple[store.Outcome | None, Rendered | None]:
        ctx = RenderContext(
            session=session,
            shop=shop,
            customer=customer,
            outbox=row,
            # the language settled at linking (or chosen in /settings), among the shop's
            locale=customer_locale(
                shop,
                customer.locale,
                offered=offered_locales(settings.languages),
            ),
            clock=self.clock,
            settings=self.settings,
            shop_settings=settings,
        )
        try:
            return None, await render_message(ctx)
        except SkipMessage as skip:
            return _skip(row, skip.reason), None
        except UnknownKind as exc:
            return _fail(row, str(exc)), None
        except Exception as exc:  # a broken render fails its row, not the batch
            log.exception("render of outbox row %s (%s) failed", row.id, row.kind)
            return _fail(row, f"render failed: {type(exc).__name__}: {exc}"), None

    async def _deliver_all(
        self, plans: list[_Plan]
    ) -> list[tuple[_Plan, store.Outcome, Delivery | None]]:
        results: list[tuple[_Plan, store.Outcome, Delivery | None]] = []
        unreachable = False
        for plan in plans:
            if unreachable:
                results.append((plan, _skip(plan.row, "unreachable"), None))
                continue
            outcome, delivery = await self._deliver(plan)
            unreachable = delivery is not None and delivery.status is DeliveryStatus.UNREACHABLE
            results.append((plan, outcome, delivery))
        return results

    async def _deliver(
        self, plan: _Plan, *, slot: bool = True
    ) -> tuple[store.Outcome, Delivery | None]:
        row = plan.row
        async with self._slots if slot else contextlib.nullcontext():
            if self._stopping.is_set():
                return _postpone(row, self.clock.now(), None), None
            try:
                delivery = await self.channel.send(
                    sender=plan.shop.bot_token or "",
                    recipient=plan.customer.telegram_chat_id or 0,
                    message=plan.message,
                )
            except Exception as exc:  # a channel bug fails the row, not the batch
                log.exception("channel %s raised", self.channel.name)
                delivery = Delivery(DeliveryStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        now = self.clock.now()
        lane = row.lane
        channel = self.channel.name
        if delivery.status is DeliveryStatus.SENT:
            metrics.OUTBOX_SENT.labels(channel, lane).inc()
            metrics.SEND_LAG.observe(max(0.0, (now - row.due_at).total_seconds()))
            outcome = store.Outcome(
                row.id,  # type: ignore[arg-type]
                OutboxState.SENT,
                message_id=delivery.message_id,
                sent_at=now,
            )
        elif delivery.status is DeliveryStatus.UNREACHABLE:
            metrics.OUTBOX_BLOCKED.labels(channel).inc()
            outcome = store.Outcome(row.id, OutboxState.BLOCKED, error=delivery.error)  # type: ignore[arg-type]
        elif delivery.status is DeliveryStatus.UNKNOWN and not (
            row.at_least_once and row.attempts < self.max_attempts
        ):
            # No answer in time: it may have arrived, and Telegram has no idempotency key.
            metrics.OUTBOX_UNKNOWN.inc()
            outcome = store.Outcome(row.id, OutboxState.UNKNOWN, error=delivery.error)  # type: ignore[arg-type]
        elif (
            delivery.status in (DeliveryStatus.RETRY, DeliveryStatus.UNKNOWN)
            and row.attempts < self.max_attempts
        ):
            metrics.OUTBOX_RETRIED.labels(channel, lane).inc()
            outcome = store.Outcome(
                row.id,  # type: ignore[arg-type]
                OutboxState.SCHEDULED,
                error=delivery.error,
                next_attempt_at=now + self._backoff(row.attempts),
            )
        else:
            metrics.OUTBOX_FAILED.labels(channel, lane).inc()
            outcome = store.Outcome(row.id, OutboxState.FAILED, error=delivery.error)  # type: ignore[arg-type]
        return outcome, delivery

    def _backoff(self, attempts: int) -> timedelta:
        return min(self.max_backoff, self.retry_backoff * (2 ** max(0, attempts - 1)))

    @staticmethod
    def _count(counts: RunCounts, outcomes: list[store.Outcome], rows: list[Outbox]) -> None:
        for outcome in outcomes:
            if outcome.state is OutboxState.SENT:
                counts.sent += 1
            elif outcome.state is OutboxState.SKIPPED:
                counts.skipped += 1
                reason = outcome.skip_reason or "unspecified"
                counts.skip_reasons[reason] = counts.skip_reasons.get(reason, 0) + 1
                metrics.OUTBOX_SKIPPED.labels(reason).inc()
            elif outcome.state is OutboxState.BLOCKED:
                counts.blocked += 1
            elif outcome.state is OutboxState.FAILED:
                counts.failed += 1
            elif outcome.state is OutboxState.UNKNOWN:
                counts.unknown += 1
            elif outcome.release_attempt and outcome.skip_reason is None:
                counts.released += 1
            elif outcome.release_attempt:
                counts.postponed += 1
                metrics.OUTBOX_POSTPONED.labels(outcome.skip_reason).inc()
            else:
                counts.retried += 1


class _Lane:
    """What one bot's lane keeps between batches: each customer's last send, who is gone."""

    __slots__ = ("sending", "shop_id", "tails", "unreachable")

    def __init__(self, shop_id: int) -> None:
        self.shop_id = shop_id
        self.tails: dict[int, asyncio.Task[None]] = {}
        self.sending: set[asyncio.Task[None]] = set()
        self.unreachable: set[int] = set()

    def forget(self, customer_id: int) -> Callable[[asyncio.Task[None]], None]:
        """Return a callback that drops the customer's tail once it is this finished task."""

        def done(task: asyncio.Task[None]) -> None:
            if self.tails.get(customer_id) is task:
                del self.tails[customer_id]

        return done


class _Progress:
    """How much of a batch went out; `halfway` is set once half of it did (or it is empty)."""

    __slots__ = ("done", "halfway", "total")

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.halfway = asyncio.Event()
        if total <= 1:
            self.halfway.set()

    def advance(self) -> None:
        """Count one row of the batch as finished."""
        self.done += 1
        if self.done * 2 >= self.total:
            self.halfway.set()


class _Recorder:
    """Writes the lanes' outcomes together, a few times a second, in one transaction."""

    def __init__(self, courier: Courier, total: RunCounts) -> None:
        self.courier = courier
        self.total = total
        self.pending: list[tuple[_Plan, store.Outcome, Delivery | None]] = []
        self.wake = asyncio.Event()
        self.closing = False
        self.task = asyncio.create_task(self._run(), name="nudge-outcomes")

    def add(self, result: tuple[_Plan, store.Outcome, Delivery | None]) -> None:
        """Queue one row's outcome for the next write."""
        self.pending.append(result)
        if len(self.pending) >= RECORD_AT:
            self.wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), RECORD_EVERY)
            self.wake.clear()
            await self.flush()
            if self.closing and not self.pending:
                return

    async def flush(self) -> None:
        """Write what is pending (the rows stay `sending`, later `unknown`, if it fails)."""
        results, self.pending = self.pending, []
        if not results:
            return
        try:
            await self.courier._record(results, self.courier.clock.now())
        except Exception:
            log.exception("could not record %d outcomes", len(results))

    async def close(self) -> None:
        """Write the last outcomes and stop."""
        self.closing = True
        self.wake.set()
        await self.task


def _skip(row: Outbox, reason: str) -> store.Outcome:
    return store.Outcome(row.id, OutboxState.SKIPPED, skip_reason=reason)  # type: ignore[arg-type]


def _fail(row: Outbox, error: str) -> store.Outcome:
    metrics.OUTBOX_FAILED.labels("-", row.lane).inc()
    return store.Outcome(row.id, OutboxState.FAILED, error=error)  # type: ignore[arg-type]


def _postpone(row: Outbox, until: datetime, reason: str | None) -> store.Outcome:
    """Put a row back for later without counting an attempt (quiet hours, a stop)."""
    return store.Outcome(
        row.id,  # type: ignore[arg-type]
        OutboxState.SCHEDULED,
        skip_reason=reason,
        next_attempt_at=until,
        release_attempt=True,
    )


# ------------------------------------------------------------------------ in the service


def courier_for(services: Services) -> Courier:
    """Build the Courier that sends through the service's bots within the configured rates."""
    from bot.delivery.channels.telegram import channel_for
    from bot.delivery.limiter import SlidingWindowLimiter

    dispatch = services.settings.dispatch
    # the Redis limiter (shared by every instance) when NUDGE_REDIS_URL is set
    limiter = getattr(services, "limiter", None) or SlidingWindowLimiter(
        dispatch.rate_per_second, dispatch.per_chat_per_second
    )
    return Courier(
        sessions=services.sessions,
        channel=channel_for(services.bots, limiter, services.settings),
        clock=services.clock,
        settings=services.settings,
    )


async def courier_context(app: web.Application) -> AsyncIterator[None]:
    """Run the Courier beside the web app: started on startup, stopped gracefully on cleanup."""
    from bot.web.keys import SERVICES

    courier = courier_for(app[SERVICES])
    stop = asyncio.Event()
    task = asyncio.create_task(courier.run_forever(stop), name="nudge-courier")
    yield
    stop.set()
    try:
        await asyncio.wait_for(task, timeout=30)
    except TimeoutError:
        log.error("the courier did not stop within 30 s; rows in flight become unknown")


__all__ = [
    "DEFAULT_LEASE",
    "Courier",
    "RunCounts",
    "courier_context",
    "courier_for",
    "instance_id",
]

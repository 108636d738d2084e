"""Telegram updates, each handled once: read, claimed in `telegram_updates`, fed, recorded.

Both doors use `UpdateIntake`: the webhook (POST /tg/{shop_id}, bot/web/telegram.py) and long
polling (bot/bots.py). Telegram delivers anything it did not get a 2xx for again, ahead of the
bot's later updates, so each delivery ends in one of two ways:

- **Acknowledged** (webhook 200; polling: the offset moves past it):
  - handled: the handlers ran and the row is `done`;
  - a duplicate: the same bot and update_id was handled (or failed, or rejected) before;
  - rejected: the body is not JSON, is nested too deep to read, or is not a Telegram update.
    It is logged and kept (`rejected`, with the error and the update_id when it can be found);
  - failed: a handler raised, or ran longer than HANDLER_TIMEOUT. It is logged and kept
    (`failed`, with the error). Such an update would fail again on every redelivery and stop
    the bot's stream for good, so it is not retried.
- **Retry later** (webhook 503; polling: the offset stays and the batch is fetched again after a
  pause), only when waiting can help:
  - the database is unreachable or busy (a transient error while handling: the claim is
    released for the next delivery), at most MAX_ATTEMPTS times, then it is failed;
  - the ledger itself cannot be written (the database is down, or the schema is not migrated):
    nothing ran, so nothing is lost by waiting; the update is read again once it is fixed;
  - another worker holds a fresh claim on the same update (a concurrent duplicate delivery).

A claim is committed before the handlers run. If the process dies mid-handling, the claim stays
`handling`; Telegram sends the update again (it got no 2xx) and a delivery that finds the claim
older than STALE_CLAIM takes it over (handlers are cut off after HANDLER_TIMEOUT, well before, so
a stale claim is a dead one). Telegram redelivers for about a day; ledger rows older than
RETENTION are pruned, at most once an hour.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiogram.types.update import UpdateTypeLookupError
from pydantic import ValidationError
from sqlalchemy import exc as sa_exc

from bot.db import transaction
from bot.models import Shop
from bot.models import TelegramUpdateState as State
from bot.services import Services
from bot.store.telegram_updates import (
    Claim,
    ClaimOutcome,
    claim_update,
    finish_update,
    prune_updates,
    record_rejected,
)

log = logging.getLogger(__name__)

HANDLER_TIMEOUT = 50.0  # seconds; Telegram gives a webhook about a minute
STALE_CLAIM = timedelta(minutes=2)
MAX_ATTEMPTS = 5
RETENTION = timedelta(days=3)
PRUNE_EVERY = timedelta(hours=1)
MAX_BODY = 1024 * 1024


class Verdict(StrEnum):
    """How one delivery of an update ended."""

    HANDLED = "handled"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    FAILED = "failed"
    BUSY = "busy"
    UNAVAILABLE = "unavailable"

    @property
    def acknowledged(self) -> bool:
        """Tell whether Telegram may forget the update (2xx, or the offset moves past it)."""
        return self not in (Verdict.BUSY, Verdict.UNAVAILABLE)


def is_transient(error: BaseException) -> bool:
    """Tell whether an error means the database is unreachable or busy (worth a retry)."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    transient = (
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sa_exc.TimeoutError,
        ConnectionError,
        OSError,
    )
    return isinstance(error, transient)


# ------------------------------------------------------------------- reading without recursion

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.DOTALL)
_STRING = re.compile(r'\s*("(?:[^"\\]|\\.)*")\s*:', re.DOTALL)
_LEADING_ID = re.compile(rb'^\s*\{\s*"update_id"\s*:\s*(-?\d{1,19})\s*[,}]')


def json_members(text: str) -> list[tuple[str | None, str]] | None:
    """Split a JSON object or array into its top-level members, unparsed, at any depth.

    Returns (key, raw value) pairs (key None for array items), or None when `text` is not a
    well-formed object or array at the top level. Nothing is parsed recursively, so a body too
    deep for `json.loads` can still be split.
    """
    text = text.strip()
    if not text or text[0] not in "[{":
        return None
    closing = "]" if text[0] == "[" else "}"
    members: list[tuple[str | None, str]] = []
    depth, start = 0, 1
    for match in _TOKEN.finditer(text, 1):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
        elif token in ("]", "}"):
            if depth:
                depth -= 1
                continue
            if token != closing or match.end() != len(text):
                return None
            last = text[start : match.start()]
            if last.strip():
                members.append(_member(last, closing))
            elif members:
                return None  # a trailing comma
            return None if any(m is None for m in members) else members  # type: ignore[return-value]
        elif token == "," and depth == 0:
            members.append(_member(text[start : match.start()], closing))
            start = match.end()
    return None


def _member(raw: str, closing: str) -> tuple[str | None, str]:
    if closing == "]":
        return None, raw.strip()
    found = _STRING.match(raw)
    if found is None:
        return None  # type: ignore[return-value]
    try:
        key = json.loads(found.group(1))
    except ValueError:
        return None  # type: ignore[return-value]
    return key, raw[found.end() :].strip()


def find_update_id(body: bytes | str) -> int | None:
    """Return the top-level update_id of an update body that may not parse, if it has one."""
    raw = body.encode() if isinstance(body, str) else body
    leading = _LEADING_ID.match(raw[:200])
    if leading:
        return int(leading.group(1))
    text = raw.decode("utf-8", "replace") if isinstance(body, bytes) else body
    members = json_members(text)
    if members is None:
        return None
    value = dict(members).get("update_id", "")
    return int(value) if re.fullmatch(r"-?\d{1,19}", value or "") else None


def _id_in(data: Any) -> int | None:
    value = data.get("update_id") if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class UnreadableAnswer(Exception):
    """A getUpdates answer that is not `{"ok": true, "result": [...]}`."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """One update of a getUpdates answer: parsed JSON, or its raw text when it did not parse."""

    update_id: int | None
    data: Any = None
    raw: str | None = None


def read_updates(answer: bytes) -> list[Fetched]:
    """Split a getUpdates answer into its updates; one that does not parse stays raw."""
    try:
        parsed = json.loads(answer)
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        result = parsed.get("result")
        if parsed.get("ok") is not True or not isinstance(result, list):
            raise UnreadableAnswer(str(parsed.get("description") or parsed)[:200])
        return [Fetched(_id_in(item), data=item) for item in result]
    members = json_members(answer.decode("utf-8", "replace"))
    fields = dict(members) if members is not None else {}
    items = json_members(fields.get("result") or "") if fields.get("ok") == "true" else None
    if items is None:
        raise UnreadableAnswer(f"not a getUpdates answer: {_excerpt(answer)!r}")
    fetched = []
    for _, raw in items:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            fetched.append(Fetched(find_update_id(raw), raw=raw))
        else:
            fetched.append(Fetched(_id_in(data), data=data))
    return fetched


def fingerprint_of(content: Any) -> str:
    """Return the SHA-256 of an update: of its bytes when raw, else of its canonical JSON."""
    if not isinstance(content, bytes | str):
        try:
            content = json.dumps(
                content, sort_keys=True, ensure_ascii=False, separators=(",", ":")
            )
        except (ValueError, TypeError, RecursionError):
            content = b""
    if isinstance(content, str):
        content = content.encode("utf-8", "surrogatepass")
    return hashlib.sha256(content).hexdigest()


def _excerpt(body: bytes | str) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text[:200]


# ------------------------------------------------------------------------------ the intake


@dataclass
class UpdateIntake:
    """Hand Telegram updates to the dispatcher once each, recording every outcome."""

    services: Services
    dispatcher: Dispatcher
    _pruned_at: datetime | None = field(default=None, init=False)

    async def take_body(
        self, bot: Bot, body: bytes | str, *, shop_id: int, shop: Shop | None = None
    ) -> Verdict:
        """Read one update's raw body and take it (an unreadable body is rejected, kept)."""
        if len(body) > MAX_BODY:
            reason = f"body of {len(body)} bytes is over {MAX_BODY}"
            return await self._reject(bot, shop_id, find_update_id(body[:200]), reason, body)
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            reason = f"unreadable JSON ({type(exc).__name__}: {str(exc)[:200]})"
            return await self._reject(bot, shop_id, find_update_id(body), reason, body)
        return await self.take(bot, data, shop_id=shop_id, shop=shop)

    async def take(
        self, bot: Bot, data: Any, *, shop_id: int, shop: Shop | None = None
    ) -> Verdict:
        """Take one update's parsed JSON: claim it, feed it to the dispatcher, record it."""
        try:
            update = Update.model_validate(data, context={"bot": bot})
        except (ValidationError, ValueError, RecursionError) as exc:
            reason = f"not a Telegram update ({type(exc).__name__}: {str(exc)[:500]})"
            return await self._reject(bot, shop_id, _id_in(data), reason, content=data)
        try:
            verdict = await self._handle(bot, update, fingerprint_of(data), shop_id, shop)
        except Exception as exc:  # the ledger itself failed: nothing ran, Telegram retries
            log.log(
                logging.WARNING if is_transient(exc) else logging.ERROR,
                "shop %s: update %s waits, the update ledger is unavailable: %s",
                shop_id,
                update.update_id,
                exc,
                exc_info=not is_transient(exc),
            )
            return Verdict.UNAVAILABLE
        await self._prune()
        return verdict

    async def _handle(
        self, bot: Bot, update: Update, fingerprint: str, shop_id: int, shop: Shop | None
    ) -> Verdict:
        now = self.services.clock.now()
        async with transaction(self.services.sessions) as session:
            claim = await claim_update(
                session=session,
                shop_id=shop_id,
                bot_id=bot.id,
                update_id=update.update_id,
                fingerprint=fingerprint,
                now=now,
                stale_before=now - STALE_CLAIM,
                max_attempts=MAX_ATTEMPTS,
            )
        if claim.outcome is ClaimOutcome.SEEN:
            log.info("shop %s: update %s was handled before", shop_id, update.update_id)
            return Verdict.DUPLICATE
        if claim.outcome is ClaimOutcome.BUSY:
            log.info("shop %s: update %s is being handled elsewhere", shop_id, update.update_id)
            return Verdict.BUSY
        if claim.outcome is ClaimOutcome.EXHAUSTED:
            log.error(
                "shop %s: update %s given up after %s attempts",
                shop_id,
                update.update_id,
                MAX_ATTEMPTS,
            )
            return Verdict.FAILED
        return await self._run(bot, update, shop_id, shop, claim)

    async def _run(
        self, bot: Bot, update: Update, shop_id: int, shop: Shop | None, claim: Claim
    ) -> Verdict:
        assert claim.row_id is not None
        try:
            update.event_type  # noqa: B018 - raises for a kind this aiogram does not know
        except UpdateTypeLookupError:
            log.info("shop %s: update %s of an unknown kind ignored", shop_id, update.update_id)
            await self._finish(claim, State.DONE, "unknown update kind: ignored")
            return Verdict.HANDLED
        deadline = asyncio.timeout(HANDLER_TIMEOUT)
        extra = {"shop": shop} if shop is not None else {}
        try:
            async with deadline:
                await self.dispatcher.feed_update(bot, update, **extra)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if deadline.expired():
                error = f"handlers ran longer than {HANDLER_TIMEOUT:.0f} s"
            elif is_transient(exc) and claim.attempts < MAX_ATTEMPTS:
                log.warning(
                    "shop %s: update %s will be retried (attempt %s): %s",
                    shop_id,
                    update.update_id,
                    claim.attempts,
                    error,
                )
                await self._finish(claim, State.RETRY, error)
                return Verdict.UNAVAILABLE
            log.error(
                "shop %s: update %s failed and is acknowledged: %s",
                shop_id,
                update.update_id,
                error,
                exc_info=exc,
            )
            await self._finish(claim, State.FAILED, error)
            return Verdict.FAILED
        await self._finish(claim, State.DONE)
        return Verdict.HANDLED

    async def _finish(self, claim: Claim, state: State, error: str | None = None) -> None:
        """Record the end of a claim; if the database is gone, the claim goes stale instead."""
        assert claim.row_id is not None
        try:
            async with transaction(self.services.sessions) as session:
                await finish_update(
                    session=session,
                    row_id=claim.row_id,
                    state=state,
                    now=self.services.clock.now(),
                    error=error,
                )
        except Exception as exc:
            log.warning("update ledger row %s not marked %s: %s", claim.row_id, state, exc)

    async def _reject(
        self,
        bot: Bot,
        shop_id: int,
        update_id: int | None,
        reason: str,
        body: bytes | str | None = None,
        *,
        content: Any = None,
    ) -> Verdict:
        log.error("shop %s: update %s rejected and acknowledged: %s", shop_id, update_id, reason)
        if body is not None:  # kept for the record, not logged: it may be a customer's words
            reason = f"{reason}; body starts {_excerpt(body)!r}"
        try:
            async with transaction(self.services.sessions) as session:
                await record_rejected(
                    session=session,
                    shop_id=shop_id,
                    bot_id=bot.id,
                    update_id=update_id,
                    fingerprint=fingerprint_of(body if body is not None else content),
                    error=reason,
                    now=self.services.clock.now(),
                )
        except Exception as exc:
            log.warning(
                "shop %s: rejected update %s not recorded yet: %s", shop_id, update_id, exc
            )
            return Verdict.UNAVAILABLE
        return Verdict.REJECTED

    async def _prune(self) -> None:
        now = self.services.clock.now()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        try:
            async with transaction(self.services.sessions) as session:
                pruned = await prune_updates(session=session, before=now - RETENTION)
        except Exception as exc:
            log.warning("update ledger not pruned: %s", exc)
            return
        if pruned:
            log.info("pruned %s update ledger rows older than %s", pruned, RETENTION)

"""The admin API under /api/v1: bearer tokens, RFC 9457 problems, an OpenAPI 3.1 document.

Every route is declared once with `operation(...)`: the declaration registers the aiohttp
route and describes it in /api/openapi.json, so the document cannot drift from the routes.
Handlers are thin: they read the request, call the same service functions the CLI calls and
return JSON-ready data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.store.tokens import Principal

PROBLEM = "application/problem+json"
Handler = Callable[["Call"], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One API operation: its route, who may call it, and what it takes and gives."""

    method: str
    path: str
    summary: str
    tag: str
    handler: Handler
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    status: int = 200
    owner_only: bool = False
    conflicts: bool = False

    @property
    def writes(self) -> bool:
        """Tell whether the operation changes anything (read-only tokens may not call it)."""
        return self.method != "GET"

    def errors(self) -> list[int]:
        """Return every error status the operation can answer (the document lists them)."""
        found = [401]
        if self.writes or self.owner_only:
            found.append(403)
        if "{" in self.path:
            found.append(404)
        if self.body is not None:
            found += [400, 415]
        if self.conflicts:
            found.append(409)
        if self.body is not None or self.query:
            found.append(422)
        return sorted(found)


OPERATIONS: list[Operation] = []


def operation(
    method: str,
    path: str,
    *,
    summary: str,
    tag: str,
    query: dict[str, dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    status: int = 200,
    owner_only: bool = False,
    conflicts: bool = False,
) -> Callable[[Handler], Handler]:
    """Declare an API operation (route + description)."""

    def register(handler: Handler) -> Handler:
        OPERATIONS.append(
            Operation(
                method=method,
                path=path,
                summary=summary,
                tag=tag,
                handler=handler,
                query=query or {},
                body=body,
                response=response,
                status=status,
                owner_only=owner_only,
                conflicts=conflicts,
            )
        )
        return handler

    return register


class Problem(Exception):
    """An error answered as RFC 9457 problem details."""

    def __init__(self, status: int, slug: str, title: str, detail: str | None = None) -> None:
        super().__init__(detail or title)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail

    def response(self, instance: str) -> web.Response:
        """Return the problem as an HTTP response."""
        body: dict[str, Any] = {
            "type": f"urn:nudge:problem:{self.slug}",
            "title": self.title,
            "status": self.status,
            "instance": instance,
        }
        if self.detail:
            body["detail"] = self.detail
        headers = {"WWW-Authenticate": 'Bearer realm="nudge"'} if self.status == 401 else None
        return web.Response(
            status=self.status,
            text=json.dumps(body, ensure_ascii=False),
            content_type=PROBLEM,
            headers=headers,
        )


def not_found(what: str) -> Problem:
    """Return the 404 problem (also for another shop's records: ids must not leak)."""
    return Problem(404, "not-found", "Not found", what)


def invalid(detail: str) -> Problem:
    """Return the 422 problem for a request that is well-formed but cannot be done."""
    return Problem(422, "invalid", "Invalid request", detail)


def conflict(detail: str) -> Problem:
    """Return the 409 problem: the request is valid, the state it meets refuses it."""
    return Problem(409, "conflict", "Conflicts with the current state", detail)


# ids are BIGINT: any 18 digits fit; a longer number names nothing (and must not reach a query)
MAX_ID = 10**18 - 1
WHOLE = re.compile(r"[0-9]{1,18}")


@dataclass
class Call:
    """What a handler gets: the request, who is calling, the services, the checked shop id."""

    request: web.Request
    principal: Principal
    services: Any
    shop_id: int | None = None
    body: Any = None

    @property
    def sessions(self) -> Any:
        """Return the session factory."""
        return self.services.sessions

    def now(self) -> Any:
        """Return the service clock's now."""
        return self.services.clock.now()

    def path_id(self, name: str) -> int:
        """Return a numeric path parameter, or raise 404 (a non-number names nothing)."""
        raw = self.request.match_info.get(name, "")
        if not WHOLE.fullmatch(raw) or not 1 <= int(raw) <= MAX_ID:
            raise not_found(f"no {name.replace('_id', '')} {raw[:40]!r}")
        return int(raw)

    def query_int(self, name: str, default: int) -> int:
        """Return a whole-number query parameter (its schema was checked), or the default."""
        raw = self.request.query.get(name)
        return default if raw is None else int(raw)

    async def json(self) -> Any:
        """Return the JSON body, or raise 400 (not JSON) / 415 (another media type)."""
        if self.request.content_type not in ("application/json", ""):
            raise Problem(
                415, "unsupported-media-type", "Send JSON", "Content-Type: application/json"
            )
        raw = await self.request.read()
        try:
            return json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise Problem(400, "malformed-json", "The body is not JSON", str(exc)[:200]) from None

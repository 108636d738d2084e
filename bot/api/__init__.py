"""The admin API under /api/v1: bearer tokens, RFC 9457 problems, an OpenAPI 3.1 document.

Every route is declared once with `operation(...)`: the declaration registers the aiohttp
route and describes it in /api/openapi.json, so the document cannot drift from the routes.
Handlers are thin: they read the request, call the same service functions the CLI calls and
return JSON-ready data.
"""

from __future__ import annotations

import json
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

    @property
    def writes(self) -> bool:
        """Tell whether the operation changes anything (read-only tokens may not call it)."""
        return self.method != "GET"


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


@dataclass
class Call:
    """What a handler gets: the request, who is calling, the services, the checked shop id."""

    request: web.Request
    principal: Principal
    services: Any
    shop_id: int | None = None

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
        if not raw.isdigit() or len(raw) > 18 or int(raw) == 0:
            raise not_found(f"no {name.replace('_id', '')} {raw!r}")
        return int(raw)

    def query_int(self, name: str, default: int, low: int, high: int) -> int:
        """Return a whole-number query parameter within bounds, or raise 422."""
        raw = self.request.query.get(name)
        if raw is None:
            return default
        if not raw.strip().lstrip("-").isdigit() or not low <= int(raw) <= high:
            raise invalid(f"{name}: a whole number from {low} to {high}, not {raw!r}")
        return int(raw)

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

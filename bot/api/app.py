"""Mount the admin API on the service's aiohttp app: routes, authentication, problems."""

from __future__ import annotations

import json
import logging
import re
from functools import cache
from typing import Any

from aiohttp import web

from bot.api import OPERATIONS, PROBLEM, Call, Operation, Problem, invalid, not_found
from bot.api.schemas import path_parameter
from bot.api.schemas import problem as body_problem
from bot.db import transaction
from bot.models import Shop
from bot.store.tokens import OWNER, authenticate

log = logging.getLogger(__name__)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _answer(op: Operation, data: Any) -> web.StreamResponse:
    if isinstance(data, web.StreamResponse):
        return data
    if data is None and op.status == 204:
        return web.Response(status=204)
    return web.Response(
        status=op.status,
        text=json.dumps(data, ensure_ascii=False, default=str),
        content_type="application/json",
    )


def _check_query(request: web.Request, name: str, schema: dict[str, Any]) -> None:
    """Refuse a query parameter its schema refuses (422 naming it)."""
    raw = request.query.get(name)
    if raw is None:
        return
    value: Any = raw
    if schema.get("type") == "integer":
        if not re.fullmatch(r"-?[0-9]{1,18}", raw):
            raise invalid(f"{name}: a whole number, not {raw[:40]!r}")
        value = int(raw)
    found = body_problem(value, schema, name)
    if found:
        raise invalid(f"{found[0]}: {found[1]}")


def _route(op: Operation) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        from bot.web.keys import SERVICES

        methods = allowed(request.rel_url.raw_path)
        if op.method not in methods:  # a literal path shadows a template
            raise web.HTTPMethodNotAllowed(op.method, methods)
        services = request.app[SERVICES]
        try:
            token = _bearer(request)
            if token is None:
                raise Problem(
                    401,
                    "unauthorized",
                    "A bearer token is needed",
                    "Authorization: Bearer <token>",
                )
            async with transaction(services.sessions) as session:
                principal = await authenticate(
                    session=session, token=token, now=services.clock.now()
                )
            if principal is None:
                raise Problem(401, "unauthorized", "The token is unknown or revoked")
            if op.owner_only and principal.kind != OWNER:
                raise Problem(403, "forbidden", "This needs the owner's token")
            if op.writes and principal.read_only:
                raise Problem(403, "read-only", "This token may only read")
            call = Call(request=request, principal=principal, services=services)
            if "{shop_id}" in op.path:
                shop_id = call.path_id("shop_id")
                if not principal.may_see(shop_id):
                    raise not_found(f"no shop {shop_id}")
                async with services.sessions() as session:
                    if await session.get(Shop, shop_id) is None:
                        raise not_found(f"no shop {shop_id}")
                call.shop_id = shop_id
            if "name" in request.match_info:  # a name no segment can have names nothing
                name = request.match_info["name"]
                found = body_problem(name, path_parameter("name"), "name")
                if found and op.body is not None:
                    raise invalid(": ".join(found))
                if found:
                    raise not_found(f"no segment named {name[:40]!r}")
            for name, schema in op.query.items():
                _check_query(request, name, schema)
            if op.body is not None:
                call.body = await call.json()
                try:
                    found = body_problem(call.body, op.body)
                except RecursionError:
                    found = ("body", "nested too deeply")
                if found:
                    raise invalid(f"{found[0]}: {found[1]}")
            return _answer(op, await op.handler(call))
        except Problem as problem:
            return problem.response(request.path)

    return handle


@cache
def _documented() -> list[tuple[re.Pattern[str], list[str]]]:
    """Each documented path as a regex with its methods, the most literal paths first."""
    methods: dict[str, list[str]] = {}
    for op in OPERATIONS:
        methods.setdefault(op.path, []).append(op.method)
    return [
        (re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)) + "$"), sorted(found))
        for path, found in sorted(methods.items(), key=lambda item: item[0].count("{"))
    ]


def allowed(raw_path: str) -> list[str]:
    """Return the methods the document gives a request path (a literal path before a template).

    OpenAPI matches `/segments/preview` before `/segments/{name}`: PUT there is a 405, not a
    segment named "preview".
    """
    return next((methods for path, methods in _documented() if path.match(raw_path)), [])


@web.middleware
async def _problems(request: web.Request, handler: Any) -> web.StreamResponse:
    """Answer every API error as problem details, including aiohttp's own 404 and 405."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status, exc.reason)
        response = Problem(exc.status, "http", title, None).response(request.path)
        if exc.status == 405:
            methods = allowed(request.rel_url.raw_path)
            response.headers["Allow"] = ",".join(methods) or exc.headers.get("Allow", "")
        return response
    except Exception:
        log.exception("admin API: %s %s failed", request.method, request.path)
        return Problem(500, "internal", "Something went wrong on our side").response(request.path)


async def openapi_document(request: web.Request) -> web.Response:
    """Serve the OpenAPI 3.1 document of the admin API."""
    from bot.api.openapi import document
    from bot.web.keys import SETTINGS

    return web.json_response(document(request.app[SETTINGS].public_base))


def mount(app: web.Application) -> None:
    """Add the admin API's routes and its error middleware to the app."""
    from bot.api import routes  # noqa: F401  (the operations register on import)

    app.middlewares.append(_problems)
    app.router.add_get("/api/openapi.json", openapi_document)
    for op in OPERATIONS:
        app.router.add_route(op.method, op.path, _route(op))


__all__ = ["PROBLEM", "mount"]

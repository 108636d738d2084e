"""The OpenAPI 3.1 document of the admin API, built from the declared operations."""

from __future__ import annotations

import re
from typing import Any

from bot.api import OPERATIONS, PROBLEM, Operation
from bot.api.schemas import components, path_parameter

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "instance"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": False,
}
ERRORS = {
    400: "The body is not JSON",
    401: "No token, or an unknown or revoked one",
    403: "The token may not do this (read-only, or not the owner's)",
    404: "Not found (also another shop's records: ids do not leak)",
    409: "Valid, but the current state refuses it; `detail` says why",
    415: "The body is not sent as application/json",
    422: "The request cannot be done as it is; `detail` says where and why",
    405: "The path names another operation (a literal path before a template)",
}
UNAUTHORIZED_HEADERS = {
    "WWW-Authenticate": {
        "description": "Bearer realm",
        "required": True,
        "schema": {"type": "string", "pattern": "^Bearer "},
    }
}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    found = []
    for name in re.findall(r"\{(\w+)\}", op.path):
        schema = path_parameter(name)
        found.append({"name": name, "in": "path", "required": True, "schema": schema})
    for name, schema in op.query.items():
        found.append({"name": name, "in": "query", "required": False, "schema": schema})
    return found


def _shadowed(op: Operation) -> bool:
    """Tell whether a literal path of another operation can take this template's place."""
    head, _, last = op.path.rpartition("/")
    return last.startswith("{") and any(
        other.path.rpartition("/")[0] == head and not other.path.endswith("}")
        for other in OPERATIONS
    )


def _responses(op: Operation) -> dict[str, Any]:
    if op.status == 204:
        answer: dict[str, Any] = {"description": "Done, nothing to say"}
    else:
        answer = {
            "description": "Created" if op.status == 201 else "OK",
            "content": {"application/json": {"schema": op.response or {"type": "object"}}},
        }
    responses = {str(op.status): answer}
    errors = op.errors()
    if _shadowed(op):
        errors = sorted([*errors, 405])
    for code in errors:
        responses[str(code)] = {
            "description": ERRORS[code],
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            **({"headers": UNAUTHORIZED_HEADERS} if code == 401 else {}),
        }
    return responses


def document(server: str) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document."""
    from bot.api import routes  # noqa: F401  (the operations register on import)

    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        item: dict[str, Any] = {
            "operationId": op.handler.__name__
            if op.handler.__name__ != "act"
            else op.path.rsplit("/", 1)[-1] + "_campaign",
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": _parameters(op),
            "responses": _responses(op),
        }
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": op.body}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Nudge admin API",
            "version": "1",
            "description": (
                "Shops, customers, codes, segments, campaigns and reports. Authenticate with "
                "`Authorization: Bearer <token>` (`nudge token create --owner` or `--shop ID`). "
                "Errors are RFC 9457 problem details. A request body is checked against its "
                "schema first (422 names the place); a valid one the current state refuses is "
                "a 409."
            ),
        },
        "servers": [{"url": server}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": PROBLEM_SCHEMA, **components()},
        },
        "paths": paths,
    }

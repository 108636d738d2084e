"""The OpenAPI 3.1 document of the admin API, built from the declared operations."""

from __future__ import annotations

import re
from typing import Any

from bot.api import OPERATIONS, PROBLEM

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "required": ["type", "title", "status"],
}
ERRORS = {
    "400": "The body is not JSON",
    "401": "No token, or an unknown or revoked one",
    "403": "The token may not do this (read-only, or not the owner's)",
    "404": "Not found (also another shop's records: ids do not leak)",
    "415": "The body is not JSON",
    "422": "The request cannot be done as it is; `detail` says why",
}


def _parameters(path: str, query: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for name in re.findall(r"\{(\w+)\}", path):
        schema = {"type": "string"} if name == "name" else {"type": "integer", "minimum": 1}
        found.append({"name": name, "in": "path", "required": True, "schema": schema})
    for name, schema in query.items():
        found.append({"name": name, "in": "query", "required": False, "schema": schema})
    return found


def document(server: str) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document."""
    from bot.api import routes  # noqa: F401  (the operations register on import)

    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        answer: dict[str, Any] = {"description": "OK" if op.status != 201 else "Created"}
        if op.status != 204:
            answer["content"] = {"application/json": {"schema": op.response or {"type": "object"}}}
        else:
            answer["description"] = "Done, nothing to say"
        responses = {str(op.status): answer}
        for code, description in ERRORS.items():
            responses[code] = {
                "description": description,
                "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
        item: dict[str, Any] = {
            "operationId": op.handler.__name__
            if op.handler.__name__ != "act"
            else op.path.rsplit("/", 1)[-1] + "_campaign",
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": _parameters(op.path, op.query),
            "responses": responses,
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
                "Errors are RFC 9457 problem details."
            ),
        },
        "servers": [{"url": server}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": PROBLEM_SCHEMA},
        },
        "paths": paths,
    }

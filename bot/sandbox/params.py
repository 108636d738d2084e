"""Request parameters as Telegram reads them: from a query string, JSON, form or multipart body.

Form and multipart values arrive as strings (complex ones JSON-encoded, as aiogram and
python-telegram-bot send them); JSON bodies carry native values. `Params` reads both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.sandbox.errors import ApiError, bad_request

_JSON_ERRORS = {
    "reply_markup": "can't parse reply keyboard markup JSON object",
    "entities": "can't parse entities JSON object",
    "caption_entities": "can't parse entities JSON object",
}


@dataclass
class Upload:
    """A file sent in a multipart body."""

    filename: str | None
    data: bytes


@dataclass
class Params:
    """The parameters of one API call with typed accessors."""

    raw: dict[str, Any]
    files: dict[str, Upload] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        """Return a raw value (None when absent)."""
        return self.raw.get(name)

    def str(self, name: str) -> str | None:
        """Return a string parameter."""
        value = self.raw.get(name)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        raise bad_request(f'field "{name}" must be of type String')

    def int(self, name: str) -> int | None:
        """Return an integer parameter."""
        value = self.raw.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f'field "{name}" must be of type Integer') from None

    def bool(self, name: str) -> bool:
        """Return a boolean parameter (absent means False)."""
        value = self.raw.get(name)
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1", "yes", "on")
        return bool(value)

    def json(self, name: str) -> Any:
        """Return a JSON-serialized parameter, decoded."""
        value = self.raw.get(name)
        if not isinstance(value, str):
            return value
        if value == "":
            return None
        try:
            return json.loads(value)
        except ValueError:
            detail = _JSON_ERRORS.get(name, f"can't parse {name} JSON object")
            raise bad_request(detail) from None

    def chat_id(self, name: str = "chat_id") -> int | str | None:
        """Return a chat identifier: an integer or an @username."""
        value = self.raw.get(name)
        if isinstance(value, str):
            stripped = value.strip()
            if stripped.lstrip("-").isdigit():
                return int(stripped)
            return stripped
        return value


async def read_params(request: web.Request) -> Params:
    """Read the parameters of an API request from its query string and body."""
    raw: dict[str, Any] = dict(request.query) if request.query_string else {}
    files: dict[str, Upload] = {}
    if not request.body_exists:
        return Params(raw, files)
    content_type = request.content_type
    if content_type == "application/json":
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse JSON object") from None
        if not isinstance(body, dict):
            raise ApiError(400, "Bad Request: JSON object expected")
        raw.update(body)
    elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                files[key] = Upload(value.filename, value.file.read())
            else:
                raw[key] = value
    return Params(raw, files)

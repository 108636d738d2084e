"""Service configuration: NUDGE_* environment variables and .env, validated at start."""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

log = logging.getLogger(__name__)

TELEGRAM_API_BASE = "https://api.telegram.org"
SECRET_FILE_NAME = ".nudge-secret"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the setting, never a secret."""


_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/?#@\s]*):[^\s]*@")
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;](?:[a-z_]*pass(?:word|wd)?|[a-z_]*secret|[a-z_]*token|sslkey)=)[^&;#\s]*",
    re.IGNORECASE,
)


def mask_secrets(text: str) -> str:
    """Return text with URL passwords and secret query parameters replaced by ***."""
    text = _URL_USERINFO.sub(r"\g<scheme>\g<user>:***@", text)
    return _SECRET_QUERY.sub(r"\g<key>***", text)


def safe_url(url: str) -> str:
    """Render a database or Redis URL for people: no password, no secret query parameter."""
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparsable: show only the scheme, the rest may be a secret
        return url.partition("://")[0] + "://…"
    return mask_secrets(shown)


def _check_url_shape(value: str, examples: str) -> None:
    """Refuse a URL whose credentials would be misread, without echoing any part of it."""
    scheme, sep, rest = value.partition("://")
    if not sep or not scheme:
        raise ValueError(f"not a URL (use {examples})")
    if rest.split("?", 1)[0].count("@") > 1:
        raise ValueError("the password holds an @ that must be URL-encoded as %40")


class DispatchSettings(BaseModel):
    """Tuning of the outbox dispatcher (NUDGE_DISPATCH__*)."""

    rate_per_second: float = Field(default=25.0, gt=0, le=1000)
    per_chat_per_second: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=200, ge=1, le=5000)
    max_attempts: int = Field(default=5, ge=1)
    poll_interval: float = Field(default=0.5, gt=0)
    # #12: requests out at once over all bots; one request's timeout (a hung one costs its
    # row, which becomes unknown); how many seconds of a bot's sends one claim takes.
    max_in_flight: int = Field(default=256, ge=1, le=4096)
    request_timeout: float = Field(default=10.0, gt=0, le=60)
    claim_seconds: float = Field(default=2.0, gt=0, le=60)


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="NUDGE_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
    )

    database_url: str = "sqlite+aiosqlite:///./nudge.db"
    redis_url: str | None = None
    telegram_api_base: AnyHttpUrl = AnyHttpUrl(TELEGRAM_API_BASE)
    public_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8080")
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    secret_key: SecretStr | None = None
    log_level: str = "INFO"
    telegram_mode: Literal["webhook", "polling", "off"] = "webhook"
    bot_sync_interval: Annotated[float, Field(gt=0, le=300)] = 2.0
    database_busy_timeout: Annotated[float, Field(ge=0, le=3600)] = 30.0
    dispatch: DispatchSettings = DispatchSettings()

    @field_validator("database_url")
    @classmethod
    def _database_url_is_async(cls, value: str) -> str:
        examples = "sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db"
        if not value.startswith("sqlite"):
            _check_url_shape(value, examples)
        try:
            url = make_url(value)
        except (ArgumentError, ValueError):  # the messages quote the URL: say it without it
            raise ValueError(
                f"not a database URL (use {examples}; URL-encode special characters "
                "of the password, e.g. / as %2F)"
            ) from None
        if url.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
            raise ValueError(
                f"driver {url.drivername!r} is not supported; "
                "use sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("not a redis URL (use redis://host:6379/0 or rediss://…)")
        _check_url_shape(value, "redis://host:6379/0")
        return value

    @property
    def is_sqlite(self) -> bool:
        """Tell whether the embedded SQLite default is in use."""
        return self.database_url.startswith("sqlite")

    @property
    def public_base(self) -> str:
        """Return the public URL without a trailing slash."""
        return str(self.public_url).rstrip("/")

    @property
    def telegram_base(self) -> str:
        """Return the Bot API base URL without a trailing slash."""
        return str(self.telegram_api_base).rstrip("/")


def _sqlite_dir(database_url: str) -> Path:
    database = make_url(database_url).database or ""
    if database in ("", ":memory:"):
        return Path.cwd()
    return Path(database).expanduser().resolve().parent


def ensure_secret_key(settings: Settings) -> SecretStr:
    """Return the secret key; on SQLite create it once beside the database and keep it."""
    if settings.secret_key is not None:
        if len(settings.secret_key.get_secret_value()) < 16:
            raise ConfigError("NUDGE_SECRET_KEY: must be at least 16 characters")
        return settings.secret_key
    if not settings.is_sqlite:
        raise ConfigError(
            "NUDGE_SECRET_KEY: required with PostgreSQL (generate one: "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    path = _sqlite_dir(settings.database_url) / SECRET_FILE_NAME
    if path.exists():
        key = path.read_text(encoding="utf-8").strip()
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        path.touch(mode=0o600)
        path.write_text(key + "\n", encoding="utf-8")
        log.warning("NUDGE_SECRET_KEY not set: generated one and kept it in %s", path)
    settings.secret_key = SecretStr(key)
    return settings.secret_key


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    name = "NUDGE_" + "__".join(str(part).upper() for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    given = first.get("input")
    if isinstance(given, str) and len(given) >= 4 and given in message:
        message = message.replace(given, "…")  # the value may be a secret: never echo it
    return mask_secrets(f"{name}: {message}")


_SETTINGS_FIELD = re.compile(r'field "(?P<field>[^"]+)"')


def load_settings(**overrides: object) -> Settings:
    """Read and validate settings, raising ConfigError that names the bad setting."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except SettingsError as exc:  # a nested setting given as malformed JSON
        found = _SETTINGS_FIELD.search(str(exc))
        name = "NUDGE_" + (found.group("field").upper() if found else "SETTINGS")
        raise ConfigError(f"{name}: not valid JSON for a nested setting") from None
    ensure_secret_key(settings)
    return settings

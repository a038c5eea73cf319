"""Server settings: command-line options > `KAIZEN_*` environment variables > defaults.

One frozen dataclass is built once at start and passed down explicitly, so a worker process
started by uvicorn rebuilds exactly the same settings from the environment the parent set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# The embedded default: a SQLite file in the directory `kaizen` runs from.
DEFAULT_DATABASE_URL = "sqlite:///./kaizen.db"

DEFAULT_MAX_BATCH_ITEMS = 1000
# Large enough for a batch that carries a 2 MB prompt twice (messages and prompt_text).
DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """Everything the running server reads from its configuration."""

    database_url: str = DEFAULT_DATABASE_URL
    max_batch_items: int = DEFAULT_MAX_BATCH_ITEMS
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    # Days of traces to keep; None keeps everything. When set, the server prunes once at
    # start and then every 24 hours.
    retention_days: int | None = None


def normalize_database_url(url: str) -> str:
    """Return `url` with the psycopg 3 driver named when a PostgreSQL URL names none.

    SQLAlchemy maps a bare `postgresql://` to psycopg2, which this package does not install.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]

    return url


def resolve_database_url(cli_value: str | None = None) -> str:
    """Pick the database URL: `--db`, then `KAIZEN_DATABASE_URL`, then ./kaizen.db."""
    url = cli_value or os.environ.get("KAIZEN_DATABASE_URL") or DEFAULT_DATABASE_URL
    return normalize_database_url(url)


def _int_from_env(name: str, default: int | None) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default

    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer; set it to a whole number such as {default or 30}") from None

    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be a positive integer")

    return value


def settings_from_env(database_url: str | None = None, retention_days: int | None = None) -> Settings:
    """Build `Settings` from explicit values, falling back to the environment."""
    return Settings(
        database_url=resolve_database_url(database_url),
        max_batch_items=_int_from_env("KAIZEN_MAX_BATCH_ITEMS", DEFAULT_MAX_BATCH_ITEMS),
        max_request_bytes=_int_from_env("KAIZEN_MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES),
        retention_days=retention_days if retention_days is not None else _int_from_env("KAIZEN_RETENTION_DAYS", None),
    )

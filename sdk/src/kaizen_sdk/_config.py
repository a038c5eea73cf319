"""Exporter settings: explicit keywords, then `KAIZEN_*` environment variables, then defaults.

`resolve_settings()` reads the environment once, when `instrument()` runs, so the rest of
the SDK works from one frozen `Settings` value and tests can build one directly. Every setting except
`redact` (a callable) has an environment variable named `KAIZEN_` plus the keyword in upper
case. Invalid values raise `ValueError` at `instrument()` time, naming the value and the
expected range, because a typo in a setting should fail loudly once rather than make tracing
silently misbehave later.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from typing import Any, Callable

DEFAULT_BASE_URL = "http://localhost:8000"
ENV_PREFIX = "KAIZEN_"

Redact = Callable[[dict], "dict | None"]


@dataclass(frozen=True)
class Settings:
    """Everything the exporter and the tracer need to know about where and how to send traces.

    Sizes are in items or bytes, durations in seconds.
    """

    # The API key is kept out of repr() so a logged Settings never leaks it.
    api_key: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    # Traces and scores waiting in memory; past this, new ones are dropped and counted.
    max_queue_size: int = 10_000
    # One POST carries at most this many items and about this many bytes of JSON. A single
    # item larger than max_batch_bytes is still sent, alone. An httpx request costs the
    # exporter's thread about 0.5 ms of CPU whatever its size, and that thread shares the GIL
    # with the application. With 500 items that is about 1 µs per trace. The CT server
    # accepts 1000 items per request by default.
    max_batch_size: int = 500
    max_batch_bytes: int = 1_048_576
    # How long the first queued item may wait for a batch to fill before it is sent anyway.
    flush_interval: float = 1.0
    # Timeout of one HTTP request to the CT server (connect, read and write each).
    request_timeout: float = 10.0
    # Upper bound on the flush at interpreter exit; a dead server never delays exit longer.
    exit_timeout: float = 2.0
    # Retries of one batch after a transient failure of a server that was reached (read
    # timeout, dropped connection, 408, 429, 5xx) before the batch is dropped. While the
    # server cannot be connected to at all, retries go on without limit.
    max_retries: int = 10
    # Directory of the on-disk SQLite spool; None disables the spool.
    spool_dir: str | None = None
    spool_max_bytes: int = 104_857_600
    # Fraction of calls that are traced, decided per call before any work is done.
    sample_rate: float = 1.0
    # Called with each trace dict before it leaves the process; returns the dict to send
    # (possibly rewritten) or None to drop the trace.
    redact: Redact | None = None
    # Maximum length in characters of any string in a trace or score. Longer strings are cut
    # to it and end in a marker that records the original length.
    max_field_chars: int = 100_000

    @property
    def enabled(self) -> bool:
        """Whether traces can be sent: True when an API key is set."""
        return bool(self.api_key)


# The keywords instrument() accepts and forwards to resolve_settings(), in declaration order.
EXPORTER_KEYWORDS: tuple[str, ...] = tuple(item.name for item in fields(Settings))

# Environment variable of each setting; `redact` is a callable and has none.
ENV_VARS: dict[str, str] = {name: ENV_PREFIX + name.upper() for name in EXPORTER_KEYWORDS if name != "redact"}


def _source(name: str, from_env: bool) -> str:
    return f"environment variable {ENV_VARS[name]}=" if from_env else f"setting {name}="


def _parse_int(name: str, raw: Any, from_env: bool, minimum: int, unit: str) -> int:
    message = f"invalid {_source(name, from_env)}{raw!r}: expected a whole number of {unit} >= {minimum}"
    if isinstance(raw, bool):
        raise ValueError(message)

    value = raw
    if isinstance(raw, str):
        try:
            value = int(raw.strip().replace("_", ""))
        except ValueError:
            raise ValueError(message) from None

    if not isinstance(value, int) or value < minimum:
        raise ValueError(message)

    return value


def _parse_float(name: str, raw: Any, from_env: bool, minimum: float, maximum: float, unit: str) -> float:
    amount = f"a number of {unit}" if unit else "a number"
    message = f"invalid {_source(name, from_env)}{raw!r}: expected {amount} from {minimum:g} to {maximum:g}"
    if isinstance(raw, bool):
        raise ValueError(message)

    value = raw
    if isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(message) from None

    if not isinstance(value, (int, float)) or math.isnan(value) or not minimum <= value <= maximum:
        raise ValueError(message)

    return float(value)


def _parse_spool_dir(text: str, from_env: bool) -> str:
    """Return the spool folder as an absolute path, created if missing; raise if it cannot be used.

    Checked when the exporter is configured, so a typo fails at instrument() instead of at
    the first outage, when the traces it was meant to keep are lost.
    """
    path = os.path.abspath(os.path.expanduser(text))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"invalid {_source('spool_dir', from_env)}{text!r}: cannot create the folder ({exc.strerror}); choose a writable folder") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"invalid {_source('spool_dir', from_env)}{text!r}: the folder is not writable; choose a writable folder")

    return path


def _parse_base_url(raw: Any, from_env: bool) -> str:
    where = _source("base_url", from_env)
    if not isinstance(raw, str) or not raw.strip().lower().startswith(("http://", "https://")):
        raise ValueError(
            f"invalid {where}{raw!r}: expected the CT server's URL starting with http:// or https://, "
            f"e.g. {DEFAULT_BASE_URL!r}"
        )

    return raw.strip().rstrip("/")


def _parse_optional_text(name: str, raw: Any, from_env: bool) -> str | None:
    if raw is None:
        return None

    if not isinstance(raw, (str, os.PathLike)):
        raise ValueError(f"invalid {_source(name, from_env)}{raw!r}: expected a string or None")

    text = os.fspath(raw).strip()
    return text or None


def _parse(name: str, raw: Any, from_env: bool) -> Any:
    if name == "api_key":
        return _parse_optional_text(name, raw, from_env)
    if name == "base_url":
        return _parse_base_url(raw, from_env)
    if name == "spool_dir":
        text = _parse_optional_text(name, raw, from_env)
        return _parse_spool_dir(text, from_env) if text else None
    if name == "max_queue_size":
        return _parse_int(name, raw, from_env, 1, "items")
    if name == "max_batch_size":
        return _parse_int(name, raw, from_env, 1, "items")
    if name == "max_batch_bytes":
        return _parse_int(name, raw, from_env, 1024, "bytes")
    if name == "max_retries":
        return _parse_int(name, raw, from_env, 0, "retries")
    if name == "spool_max_bytes":
        return _parse_int(name, raw, from_env, 65_536, "bytes")
    if name == "max_field_chars":
        return _parse_int(name, raw, from_env, 256, "characters")
    if name == "flush_interval":
        return _parse_float(name, raw, from_env, 0.001, 3600.0, "seconds")
    if name == "request_timeout":
        return _parse_float(name, raw, from_env, 0.001, 3600.0, "seconds")
    if name == "exit_timeout":
        return _parse_float(name, raw, from_env, 0.0, 3600.0, "seconds")
    if name == "sample_rate":
        return _parse_float(name, raw, from_env, 0.0, 1.0, "")
    if name == "redact":
        if raw is not None and not callable(raw):
            raise ValueError(
                f"invalid setting redact={raw!r}: expected a function that takes a trace dict and returns "
                "a dict or None"
            )
        return raw

    raise AssertionError(f"setting {name!r} has no parser")


def resolve_base_url(base_url: str | None = None) -> str:
    """Return `base_url`, else `KAIZEN_BASE_URL`, else the default, validated and without a trailing slash."""
    if base_url is not None:
        return _parse_base_url(base_url, from_env=False)

    env_value = os.environ.get(ENV_VARS["base_url"], "").strip()
    if env_value:
        return _parse_base_url(env_value, from_env=True)

    return DEFAULT_BASE_URL


def resolve_settings(**keywords: Any) -> Settings:
    """Build `Settings`: keywords that are not None win, then `KAIZEN_*` variables, then defaults.

    Raises `TypeError` for an unknown keyword and `ValueError` for an invalid value, naming
    the keyword or environment variable, the value and what is expected.
    """
    unknown = sorted(set(keywords) - set(EXPORTER_KEYWORDS))
    if unknown:
        raise TypeError(
            f"unknown setting(s) {', '.join(unknown)}; accepted settings are {', '.join(EXPORTER_KEYWORDS)}"
        )

    values: dict[str, Any] = {}
    for name in EXPORTER_KEYWORDS:
        raw = keywords.get(name)
        if raw is not None:
            values[name] = _parse(name, raw, from_env=False)
            continue

        env_name = ENV_VARS.get(name)
        env_value = os.environ.get(env_name) if env_name else None
        # An empty variable counts as unset, as in most shells' `VAR= cmd` idiom.
        if env_value is not None and env_value.strip() != "":
            values[name] = _parse(name, env_value, from_env=True)

    return Settings(**values)

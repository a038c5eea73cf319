"""Validation of what clients send: traces, scores and the simple score request.

Each ingest item is validated on its own, so one bad item is rejected with its reason while
the rest of the batch is stored. Numbers and booleans are strict (no "12" for 12, no true for
1) because a silently coerced value is wrong data in a dashboard later.

Text is stored as sent, with two exceptions that no database column can hold: NUL characters
(PostgreSQL rejects them) and lone UTF-16 surrogates (not encodable as UTF-8). Both become
U+FFFD, and the item's result lists a warning that names the field, so nothing is dropped
silently and nothing fails with a 5xx. Unknown fields are ignored with a warning, so a newer
SDK that sends an extra field still gets its traces stored.

Timestamps: a naive timestamp is taken as UTC; an aware one is converted to UTC. Both are
stored as naive UTC.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_LATENCY_MS = 86_400_000.0  # 24 hours: no single LLM call legitimately takes longer
MAX_TOKENS = 100_000_000
MIN_TIMESTAMP = datetime(1970, 1, 1)
MAX_TIMESTAMP = datetime(2200, 1, 1)
MAX_TASK_CHARS = 1000
MAX_SHORT_TEXT_CHARS = 200
MAX_JSON_DEPTH = 64
TIMESTAMP_EXAMPLE = "2026-03-01T12:34:56.789Z"

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_CANONICAL_UUID = re.compile("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

NonNegativeTokens = Annotated[int, Field(strict=True, ge=0, le=MAX_TOKENS)]
ScoreValue = Annotated[float, Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False)]
ShortText = Annotated[str, Field(strict=True, max_length=MAX_SHORT_TEXT_CHARS)]


def to_utc_naive(value: datetime) -> datetime:
    """Return `value` as a naive datetime in UTC; a naive input is taken to be UTC already."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)

    if not MIN_TIMESTAMP <= value < MAX_TIMESTAMP:
        raise ValueError(f"timestamp {value.isoformat()} is outside {MIN_TIMESTAMP.year}..{MAX_TIMESTAMP.year - 1}")

    return value


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def normalize_uuid(value: str) -> str:
    """Return the canonical lowercase form of a UUID string, or raise ValueError."""
    # The SDK sends ids in this form already, and the match costs a fraction of uuid.UUID().
    if type(value) is str and _CANONICAL_UUID.fullmatch(value) is not None:
        return value

    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"{value!r} is not a UUID; expected a form like 123e4567-e89b-12d3-a456-426614174000") from None


def _clean_string(value: str, path: str, warnings: dict[str, int]) -> str:
    if _UNSTORABLE.search(value) is None:
        return value

    cleaned, count = _UNSTORABLE.subn("\ufffd", value)
    warnings[path] = warnings.get(path, 0) + count
    return cleaned


class UnstorableValue(ValueError):
    """A JSON value no database can store as sent: nested too deeply, or a non-finite number."""


def clean_value(value: Any, path: str, warnings: dict[str, int], depth: int = 0) -> Any:
    """Replace NUL characters and lone surrogates in every string inside `value` (keys too).

    Raises UnstorableValue for nesting deeper than MAX_JSON_DEPTH and for infinite numbers
    (JSON such as 1e999 parses to infinity, which JSON columns cannot store).
    """
    if isinstance(value, str):
        return _clean_string(value, path, warnings)

    if isinstance(value, float) and not math.isfinite(value):
        raise UnstorableValue(f"field '{path}' contains the number {value!r}; send finite numbers only")

    if depth >= MAX_JSON_DEPTH and isinstance(value, (list, dict)):
        raise UnstorableValue(f"field '{path}' is nested more than {MAX_JSON_DEPTH} levels deep; flatten it")

    if isinstance(value, list):
        return [clean_value(item, path, warnings, depth + 1) for item in value]

    if isinstance(value, dict):
        return {
            _clean_string(str(key), path, warnings): clean_value(item, path, warnings, depth + 1)
            for key, item in value.items()
        }

    return value


def check_structure(value: Any, path: str, depth: int = 0) -> None:
    """Raise UnstorableValue where `clean_value` would, without touching strings.

    For request bodies that contain no NUL or surrogate escape at all, this is the only check
    needed, and it visits containers and numbers only.
    """
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnstorableValue(f"field '{path}' contains the number {value!r}; send finite numbers only")
        return

    if not isinstance(value, (list, dict)):
        return

    if depth >= MAX_JSON_DEPTH:
        raise UnstorableValue(f"field '{path}' is nested more than {MAX_JSON_DEPTH} levels deep; flatten it")

    for item in value.values() if isinstance(value, dict) else value:
        kind = type(item)
        if kind is float:
            if not math.isfinite(item):
                raise UnstorableValue(f"field '{path}' contains the number {item!r}; send finite numbers only")
        elif kind is dict or kind is list:
            check_structure(item, path, depth + 1)


def cleaning_warnings(counts: dict[str, int]) -> list[str]:
    return [
        f"field '{path}': {count} NUL character(s) or lone surrogate(s) replaced by U+FFFD (they cannot be stored)"
        for path, count in counts.items()
    ]


class _Item(BaseModel):
    model_config = ConfigDict(extra="allow")

    def unknown_field_warnings(self) -> list[str]:
        return [f"unknown field '{name}' ignored" for name in sorted(self.model_extra or {})]


class TraceIn(_Item):
    """One trace of an ingest batch, in the SDK's wire format."""

    id: Annotated[str, Field(strict=True)]
    task: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_TASK_CHARS)]
    messages: list[dict[str, Any]] = Field(default_factory=list)
    prompt_text: Annotated[str, Field(strict=True)] = ""
    response_text: Annotated[str, Field(strict=True)] | None = None
    response: dict[str, Any] | None = None
    model: Annotated[str, Field(strict=True, max_length=500)] | None = None
    prompt_tokens: NonNegativeTokens | None = None
    completion_tokens: NonNegativeTokens | None = None
    total_tokens: NonNegativeTokens | None = None
    latency_ms: Annotated[float, Field(strict=True, ge=0.0, le=MAX_LATENCY_MS, allow_inf_nan=False)]
    started_at: datetime
    error: Annotated[str, Field(strict=True)] | None = None
    incomplete: Annotated[bool, Field(strict=True)] = False
    source_variable: Annotated[str, Field(strict=True, max_length=MAX_TASK_CHARS)] | None = None
    source_file: Annotated[str, Field(strict=True)] | None = None
    source_line: Annotated[int, Field(strict=True, ge=0, le=100_000_000)] | None = None
    detection_rule: Annotated[str, Field(strict=True, max_length=100)] | None = None
    inputs: dict[str, Any] | None = None
    template: Annotated[str, Field(strict=True)] | None = None
    library: Annotated[str, Field(strict=True, max_length=100)] | None = None
    parameters: dict[str, Any] | None = None

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        return normalize_uuid(value)

    @field_validator("started_at")
    @classmethod
    def _check_started_at(cls, value: datetime) -> datetime:
        return to_utc_naive(value)


class ScoreIn(_Item):
    """One score of an ingest batch; it may name a trace that has not arrived yet."""

    id: Annotated[str, Field(strict=True)]
    trace_id: Annotated[str, Field(strict=True)]
    score: ScoreValue
    scored_by: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_SHORT_TEXT_CHARS)]
    name: ShortText | None = None
    comment: Annotated[str, Field(strict=True, max_length=100_000)] | None = None
    created_at: datetime | None = None

    @field_validator("id", "trace_id")
    @classmethod
    def _check_ids(cls, value: str) -> str:
        return normalize_uuid(value)

    @field_validator("created_at")
    @classmethod
    def _check_created_at(cls, value: datetime | None) -> datetime | None:
        return None if value is None else to_utc_naive(value)


class ScoreRequest(BaseModel):
    """The body of `POST /api/v1/traces/{id}/score`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"score": 0.8, "scored_by": "alice", "name": "helpfulness", "comment": "good summary"}]},
    )

    score: ScoreValue = Field(description="Score in [0, 1].")
    scored_by: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_SHORT_TEXT_CHARS)] = Field(
        default="api", description="Who or what gave the score, e.g. a user name, `sdk` or an evaluator name."
    )
    name: ShortText | None = Field(default=None, description="Optional name of what is scored, e.g. `helpfulness`.")
    comment: Annotated[str, Field(strict=True, max_length=100_000)] | None = None
    id: Annotated[str, Field(strict=True)] | None = Field(
        default=None, description="Optional client score id (UUID); sending the same id again stores the score once."
    )
    created_at: datetime | None = Field(default=None, description="When the score was given; default now. Naive means UTC.")

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str | None) -> str | None:
        return None if value is None else normalize_uuid(value)

    @field_validator("created_at")
    @classmethod
    def _check_created_at(cls, value: datetime | None) -> datetime | None:
        return None if value is None else to_utc_naive(value)


def describe_validation_error(exc: ValidationError) -> str:
    """Turn a pydantic error into one line that names each bad field and what it expected."""
    parts = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"]) or "item"
        message = error["msg"]
        if error["type"] == "missing":
            parts.append(f"field '{location}' is missing")
            continue

        shown = repr(error.get("input"))
        if len(shown) > 80:
            shown = shown[:77] + "..."
        parts.append(f"field '{location}' = {shown}: {with_expected_form(error['type'], message)}")

    return "; ".join(parts)


def with_expected_form(error_type: str, message: str) -> str:
    """Return a pydantic error message, with the expected form added to one about a timestamp.

    pydantic's message describes what is wrong with the text, not the form it expects.
    """
    if error_type.startswith(("datetime", "date_")):
        return f"{message}; send an ISO 8601 timestamp such as {TIMESTAMP_EXAMPLE}"

    return message

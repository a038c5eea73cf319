"""Checks shared by the endpoints for query and path values FastAPI cannot express."""

from __future__ import annotations

from datetime import datetime

from kaizen_server.api.errors import Problem
from kaizen_server.wire import to_utc_naive


def check_text(name: str, value: str | None) -> str | None:
    """Reject a NUL character, which no database text column can compare against."""
    if value is not None and "\x00" in value:
        raise Problem(422, f"query field '{name}' contains a NUL character (%00); remove it")

    return value


def check_time(name: str, value: datetime | None) -> datetime | None:
    """Convert a query timestamp to naive UTC (naive input is UTC) or reject it."""
    if value is None:
        return None

    try:
        return to_utc_naive(value)
    except ValueError as exc:
        raise Problem(422, f"query field '{name}': {exc}") from None


def check_range(low_name: str, low, high_name: str, high) -> None:
    if low is not None and high is not None and low > high:
        raise Problem(422, f"query field '{low_name}' = {low!r} is greater than '{high_name}' = {high!r}; swap them")

"""The time windows the pages offer (24 h, 7 d, 30 d, all) and the steps their charts use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from kaizen_server.store import Window

DEFAULT_WINDOW = "7d"


@dataclass(frozen=True)
class WindowChoice:
    key: str
    label: str
    length: timedelta | None  # None: all time
    # The step of sparklines and of the task page's time series.
    sparkline_step: timedelta
    interval: str  # "hour" or "day", for the store's time series


CHOICES = {
    choice.key: choice
    for choice in (
        WindowChoice("24h", "24 hours", timedelta(hours=24), timedelta(hours=1), "hour"),
        WindowChoice("7d", "7 days", timedelta(days=7), timedelta(hours=6), "hour"),
        WindowChoice("30d", "30 days", timedelta(days=30), timedelta(days=1), "day"),
        WindowChoice("all", "all time", None, timedelta(days=1), "day"),
    )
}


def choose(key: str | None) -> WindowChoice:
    """Return the window named `key`, or the default one for a missing or unknown key."""
    return CHOICES.get(key or "", CHOICES[DEFAULT_WINDOW])


def since_of(choice: WindowChoice, now: datetime) -> datetime | None:
    return None if choice.length is None else now - choice.length


def store_window(choice: WindowChoice, now: datetime) -> Window:
    return Window.aligned(since_of(choice, now), None)

"""Task figures, prompt-version figures and time series, read from the rollups.

Each request runs a fixed number of GROUP BY statements over the rollup and histogram rows,
whose number grows with days (or hours) x tasks x prompt versions, not with traces. Whole UTC
days of a window read the daily rows and the partial days at its edges the hourly rows.
Windows have whole-hour resolution: `since` is rounded down and `until` up to the hour, and
the rounded window is returned with the figures.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select, union_all

from kaizen_server.store.queries import iso
from kaizen_server.store.rollups import day_of, hour_of, percentile
from kaizen_server.store.schema import (
    latency_histograms,
    latency_histograms_daily,
    prompt_versions,
    task_rollups,
    task_rollups_daily,
)

@dataclass(frozen=True)
class Window:
    """A time window in naive UTC, aligned to whole hours; None leaves that side open."""

    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def aligned(cls, since: datetime | None, until: datetime | None) -> "Window":
        if until is not None and hour_of(until) != until:
            until = hour_of(until) + timedelta(hours=1)

        return cls(since=hour_of(since) if since is not None else None, until=until)

    def as_dict(self) -> dict:
        return {"since": iso(self.since), "until": iso(self.until)}


_SUMS = (
    ("trace_count", "trace_count"),
    ("error_count", "error_count"),
    ("scored_count", "scored_count"),
    ("score_sum", "score_sum"),
    ("latency_sum", "latency_sum"),
    ("prompt_tokens", "prompt_tokens_sum"),
    ("completion_tokens", "completion_tokens_sum"),
    ("total_tokens", "total_tokens_sum"),
)
_HOURLY = (task_rollups, latency_histograms)
_DAILY = (task_rollups_daily, latency_histograms_daily)


def _ceil_day(moment: datetime) -> datetime:
    day = day_of(moment)
    return day if day == moment else day + timedelta(days=1)


def _pieces(window: Window) -> list[tuple[tuple, datetime | None, datetime | None]]:
    """Split a window into (tables, since, until) pieces: whole UTC days read daily rows, the
    partial days at either edge read hourly rows."""
    if window.since is None and window.until is None:
        return [(_DAILY, None, None)]

    first_day = _ceil_day(window.since) if window.since is not None else None
    last_day = day_of(window.until) if window.until is not None else None
    if first_day is not None and last_day is not None and first_day >= last_day:
        return [(_HOURLY, window.since, window.until)]

    pieces = [(_DAILY, first_day, last_day)]
    if window.since is not None and window.since < first_day:
        pieces.append((_HOURLY, window.since, first_day))
    if window.until is not None and last_day < window.until:
        pieces.append((_HOURLY, last_day, window.until))

    return pieces


def _source(pieces, which: int, project_id: int, task: str | None, columns: list[str]):
    """Return one subquery over the rollup (`which`=0) or histogram (1) rows of every piece."""
    selects = []
    for tables, since, until in pieces:
        table = tables[which]
        conditions = [table.c.project_id == project_id]
        if task is not None:
            conditions.append(table.c.task == task)
        if since is not None:
            conditions.append(table.c.bucket_start >= since)
        if until is not None:
            conditions.append(table.c.bucket_start < until)
        selects.append(select(*(table.c[name] for name in columns)).where(*conditions))

    combined = selects[0] if len(selects) == 1 else union_all(*selects)
    return combined.subquery("source")


_ROLLUP_COLUMNS = ["task", "prompt_version_id", "bucket_start", *(column for _, column in _SUMS),
                   "latency_min", "latency_max", "first_seen", "last_seen"]
_HISTOGRAM_COLUMNS = ["task", "prompt_version_id", "bucket_start", "bin", "count"]


def _sum_columns(source):
    return [func.sum(source.c[column]).label(name) for name, column in _SUMS] + [
        func.min(source.c.latency_min).label("latency_min"),
        func.max(source.c.latency_max).label("latency_max"),
        func.min(source.c.first_seen).label("first_seen"),
        func.max(source.c.last_seen).label("last_seen"),
    ]


class _Accumulator:
    """Sums of rollup rows plus a merged latency histogram, turned into figures at the end."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.first_seen: datetime | None = None
        self.last_seen: datetime | None = None
        self.histogram: dict[int, int] = defaultdict(int)
        self.latency_min = math.inf
        self.latency_max = 0.0

    def add_row(self, row) -> None:
        for name, _ in _SUMS:
            self.sums[name] += float(getattr(row, name) or 0)
        if row.latency_min is not None:
            self.latency_min = min(self.latency_min, row.latency_min)
            self.latency_max = max(self.latency_max, row.latency_max)
        if row.first_seen is not None:
            self.first_seen = row.first_seen if self.first_seen is None else min(self.first_seen, row.first_seen)
        if row.last_seen is not None:
            self.last_seen = row.last_seen if self.last_seen is None else max(self.last_seen, row.last_seen)

    def figures(self) -> dict:
        count = int(self.sums["trace_count"])
        scored = int(self.sums["scored_count"])
        return {
            "trace_count": count,
            "scored_count": scored,
            "mean_score": round(self.sums["score_sum"] / scored, 6) if scored else None,
            "error_count": int(self.sums["error_count"]),
            "error_rate": round(self.sums["error_count"] / count, 6) if count else None,
            "mean_latency_ms": round(self.sums["latency_sum"] / count, 3) if count else None,
            "p50_latency_ms": percentile(self.histogram, 0.50, self.latency_min, self.latency_max),
            "p95_latency_ms": percentile(self.histogram, 0.95, self.latency_min, self.latency_max),
            "prompt_tokens": int(self.sums["prompt_tokens"]),
            "completion_tokens": int(self.sums["completion_tokens"]),
            "total_tokens": int(self.sums["total_tokens"]),
            "first_seen": iso(self.first_seen),
            "last_seen": iso(self.last_seen),
        }


def list_tasks(connection: Connection, project_id: int, window: Window) -> list[dict]:
    """Return the figures of every task with traces in the window, by task name (two statements)."""
    pieces = _pieces(window)
    rollups = _source(pieces, 0, project_id, None, _ROLLUP_COLUMNS)
    rows = connection.execute(
        select(
            rollups.c.task,
            *_sum_columns(rollups),
            func.count(func.distinct(func.nullif(rollups.c.prompt_version_id, 0))).label("prompt_version_count"),
        )
        .group_by(rollups.c.task)
        .order_by(rollups.c.task)
    ).all()
    histograms = _source(pieces, 1, project_id, None, _HISTOGRAM_COLUMNS)
    histogram_rows = connection.execute(
        select(histograms.c.task, histograms.c.bin, func.sum(histograms.c["count"]).label("n"))
        .group_by(histograms.c.task, histograms.c.bin)
    )
    accumulators: dict[str, _Accumulator] = {}
    for row in rows:
        accumulator = accumulators[row.task] = _Accumulator()
        accumulator.add_row(row)
    for row in histogram_rows:
        if row.task in accumulators:
            accumulators[row.task].histogram[row.bin] += int(row.n)

    return [
        {"task": row.task, **accumulators[row.task].figures(), "prompt_version_count": int(row.prompt_version_count)}
        for row in rows
    ]


def task_detail(connection: Connection, project_id: int, task: str, window: Window) -> dict | None:
    """Return a task's figures and the same figures per prompt version; None for an unknown task.

    Four statements: rollups by version, histograms by version, the versions, and (only when
    the window is empty) whether the task exists at all.
    """
    pieces = _pieces(window)
    rollups = _source(pieces, 0, project_id, task, _ROLLUP_COLUMNS)
    rows = connection.execute(select(rollups.c.prompt_version_id, *_sum_columns(rollups)).group_by(rollups.c.prompt_version_id)).all()
    if not rows:
        exists = connection.execute(
            select(task_rollups_daily.c.task)
            .where(task_rollups_daily.c.project_id == project_id, task_rollups_daily.c.task == task)
            .limit(1)
        ).first()
        if exists is None:
            return None

    histograms = _source(pieces, 1, project_id, task, _HISTOGRAM_COLUMNS)
    histogram_rows = connection.execute(
        select(histograms.c.prompt_version_id, histograms.c.bin, func.sum(histograms.c["count"]).label("n"))
        .group_by(histograms.c.prompt_version_id, histograms.c.bin)
    ).all()
    version_ids = sorted(row.prompt_version_id for row in rows if row.prompt_version_id)
    versions = {}
    if version_ids:
        versions = {
            row.id: row
            for row in connection.execute(
                select(prompt_versions).where(prompt_versions.c.id.in_(version_ids), prompt_versions.c.project_id == project_id)
            )
        }

    total = _Accumulator()
    per_version: dict[int, _Accumulator] = {}
    for row in rows:
        total.add_row(row)
        per_version.setdefault(row.prompt_version_id, _Accumulator()).add_row(row)
    for row in histogram_rows:
        total.histogram[row.bin] += int(row.n)
        if row.prompt_version_id in per_version:
            per_version[row.prompt_version_id].histogram[row.bin] += int(row.n)

    version_items = []
    for version_id, accumulator in per_version.items():
        version = versions.get(version_id)
        version_items.append(
            {
                "prompt_version": version.template_hash if version is not None else None,
                "template": version.template if version is not None else None,
                "created_at": iso(version.first_seen) if version is not None else None,
                **accumulator.figures(),
            }
        )
    # Oldest version first; traces without a template (no version) come last.
    version_items.sort(key=lambda item: (item["created_at"] is None, item["created_at"] or "", item["prompt_version"] or ""))
    return {"task": task, **total.figures(), "prompt_versions": version_items, "window": window.as_dict()}


def timeseries(connection: Connection, project_id: int, task: str | None, interval: str, window: Window) -> list[dict]:
    """Return one point per hour or UTC day with traces: count, mean score, latency (two statements).

    Daily points read the daily rows, so a window for `day` is widened to whole days.
    """
    if interval == "hour":
        pieces = [(_HOURLY, window.since, window.until)]
    else:
        pieces = [(_DAILY, day_of(window.since) if window.since else None, _ceil_day(window.until) if window.until else None)]
    rollups = _source(pieces, 0, project_id, task, _ROLLUP_COLUMNS)
    rows = connection.execute(select(rollups.c.bucket_start, *_sum_columns(rollups)).group_by(rollups.c.bucket_start)).all()
    histograms = _source(pieces, 1, project_id, task, _HISTOGRAM_COLUMNS)
    histogram_rows = connection.execute(
        select(histograms.c.bucket_start, histograms.c.bin, func.sum(histograms.c["count"]).label("n"))
        .group_by(histograms.c.bucket_start, histograms.c.bin)
    )

    points: dict[datetime, _Accumulator] = {}
    for row in rows:
        points.setdefault(row.bucket_start, _Accumulator()).add_row(row)
    for row in histogram_rows:
        accumulator = points.get(row.bucket_start)
        if accumulator is not None:
            accumulator.histogram[row.bin] += int(row.n)

    series = []
    for start in sorted(points):
        figures = points[start].figures()
        series.append(
            {
                "start": iso(start),
                "trace_count": figures["trace_count"],
                "scored_count": figures["scored_count"],
                "mean_score": figures["mean_score"],
                "error_count": figures["error_count"],
                "mean_latency_ms": figures["mean_latency_ms"],
                "p50_latency_ms": figures["p50_latency_ms"],
                "p95_latency_ms": figures["p95_latency_ms"],
                "total_tokens": figures["total_tokens"],
            }
        )

    return series

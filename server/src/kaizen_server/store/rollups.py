"""Hourly and daily rollups per (task, prompt version): sums, counts and a latency histogram.

Task lists, prompt-version figures and time series read these rows instead of the traces,
so their cost depends on the number of hours and tasks in the window, not on the number of
traces. Ingest adds to them with additive upserts (`count = count + excluded.count`), which
are safe when several server processes write at once.

Latency percentiles come from a log-scale histogram. Bin `i` counts latencies in
(GAMMA**(i-1), GAMMA**i] ms, and a percentile reports the bin's midpoint 2*GAMMA**i/(GAMMA+1),
so p50 and p95 are within (GAMMA-1)/(GAMMA+1), about 2.4%, of the exact value. Latencies
below MIN_LATENCY_MS share bin ZERO_BIN and report 0.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable

from sqlalchemy import Connection, Table, bindparam, cast, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY

from kaizen_server.store.schema import latency_histograms, latency_histograms_daily, task_rollups, task_rollups_daily

GAMMA = 1.05
MIN_LATENCY_MS = 0.01
ZERO_BIN = -10_000
_LOG_GAMMA = math.log(GAMMA)


def latency_bin(latency_ms: float) -> int:
    if latency_ms < MIN_LATENCY_MS:
        return ZERO_BIN

    return math.ceil(math.log(latency_ms) / _LOG_GAMMA - 1e-9)


def bin_value(index: int) -> float:
    """Return the latency that bin `index` reports: the midpoint of its range."""
    if index == ZERO_BIN:
        return 0.0

    return 2 * GAMMA**index / (GAMMA + 1)


def percentile(histogram: dict[int, int], quantile: float, low: float = 0.0, high: float = math.inf) -> float | None:
    """Return the `quantile` (0..1) of a latency histogram, or None when it is empty.

    `low` and `high` are the smallest and largest latency seen. The estimate is clamped to
    them, so it is exact when every latency falls in one bin.
    """
    total = sum(histogram.values())
    if total == 0:
        return None

    rank = max(1, math.ceil(quantile * total))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return round(min(max(bin_value(index), low), high), 3)

    return round(min(max(bin_value(max(histogram)), low), high), 3)


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def day_of(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class RollupDelta:
    """Sums that a set of new traces adds to one (task, prompt version, hour) rollup row."""

    trace_count: int = 0
    error_count: int = 0
    scored_count: int = 0
    score_sum: float = 0.0
    latency_sum: float = 0.0
    latency_min: float = math.inf
    latency_max: float = 0.0
    prompt_tokens_sum: int = 0
    completion_tokens_sum: int = 0
    total_tokens_sum: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    histogram: dict[int, int] = field(default_factory=lambda: defaultdict(int))


RollupKey = tuple[str, int, datetime]  # (task, prompt_version_id or 0, hour)


def deltas_for_traces(rows: Iterable[dict]) -> dict[RollupKey, RollupDelta]:
    """Sum new trace rows (as inserted, with their latest score) into rollup deltas."""
    deltas: dict[RollupKey, RollupDelta] = {}
    for row in rows:
        key = (row["task"], row["prompt_version_id"] or 0, hour_of(row["started_at"]))
        delta = deltas.get(key)
        if delta is None:
            delta = deltas[key] = RollupDelta()

        delta.trace_count += 1
        delta.error_count += 1 if row["error"] is not None else 0
        if row["score"] is not None:
            delta.scored_count += 1
            delta.score_sum += row["score"]
        delta.latency_sum += row["latency_ms"]
        delta.latency_min = min(delta.latency_min, row["latency_ms"])
        delta.latency_max = max(delta.latency_max, row["latency_ms"])
        delta.prompt_tokens_sum += row["prompt_tokens"] or 0
        delta.completion_tokens_sum += row["completion_tokens"] or 0
        delta.total_tokens_sum += row["total_tokens"] or 0
        started = row["started_at"]
        delta.first_seen = started if delta.first_seen is None else min(delta.first_seen, started)
        delta.last_seen = started if delta.last_seen is None else max(delta.last_seen, started)
        delta.histogram[latency_bin(row["latency_ms"])] += 1

    return deltas


_ADDITIVE_COLUMNS = (
    "trace_count", "error_count", "scored_count", "score_sum", "latency_sum",
    "prompt_tokens_sum", "completion_tokens_sum", "total_tokens_sum",
)
# (rollup table, histogram table, function from an hour to the row's bucket start)
LEVELS = (
    (task_rollups, latency_histograms, lambda hour: hour),
    (task_rollups_daily, latency_histograms_daily, day_of),
)
# {(dialect name, table name): additive upsert}; building one costs about as much as running it.
_UPSERTS: dict[tuple[str, str], object] = {}


def _conflict_updates(table: Table, excluded, dialect: str) -> dict:
    """Return the SET clause that adds an incoming row to the stored one."""
    if "bin" in table.c:
        return {"count": table.c["count"] + excluded["count"]}

    least = func.least if dialect == "postgresql" else func.min
    greatest = func.greatest if dialect == "postgresql" else func.max
    updates = {name: table.c[name] + excluded[name] for name in _ADDITIVE_COLUMNS}
    updates["latency_min"] = least(table.c.latency_min, excluded.latency_min)
    updates["latency_max"] = greatest(table.c.latency_max, excluded.latency_max)
    updates["first_seen"] = least(table.c.first_seen, excluded.first_seen)
    updates["last_seen"] = greatest(table.c.last_seen, excluded.last_seen)
    return updates


def _upsert(dialect: str, table: Table):
    """Return the additive upsert of `table`, built once per dialect.

    SQLite gets a plain upsert for executemany. On PostgreSQL, psycopg's executemany runs the statement
    once per row, and a batch has hundreds of histogram rows, so the rows arrive instead as one
    array per column and `INSERT ... SELECT unnest(...)` stores them in one execution. Parallel
    unnest() calls in one SELECT list yield their arrays in lockstep.
    """
    cached = _UPSERTS.get((dialect, table.name))
    if cached is not None:
        return cached

    if dialect == "postgresql":
        source = select(*[
            func.unnest(cast(bindparam(column.name), ARRAY(column.type))).label(column.name) for column in table.columns
        ])
        statement = postgresql.insert(table).from_select([column.name for column in table.columns], source)
    else:
        statement = sqlite.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=[column.name for column in table.primary_key.columns],
        set_=_conflict_updates(table, statement.excluded, dialect),
    )
    _UPSERTS[(dialect, table.name)] = statement
    return statement


def _execute_upsert(connection: Connection, table: Table, rows: list[dict]) -> None:
    if not rows:
        return

    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(_upsert(dialect, table), {column.name: [row[column.name] for row in rows] for column in table.columns})
        return

    connection.execute(_upsert(dialect, table), rows)


# {table name: the statement of _upsert_sqlite_histogram}
_SQLITE_HISTOGRAM_UPSERTS: dict[str, object] = {}


def _upsert_sqlite_histogram(connection: Connection, table: Table, project_id: int, rows: list[tuple]) -> None:
    """Add histogram rows `(task, prompt version id, bucket start, bin, count)` in one SQLite statement.

    A batch of 100 traces yields up to 100 rows per histogram table. With executemany,
    SQLAlchemy prepares each row's parameters in Python. Here the rows travel as one JSON array
    that json_each() unpacks inside SQLite, which took a batch of benchmarks/server_ingest.py
    from 22.9 to 21.7 ms in process.

    The bucket start is written by the column type's own bind processor. The text then equals
    what an ordinary insert stores, so the conflict target matches existing rows and window
    queries, which compare the text, find them. SQLite needs the `WHERE true`: without it the
    parser reads ON CONFLICT as part of the SELECT's join.
    """
    if not rows:
        return

    statement = _SQLITE_HISTOGRAM_UPSERTS.get(table.name)
    if statement is None:
        keys = ", ".join(column.name for column in table.primary_key.columns)
        statement = text(
            f"INSERT INTO {table.name} (project_id, task, prompt_version_id, bucket_start, bin, count) "
            "SELECT :project_id, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), "
            "json_extract(value, '$[3]'), json_extract(value, '$[4]') FROM json_each(:rows) WHERE true "
            f"ON CONFLICT ({keys}) DO UPDATE SET count = count + excluded.count"
        )
        _SQLITE_HISTOGRAM_UPSERTS[table.name] = statement

    to_text = table.c.bucket_start.type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
    encoded = json.dumps([(task, version, to_text(bucket), index, count) for task, version, bucket, index, count in rows])
    connection.execute(statement, {"project_id": project_id, "rows": encoded})


def _merge_by_bucket(deltas: dict[RollupKey, RollupDelta], bucket_of) -> dict[RollupKey, RollupDelta]:
    merged: dict[RollupKey, RollupDelta] = {}
    for (task, version, hour), delta in deltas.items():
        key = (task, version, bucket_of(hour))
        target = merged.get(key)
        if target is None:
            merged[key] = target = RollupDelta()
        for name in _ADDITIVE_COLUMNS:
            setattr(target, name, getattr(target, name) + getattr(delta, name))
        target.latency_min = min(target.latency_min, delta.latency_min)
        target.latency_max = max(target.latency_max, delta.latency_max)
        target.first_seen = delta.first_seen if target.first_seen is None else min(target.first_seen, delta.first_seen)
        target.last_seen = delta.last_seen if target.last_seen is None else max(target.last_seen, delta.last_seen)
        for index, count in delta.histogram.items():
            target.histogram[index] += count

    return merged


def apply_trace_deltas(connection: Connection, project_id: int, deltas: dict[RollupKey, RollupDelta]) -> None:
    """Add the hourly deltas of new traces to the hourly and daily rows (four statements)."""
    if not deltas:
        return

    for rollups, histograms, bucket_of in LEVELS:
        level_deltas = _merge_by_bucket(deltas, bucket_of)
        # Sorted keys make concurrent writers lock rows in the same order, avoiding deadlocks.
        keys = sorted(level_deltas)
        rollup_rows = []
        for key in keys:
            delta = level_deltas[key]
            row = {name: getattr(delta, name) for name in _ADDITIVE_COLUMNS}
            row.update(
                project_id=project_id, task=key[0], prompt_version_id=key[1], bucket_start=key[2],
                latency_min=delta.latency_min, latency_max=delta.latency_max,
                first_seen=delta.first_seen, last_seen=delta.last_seen,
            )
            rollup_rows.append(row)
        _execute_upsert(connection, rollups, rollup_rows)

        histogram_rows = [
            (key[0], key[1], key[2], index, count)
            for key in keys
            for index, count in sorted(level_deltas[key].histogram.items())
        ]
        if connection.dialect.name == "sqlite":
            _upsert_sqlite_histogram(connection, histograms, project_id, histogram_rows)
            continue

        _execute_upsert(connection, histograms, [
            {"project_id": project_id, "task": task, "prompt_version_id": version, "bucket_start": bucket, "bin": index, "count": count}
            for task, version, bucket, index, count in histogram_rows
        ])


def apply_score_changes(connection: Connection, project_id: int, changes: dict[RollupKey, tuple[int, float]]) -> None:
    """Add (scored_count, score_sum) changes, made by new latest scores, to the existing hourly and daily rows."""
    for rollups, _, bucket_of in LEVELS:
        merged: dict[RollupKey, tuple[int, float]] = {}
        for (task, version, hour), (count, total) in changes.items():
            key = (task, version, bucket_of(hour))
            old_count, old_total = merged.get(key, (0, 0.0))
            merged[key] = (old_count + count, old_total + total)
        rows = [
            {"p": project_id, "t": key[0], "v": key[1], "b": key[2], "dc": count, "ds": total}
            for key, (count, total) in sorted(merged.items())
            if count != 0 or total != 0
        ]
        if not rows:
            continue

        statement = (
            update(rollups)
            .where(
                rollups.c.project_id == bindparam("p"),
                rollups.c.task == bindparam("t"),
                rollups.c.prompt_version_id == bindparam("v"),
                rollups.c.bucket_start == bindparam("b"),
            )
            .values(scored_count=rollups.c.scored_count + bindparam("dc"), score_sum=rollups.c.score_sum + bindparam("ds"))
        )
        connection.execute(statement, rows)

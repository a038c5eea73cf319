"""Reads that only the dashboard needs, next to the store's own queries.

Each function runs one to three set-based statements, and their cost does not grow with the
number of traces in the project. Sparklines read the hourly or daily rollups. The score histogram and
the review-mode lookup read a bounded slice of one task's traces through the
(project_id, task, started_at, pk) index, and so does a filtered trace list, which looks
at a bounded number of traces per page.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, case, func, or_, select

# The store's list query builds its filter conditions and rows with these helpers; reusing
# them keeps the dashboard's bounded scan filtering exactly like the API.
from kaizen_server.store.queries import TraceFilter, decode_cursor, encode_cursor
from kaizen_server.store.queries import _conditions as filter_conditions
from kaizen_server.store.queries import _trace_dict as trace_dict
from kaizen_server.store.queries import _version_hashes as version_hashes
from kaizen_server.store.rollups import day_of, hour_of
from kaizen_server.store.schema import task_rollups, task_rollups_daily, traces

# The score histogram reads at most this many of the newest traces of a task in the window.
# SQLite stores `score` after the large text columns, so each trace read costs a whole row:
# 5,000 rows take about 50 ms on the benchmark machine (docs/benchmarks.md).
HISTOGRAM_SAMPLE = 5_000
HISTOGRAM_BINS = 10
# Review mode looks for the next unscored trace among at most this many older traces.
REVIEW_SCAN = 5_000
# A filtered trace list tests its conditions on at most this many traces per page request.
FILTER_SCAN = 5_000
# Sparklines never look further back than this, whatever the window.
SPARKLINE_MAX_DAYS = 30


def sparkline_series(connection: Connection, project_id: int, since: datetime, now: datetime, step: timedelta) -> dict[str, list[float | None]]:
    """Return each task's mean score per `step` from `since` to `now` (None where nothing was scored).

    One GROUP BY over the rollups, folded into steps here. Steps of whole days read the daily
    rows, which are 24 times fewer than the hourly ones over the same days.
    """
    daily = step >= timedelta(days=1) and step % timedelta(days=1) == timedelta(0)
    table = task_rollups_daily if daily else task_rollups
    since = day_of(since) if daily else hour_of(since)
    rows = connection.execute(
        select(
            table.c.task,
            table.c.bucket_start,
            func.sum(table.c.scored_count).label("scored"),
            func.sum(table.c.score_sum).label("score_sum"),
        )
        .where(table.c.project_id == project_id, table.c.bucket_start >= since)
        .group_by(table.c.task, table.c.bucket_start)
    )
    slots = max(1, int((now - since) / step) + 1)
    sums: dict[str, list[list[float]]] = defaultdict(lambda: [[0.0, 0.0] for _ in range(slots)])
    for row in rows:
        index = min(slots - 1, max(0, int((row.bucket_start - since) / step)))
        sums[row.task][index][0] += float(row.scored or 0)
        sums[row.task][index][1] += float(row.score_sum or 0)

    return {
        task: [total / count if count else None for count, total in points]
        for task, points in sums.items()
    }


def score_histogram(
    connection: Connection, project_id: int, task: str, since: datetime | None, sample: int = HISTOGRAM_SAMPLE
) -> dict:
    """Count the latest scores of the newest `sample` traces of a task in HISTOGRAM_BINS bins of width 0.1.

    Returns `bins` (counts: bin i covers [i/10, (i+1)/10), and the last one includes 1.0),
    `scored`, and `read` (traces looked at). `capped` is True when `sample` traces were read,
    so the figures describe the newest `sample` traces of the window, which may be all of them.
    """
    conditions = [traces.c.project_id == project_id, traces.c.task == task]
    if since is not None:
        conditions.append(traces.c.started_at >= since)
    newest = (
        select(traces.c.score)
        .where(*conditions)
        .order_by(traces.c.started_at.desc(), traces.c.pk.desc())
        .limit(sample)
        .subquery()
    )
    # One row of counts, one column per bin, so the rows never travel to Python; comparisons
    # instead of floor() work the same on SQLite and PostgreSQL.
    edges = [index / HISTOGRAM_BINS for index in range(1, HISTOGRAM_BINS)]
    columns = [func.count().label("read"), func.count(newest.c.score).label("scored")]
    low = None
    for index, high in enumerate(edges + [None]):
        condition = newest.c.score.is_not(None)
        if low is not None:
            condition = and_(condition, newest.c.score >= low)
        if high is not None:
            condition = and_(condition, newest.c.score < high)
        columns.append(func.sum(case((condition, 1), else_=0)).label(f"bin_{index}"))
        low = high
    row = connection.execute(select(*columns)).one()
    bins = [int(getattr(row, f"bin_{index}") or 0) for index in range(HISTOGRAM_BINS)]
    return {"bins": bins, "scored": int(row.scored), "read": int(row.read), "capped": int(row.read) >= sample}


def task_of_trace(connection: Connection, project_id: int, trace_id: str) -> str | None:
    row = connection.execute(select(traces.c.task).where(traces.c.project_id == project_id, traces.c.id == trace_id)).first()
    return None if row is None else row.task


def next_unscored_trace(connection: Connection, project_id: int, task: str, trace_id: str) -> str | None:
    """Return the id of the next unscored trace of `task` after `trace_id` in newest-first order.

    Looks at the REVIEW_SCAN traces older than the given one first; when none of them is
    unscored, starts again from the newest trace. Returns None when neither scan finds one.
    """
    current = connection.execute(
        select(traces.c.started_at, traces.c.pk).where(traces.c.project_id == project_id, traces.c.id == trace_id)
    ).first()
    base = [traces.c.project_id == project_id, traces.c.task == task]
    scans = []
    if current is not None:
        older = or_(
            traces.c.started_at < current.started_at,
            and_(traces.c.started_at == current.started_at, traces.c.pk < current.pk),
        )
        scans.append(base + [older])
    scans.append(base)

    for conditions in scans:
        window = (
            select(traces.c.id, traces.c.score, traces.c.started_at, traces.c.pk)
            .where(*conditions)
            .order_by(traces.c.started_at.desc(), traces.c.pk.desc())
            .limit(REVIEW_SCAN)
            .subquery()
        )
        row = connection.execute(
            select(window.c.id)
            .where(window.c.score.is_(None), window.c.id != trace_id)
            .order_by(window.c.started_at.desc(), window.c.pk.desc())
            .limit(1)
        ).first()
        if row is not None:
            return row.id

    return None


def scan_traces(
    connection: Connection, project_id: int, trace_filter: TraceFilter, limit: int, cursor: str | None, scan: int = FILTER_SCAN
) -> dict:
    """Return a page of traces that match `trace_filter`, looking at no more than `scan` traces.

    The scan walks the task's traces newest first from `cursor` through the
    (project_id, task, started_at, pk) index and tests the other conditions on at most `scan`
    rows. A filter that matches rarely therefore costs the same as one that matches often.
    Returns `items`, `next_cursor` (None at the end), and `capped`: True when the scan stopped
    before `limit` matches because it reached `scan` rows, in which case `next_cursor`
    continues the scan after the last row looked at. Three statements at most.
    """
    after = decode_cursor(cursor) if cursor else None
    position = [traces.c.project_id == project_id]
    if trace_filter.task is not None:
        position.append(traces.c.task == trace_filter.task)
    if trace_filter.since is not None:
        position.append(traces.c.started_at >= trace_filter.since)
    if trace_filter.until is not None:
        position.append(traces.c.started_at < trace_filter.until)
    if after is not None:
        started, pk = after
        position.append(or_(traces.c.started_at < started, and_(traces.c.started_at == started, traces.c.pk < pk)))
    scanned = (
        select(traces.c.pk).where(*position).order_by(traces.c.started_at.desc(), traces.c.pk.desc()).limit(scan).subquery()
    )

    rows = connection.execute(
        select(traces)
        .where(traces.c.pk.in_(select(scanned.c.pk)), *filter_conditions(project_id, trace_filter))
        .order_by(traces.c.started_at.desc(), traces.c.pk.desc())
        .limit(limit + 1)
    ).all()
    hashes = version_hashes(connection, {row.prompt_version_id for row in rows if row.prompt_version_id})
    items = [trace_dict(row, hashes) for row in rows[:limit]]
    if len(rows) > limit:
        last = rows[limit - 1]
        return {"items": items, "next_cursor": encode_cursor(last.started_at, last.pk), "capped": False}

    # Fewer matches than a page: either the traces ran out, or the scan reached its bound. The
    # last row scanned and the row after it show which.
    boundary = connection.execute(
        select(traces.c.started_at, traces.c.pk)
        .where(*position)
        .order_by(traces.c.started_at.desc(), traces.c.pk.desc())
        .offset(scan - 1)
        .limit(2)
    ).all()
    if len(boundary) < 2:
        return {"items": items, "next_cursor": None, "capped": False}

    last_scanned = boundary[0]
    return {"items": items, "next_cursor": encode_cursor(last_scanned.started_at, last_scanned.pk), "capped": True}

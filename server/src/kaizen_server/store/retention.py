"""Retention: delete traces, their scores and their rollups older than a cutoff.

The cutoff is rounded down to midnight UTC so that the deleted traces and the deleted hourly
and daily rollup rows cover exactly the same time, and task figures stay equal to what the
remaining traces add up to. Scores go with their trace; a score whose trace never arrived goes when the
score itself is older than the cutoff.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Connection, and_, delete, exists, select

from kaizen_server.store.rollups import day_of
from kaizen_server.store.schema import (
    latency_histograms,
    latency_histograms_daily,
    scores,
    task_rollups,
    task_rollups_daily,
    traces,
)

logger = logging.getLogger("kaizen_server.retention")


def prune(connection: Connection, cutoff: datetime) -> dict[str, int]:
    """Delete what started before `cutoff` (naive UTC, rounded down to midnight); return row counts.

    NOTE: each table is cleared with one DELETE in one transaction. Pruning many millions of
    rows at once holds the SQLite write lock for that long.
    """
    cutoff = day_of(cutoff)
    old_trace = select(traces.c.pk).where(
        traces.c.project_id == scores.c.project_id, traces.c.id == scores.c.trace_id, traces.c.started_at < cutoff
    )
    any_trace = select(traces.c.pk).where(traces.c.project_id == scores.c.project_id, traces.c.id == scores.c.trace_id)
    deleted_scores = connection.execute(
        delete(scores).where(exists(old_trace) | and_(scores.c.created_at < cutoff, ~exists(any_trace)))
    ).rowcount
    deleted_traces = connection.execute(delete(traces).where(traces.c.started_at < cutoff)).rowcount
    deleted_rollups = 0
    for table in (task_rollups, task_rollups_daily, latency_histograms, latency_histograms_daily):
        deleted = connection.execute(delete(table).where(table.c.bucket_start < cutoff)).rowcount
        if table in (task_rollups, task_rollups_daily):
            deleted_rollups += deleted
    counts = {"traces": deleted_traces, "scores": deleted_scores, "rollups": deleted_rollups}
    logger.info("pruned data that started before %s: %s", cutoff.isoformat(), counts)
    return counts

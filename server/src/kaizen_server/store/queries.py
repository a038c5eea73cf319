"""Reading traces: one trace with its score history, filtered newest-first lists, export.

Lists use keyset pagination on (started_at, pk): the cursor is the position of the last row
returned, so a page costs the same at any depth and rows inserted meanwhile never shift or
repeat a page. Every list request runs two statements: the page of traces (one more row than
asked, to know whether a next page exists) and the prompt-version hashes of that page.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

from sqlalchemy import Connection, and_, or_, select

from kaizen_server.store.schema import prompt_versions, scores, traces

MAX_PAGE_SIZE = 1000
EXPORT_PAGE_SIZE = 500


class InvalidCursor(ValueError):
    """A cursor that this server did not produce."""


@dataclass(frozen=True)
class TraceFilter:
    """Conditions a listed or exported trace must meet; None means no condition."""

    task: str | None = None
    prompt_version: str | None = None  # template hash, or a prefix of it of at least 8 characters
    model: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    scored: bool | None = None
    has_error: bool | None = None
    since: datetime | None = None  # started_at >= since (naive UTC)
    until: datetime | None = None  # started_at < until (naive UTC)
    text: str | None = None  # substring of prompt_text or response_text, case-insensitive


def iso(moment: datetime | None) -> str | None:
    """Render a stored naive-UTC time as ISO 8601 with an explicit UTC offset."""
    if moment is None:
        return None

    return moment.replace(tzinfo=timezone.utc).isoformat()


def encode_cursor(started_at: datetime, pk: int) -> str:
    raw = f"{started_at.isoformat()}|{pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        started, pk = base64.urlsafe_b64decode(padded.encode()).decode().split("|")
        return datetime.fromisoformat(started), int(pk)
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidCursor(f"cursor {cursor!r} is invalid; pass the next_cursor value of the previous page unchanged") from None


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(project_id: int, trace_filter: TraceFilter) -> list:
    conditions = [traces.c.project_id == project_id]
    f = trace_filter
    if f.task is not None:
        conditions.append(traces.c.task == f.task)
    if f.prompt_version is not None:
        versions = select(prompt_versions.c.id).where(
            prompt_versions.c.project_id == project_id,
            prompt_versions.c.template_hash.like(_escape_like(f.prompt_version.lower()) + "%", escape="\\"),
        )
        conditions.append(traces.c.prompt_version_id.in_(versions))
    if f.model is not None:
        conditions.append(traces.c.model == f.model)
    if f.min_score is not None:
        conditions.append(traces.c.score >= f.min_score)
    if f.max_score is not None:
        conditions.append(traces.c.score <= f.max_score)
    if f.scored is True:
        conditions.append(traces.c.score.is_not(None))
    if f.scored is False:
        conditions.append(traces.c.score.is_(None))
    if f.has_error is True:
        conditions.append(traces.c.error.is_not(None))
    if f.has_error is False:
        conditions.append(traces.c.error.is_(None))
    if f.since is not None:
        conditions.append(traces.c.started_at >= f.since)
    if f.until is not None:
        conditions.append(traces.c.started_at < f.until)
    if f.text:
        pattern = "%" + _escape_like(f.text) + "%"
        conditions.append(
            or_(traces.c.prompt_text.ilike(pattern, escape="\\"), traces.c.response_text.ilike(pattern, escape="\\"))
        )

    return conditions


def _trace_dict(row, version_hashes: dict[int, str]) -> dict:
    return {
        "id": row.id,
        "task": row.task,
        "messages": row.messages,
        "prompt_text": row.prompt_text,
        "response_text": row.response_text,
        "response": row.response,
        "model": row.model,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "total_tokens": row.total_tokens,
        "latency_ms": row.latency_ms,
        "started_at": iso(row.started_at),
        "error": row.error,
        "incomplete": row.incomplete,
        "source_variable": row.source_variable,
        "source_file": row.source_file,
        "source_line": row.source_line,
        "detection_rule": row.detection_rule,
        "inputs": row.inputs,
        "prompt_version": version_hashes.get(row.prompt_version_id) if row.prompt_version_id else None,
        "library": row.library,
        "parameters": row.parameters,
        "received_at": iso(row.received_at),
        "score": row.score,
        "scored_by": row.scored_by,
        "score_name": row.score_name,
        "scored_at": iso(row.scored_at),
    }


def _score_dict(row) -> dict:
    return {
        "id": row.id,
        "trace_id": row.trace_id,
        "score": row.score,
        "scored_by": row.scored_by,
        "name": row.name,
        "comment": row.comment,
        "created_at": iso(row.created_at),
    }


def _version_hashes(connection: Connection, version_ids: set[int]) -> dict[int, str]:
    if not version_ids:
        return {}

    rows = connection.execute(
        select(prompt_versions.c.id, prompt_versions.c.template_hash).where(prompt_versions.c.id.in_(sorted(version_ids)))
    )
    return {row.id: row.template_hash for row in rows}


def _scores_by_trace(connection: Connection, project_id: int, trace_ids: list[str]) -> dict[str, list[dict]]:
    history: dict[str, list[dict]] = {trace_id: [] for trace_id in trace_ids}
    if not trace_ids:
        return history

    rows = connection.execute(
        select(scores)
        .where(scores.c.project_id == project_id, scores.c.trace_id.in_(trace_ids))
        .order_by(scores.c.trace_id, scores.c.created_at, scores.c.pk)
    )
    for row in rows:
        history[row.trace_id].append(_score_dict(row))

    return history


def get_trace(connection: Connection, project_id: int, trace_id: str) -> dict | None:
    """Return one trace with its prompt template and score history (three statements), or None."""
    row = connection.execute(select(traces).where(traces.c.project_id == project_id, traces.c.id == trace_id)).first()
    if row is None:
        return None

    template = None
    hashes = {}
    if row.prompt_version_id:
        version = connection.execute(
            select(prompt_versions.c.template_hash, prompt_versions.c.template).where(prompt_versions.c.id == row.prompt_version_id)
        ).first()
        if version is not None:
            hashes[row.prompt_version_id] = version.template_hash
            template = version.template

    trace = _trace_dict(row, hashes)
    trace["template"] = template
    trace["scores"] = _scores_by_trace(connection, project_id, [trace_id])[trace_id]
    return trace


def trace_exists(connection: Connection, project_id: int, trace_id: str) -> bool:
    query = select(traces.c.pk).where(traces.c.project_id == project_id, traces.c.id == trace_id)
    return connection.execute(query).first() is not None


def _page_query(project_id: int, trace_filter: TraceFilter, limit: int, after: tuple[datetime, int] | None):
    conditions = _conditions(project_id, trace_filter)
    if after is not None:
        started, pk = after
        conditions.append(or_(traces.c.started_at < started, and_(traces.c.started_at == started, traces.c.pk < pk)))

    return select(traces).where(*conditions).order_by(traces.c.started_at.desc(), traces.c.pk.desc()).limit(limit)


def list_traces(
    connection: Connection, project_id: int, trace_filter: TraceFilter, limit: int, cursor: str | None
) -> tuple[list[dict], str | None]:
    """Return one page of traces, newest first, and the cursor of the next page (None at the end)."""
    after = decode_cursor(cursor) if cursor else None
    rows = connection.execute(_page_query(project_id, trace_filter, limit + 1, after)).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    hashes = _version_hashes(connection, {row.prompt_version_id for row in rows if row.prompt_version_id})
    items = [_trace_dict(row, hashes) for row in rows]
    next_cursor = encode_cursor(rows[-1].started_at, rows[-1].pk) if has_more else None
    return items, next_cursor


def iter_export(connection: Connection, project_id: int, trace_filter: TraceFilter) -> Iterator[dict]:
    """Yield every matching trace, newest first, with its template and score history.

    Reads in pages of EXPORT_PAGE_SIZE (three statements per page), so memory stays flat.
    """
    after = None
    while True:
        rows = connection.execute(_page_query(project_id, trace_filter, EXPORT_PAGE_SIZE, after)).all()
        if not rows:
            return

        version_ids = {row.prompt_version_id for row in rows if row.prompt_version_id}
        templates: dict[int, tuple[str, str]] = {}
        if version_ids:
            for version in connection.execute(
                select(prompt_versions.c.id, prompt_versions.c.template_hash, prompt_versions.c.template).where(
                    prompt_versions.c.id.in_(sorted(version_ids))
                )
            ):
                templates[version.id] = (version.template_hash, version.template)
        history = _scores_by_trace(connection, project_id, [row.id for row in rows])
        hashes = {version_id: pair[0] for version_id, pair in templates.items()}
        for row in rows:
            trace = _trace_dict(row, hashes)
            trace["template"] = templates.get(row.prompt_version_id, (None, None))[1]
            trace["scores"] = history[row.id]
            yield trace

        if len(rows) < EXPORT_PAGE_SIZE:
            return

        after = (rows[-1].started_at, rows[-1].pk)

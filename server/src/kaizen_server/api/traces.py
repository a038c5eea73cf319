"""Trace endpoints: one trace, filtered lists, JSONL export, and the simple score form."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime
from typing import Iterator

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse

from kaizen_server.api.auth import authenticate
from kaizen_server.api.errors import Problem
from kaizen_server.api.params import check_range, check_text, check_time
from kaizen_server.api.schemas import ScoreResult, TraceDetail, TraceList
from kaizen_server.store import ApiKey, InvalidCursor, TraceFilter
from kaizen_server.store.queries import MAX_PAGE_SIZE
from kaizen_server.wire import ScoreIn, ScoreRequest

logger = logging.getLogger("kaizen_server.api")

router = APIRouter(prefix="/api/v1")

_PROBLEM = {"content": {"application/problem+json": {}}}
_ERRORS = {401: _PROBLEM, 422: _PROBLEM}


def trace_filter(
    task: str | None = Query(None, max_length=1000, description="Only traces of this task."),
    prompt_version: str | None = Query(
        None, min_length=8, max_length=64, pattern="^[0-9a-fA-F]+$", description="Template SHA-256, or a prefix of at least 8 hex digits."
    ),
    model: str | None = Query(None, max_length=500),
    min_score: float | None = Query(None, ge=0, le=1, description="Latest score at least this."),
    max_score: float | None = Query(None, ge=0, le=1, description="Latest score at most this."),
    scored: bool | None = Query(None, description="true: only scored traces; false: only unscored."),
    has_error: bool | None = Query(None, description="true: only calls that raised; false: only calls that did not."),
    since: datetime | None = Query(None, description="started_at at or after this (ISO 8601; naive means UTC)."),
    until: datetime | None = Query(None, description="started_at before this (ISO 8601; naive means UTC)."),
    q: str | None = Query(None, max_length=1000, description="Text in the prompt or the response, case-insensitive."),
) -> TraceFilter:
    """Build the filter shared by the list and the export from the query string."""
    for name, value in (("task", task), ("model", model), ("q", q)):
        check_text(name, value)
    since_utc = check_time("since", since)
    until_utc = check_time("until", until)
    check_range("min_score", min_score, "max_score", max_score)
    check_range("since", since_utc, "until", until_utc)
    return TraceFilter(
        task=task, prompt_version=prompt_version, model=model, min_score=min_score, max_score=max_score,
        scored=scored, has_error=has_error, since=since_utc, until=until_utc, text=q or None,
    )


@router.get("/traces", response_model=TraceList, summary="List traces, newest first", responses=_ERRORS)
def list_traces(
    request: Request,
    filters: TraceFilter = Depends(trace_filter),
    limit: int = Query(50, ge=1, le=MAX_PAGE_SIZE, description=f"Page size, 1 to {MAX_PAGE_SIZE}."),
    cursor: str | None = Query(None, max_length=200, description="`next_cursor` of the previous page."),
    key: ApiKey = Depends(authenticate),
) -> dict:
    try:
        items, next_cursor = request.app.state.store.list_traces(key.project_id, filters, limit, cursor)
    except InvalidCursor as exc:
        raise Problem(422, f"query field 'cursor': {exc}") from None

    return {"items": items, "next_cursor": next_cursor, "has_more": next_cursor is not None, "limit": limit}


def _export_lines(store, project_id: int, filters: TraceFilter) -> Iterator[bytes]:
    count = 0
    try:
        for trace in store.export_traces(project_id, filters):
            count += 1
            yield (json.dumps(trace, ensure_ascii=False) + "\n").encode("utf-8")
    except Exception:
        # The 200 status has gone out already; the log is the only place left to report this.
        logger.exception("export for project %d stopped after %d traces", project_id, count)
        raise


@router.get(
    "/traces/export",
    summary="Export traces as JSON Lines",
    description="Streams every matching trace, newest first, one JSON object per line, with its template, inputs and score history. Takes the same filters as the list.",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}}, **_ERRORS},
)
def export_traces(request: Request, filters: TraceFilter = Depends(trace_filter), key: ApiKey = Depends(authenticate)):
    store = request.app.state.store
    return StreamingResponse(
        _export_lines(store, key.project_id, filters),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="traces.jsonl"'},
    )


@router.get(
    "/traces/{trace_id}",
    response_model=TraceDetail,
    summary="Get one trace with its score history",
    responses={404: _PROBLEM, **_ERRORS},
)
def get_trace(request: Request, trace_id: uuid.UUID = Path(), key: ApiKey = Depends(authenticate)) -> dict:
    trace_id = str(trace_id)
    trace = request.app.state.store.get_trace(key.project_id, trace_id)
    if trace is None:
        raise Problem(404, f"trace {trace_id} not found in project {key.project!r}; it may not have been sent yet")

    return trace


@router.post(
    "/traces/{trace_id}/score",
    response_model=ScoreResult,
    summary="Score one trace",
    description="Adds a score to a stored trace; the trace keeps every score and shows the latest. 404 when the trace is not stored: to score a trace that may still be on its way, send the score through `/api/v1/ingest`, where it waits for its trace.",
    responses={404: _PROBLEM, 400: _PROBLEM, **_ERRORS},
)
def score_trace(request: Request, body: ScoreRequest, trace_id: uuid.UUID = Path(), key: ApiKey = Depends(authenticate)) -> dict:
    trace_id = str(trace_id)
    for name in ("scored_by", "name", "comment"):
        value = getattr(body, name)
        if value is not None and ("\x00" in value or any("\ud800" <= char <= "\udfff" for char in value)):
            raise Problem(422, f"body field '{name}' contains a NUL character or a lone surrogate; remove it")

    score = ScoreIn(
        id=body.id or str(uuid.uuid4()), trace_id=trace_id, score=body.score, scored_by=body.scored_by,
        name=body.name, comment=body.comment, created_at=body.created_at,
    )
    status = request.app.state.store.add_score(key.project_id, score)
    if status is None:
        raise Problem(404, f"trace {trace_id} not found in project {key.project!r}; score it through /api/v1/ingest to attach the score when the trace arrives")

    return {"id": score.id, "trace_id": trace_id, "status": status}

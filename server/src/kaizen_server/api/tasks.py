"""Task endpoints: the task list, one task with its prompt versions, and time series."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from kaizen_server.api.auth import authenticate
from kaizen_server.api.errors import Problem
from kaizen_server.api.params import check_range, check_text, check_time
from kaizen_server.api.schemas import TaskDetail, TaskList, TimeSeries
from kaizen_server.store import ApiKey, Window
from kaizen_server.wire import utc_now

router = APIRouter(prefix="/api/v1")

_PROBLEM = {"content": {"application/problem+json": {}}}
_ERRORS = {401: _PROBLEM, 422: _PROBLEM}


def window(
    since: datetime | None = Query(None, description="Start of the window (ISO 8601; naive means UTC); rounded down to the hour."),
    until: datetime | None = Query(None, description="End of the window, exclusive; rounded up to the hour."),
) -> Window:
    since_utc = check_time("since", since)
    until_utc = check_time("until", until)
    check_range("since", since_utc, "until", until_utc)
    return Window.aligned(since_utc, until_utc)


@router.get(
    "/tasks",
    response_model=TaskList,
    summary="List tasks with their figures",
    description="Every task with traces in the window: counts, mean score, latency percentiles, token sums, error rate, first and last seen. No window means all time.",
    responses=_ERRORS,
)
def list_tasks(request: Request, span: Window = Depends(window), key: ApiKey = Depends(authenticate)) -> dict:
    return {"items": request.app.state.store.list_tasks(key.project_id, span), "window": span.as_dict()}


@router.get(
    "/tasks/{task:path}",
    response_model=TaskDetail,
    summary="One task with its prompt versions",
    description="The task's figures and the same figures per prompt version (each distinct template text, by SHA-256), oldest version first, so a prompt change can be judged by its numbers.",
    responses={404: _PROBLEM, **_ERRORS},
)
def get_task(request: Request, task: str = Path(max_length=1000), span: Window = Depends(window), key: ApiKey = Depends(authenticate)) -> dict:
    check_text("task", task)
    detail = request.app.state.store.task_detail(key.project_id, task, span)
    if detail is None:
        raise Problem(404, f"task {task!r} not found in project {key.project!r}; list tasks with GET /api/v1/tasks")

    return detail


@router.get(
    "/timeseries",
    response_model=TimeSeries,
    summary="Counts, mean score and latency per hour or day",
    description="One point per hour or UTC day that has traces, for one task or the whole project. Default window: the last 7 days for `hour`, the last 90 days for `day`.",
    responses=_ERRORS,
)
def get_timeseries(
    request: Request,
    task: str | None = Query(None, max_length=1000),
    interval: Literal["hour", "day"] = Query("day"),
    span: Window = Depends(window),
    key: ApiKey = Depends(authenticate),
) -> dict:
    check_text("task", task)
    if span.since is None:
        default_days = 7 if interval == "hour" else 90
        span = Window.aligned(utc_now() - timedelta(days=default_days), span.until)
    points = request.app.state.store.timeseries(key.project_id, task, interval, span)
    return {"task": task, "interval": interval, "points": points, "window": span.as_dict()}

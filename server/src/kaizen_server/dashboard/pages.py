"""The pages a signed-in person reads: tasks overview, task page, trace page, and hand scoring.

Every handler first resolves the session (a request without one is sent to the sign-in page)
and then reads only the session's project. Each page runs a fixed number of statements,
whatever the number of tasks or traces: figures come from the hourly rollups and lists are
keyset pages. Query parameters that do not parse are reported on the page and ignored, so a
hand-edited URL still shows something useful.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from kaizen_server.dashboard import charts, queries
from kaizen_server.dashboard.auth import Session, csrf_ok, current_session, redirect_to_login
from kaizen_server.dashboard.diff import side_by_side
from kaizen_server.dashboard.render import render
from kaizen_server.dashboard.windows import CHOICES, choose, since_of, store_window
from kaizen_server.store import InvalidCursor, TraceFilter, Window, read
from kaizen_server.wire import ScoreIn, normalize_uuid, utc_now

logger = logging.getLogger("kaizen_server.dashboard.pages")

router = APIRouter(include_in_schema=False)

TRACES_PER_PAGE = 50
MAX_FILTER_CHARS = 1000
SORT_COLUMNS = {
    "task", "trace_count", "mean_score", "p50_latency_ms", "p95_latency_ms", "total_tokens", "error_rate", "last_seen",
}
_HEX = re.compile(r"^[0-9a-fA-F]{8,64}$")


def task_url(task: str) -> str:
    return "/tasks/" + quote(task, safe="")


def _last_user_text(trace: dict) -> str:
    """Return the text of the last user message: list rows that share a system prompt differ there."""
    for message in reversed(trace.get("messages") or []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"]
            return " ".join(text for text in texts if isinstance(text, str))

    return trace.get("prompt_text") or ""


def not_found(request: Request, session: Session, message: str) -> Response:
    return render(request, "not_found.html", status_code=404, session=session, message=message)


def _sort_tasks(tasks: list[dict], column: str, descending: bool) -> list[dict]:
    """Sort by `column`; rows without a value (no score yet, say) go last either way."""
    present = [task for task in tasks if task.get(column) is not None]
    missing = [task for task in tasks if task.get(column) is None]
    present.sort(key=lambda task: task[column] if column != "task" else task[column].lower(), reverse=descending)
    return present + missing


@router.get("/")
def overview(request: Request) -> Response:
    """Render one row per task with its figures and a score sparkline, for the chosen window."""
    session = current_session(request)
    if session is None:
        return redirect_to_login(request)

    store = request.app.state.store
    params = request.query_params
    window = choose(params.get("window"))
    column = params.get("sort") if params.get("sort") in SORT_COLUMNS else "last_seen"
    descending = params.get("order", "desc" if column != "task" else "asc") != "asc"
    now = utc_now()

    tasks = store.list_tasks(session.project_id, store_window(window, now))
    # Only an empty window costs this one more query, which separates "nothing lately" from "nothing yet".
    has_older = bool(not tasks and window.length is not None and store.list_tasks(session.project_id, Window()))
    sparkline_since = since_of(window, now) or now - window.sparkline_step * queries.SPARKLINE_MAX_DAYS
    with read(store.engine) as connection:
        trends = queries.sparkline_series(connection, session.project_id, sparkline_since, now, window.sparkline_step)
    for task in tasks:
        task["url"] = task_url(task["task"])
        task["sparkline"] = charts.sparkline(trends.get(task["task"], []), label=f"mean score of {task['task']}")

    return render(
        request, "overview.html", session=session, tasks=_sort_tasks(tasks, column, descending), window=window,
        windows=CHOICES.values(), sort=column, order="desc" if descending else "asc",
        base_url=str(request.base_url).rstrip("/"), has_older=has_older,
    )


def _parse_filters(params, errors: list[str]) -> dict:
    """Read the trace filters of the task page; a bad value is named in `errors` and dropped."""
    values: dict = {}
    for name in ("model", "q"):
        text = params.get(name, "").strip()
        if "\x00" in text or len(text) > MAX_FILTER_CHARS:
            errors.append(f"Ignored the {name} filter: it is longer than {MAX_FILTER_CHARS} characters or contains a NUL character.")
        elif text:
            values[name] = text

    version = params.get("version", "").strip()
    if version and not _HEX.match(version):
        errors.append(f"Ignored the version filter {version[:80]!r}: use a template hash of 8 to 64 hex digits.")
    elif version:
        values["version"] = version.lower()

    for name in ("min_score", "max_score"):
        text = params.get(name, "").strip()
        if not text:
            continue
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is None or not 0.0 <= number <= 1.0:
            errors.append(f"Ignored {name.replace('_', ' ')} {text[:40]!r}: use a number from 0 to 1.")
            continue
        values[name] = number

    if "min_score" in values and "max_score" in values and values["min_score"] > values["max_score"]:
        errors.append(f"Ignored the score range: min score {values['min_score']} is greater than max score {values['max_score']}.")
        del values["min_score"], values["max_score"]

    values["unscored"] = params.get("unscored") == "1"
    values["errors"] = params.get("errors") == "1"
    return values


@router.get("/tasks/{task:path}")
def task_page(request: Request, task: str) -> Response:
    """Render charts over time, prompt versions with a diff, the score histogram and the filtered trace list."""
    session = current_session(request)
    if session is None:
        return redirect_to_login(request)

    store = request.app.state.store
    params = request.query_params
    if "\x00" in task or len(task) > MAX_FILTER_CHARS:
        return not_found(request, session, "No task has that name.")

    window = choose(params.get("window"))
    now = utc_now()
    span = store_window(window, now)
    detail = store.task_detail(session.project_id, task, span)
    if detail is None:
        return not_found(request, session, f"No task named {task!r} in project {session.project!r}.")

    errors: list[str] = []
    filters = _parse_filters(params, errors)
    trace_filter = TraceFilter(
        task=task, prompt_version=filters.get("version"), model=filters.get("model"),
        min_score=filters.get("min_score"), max_score=filters.get("max_score"),
        scored=False if filters["unscored"] else None, has_error=True if filters["errors"] else None,
        since=span.since, text=filters.get("q"),
    )
    cursor = params.get("cursor") or None
    narrowed = any(filters.get(name) for name in ("version", "model", "q", "min_score", "max_score", "unscored", "errors"))
    try:
        trace_rows, next_cursor, capped = _list_traces(store, session.project_id, trace_filter, cursor, narrowed)
    except InvalidCursor:
        errors.append("Ignored the page cursor: it is not one this server made. Showing the first page.")
        cursor = None
        trace_rows, next_cursor, capped = _list_traces(store, session.project_id, trace_filter, None, narrowed)

    series = store.timeseries(session.project_id, task, window.interval, span)
    with read(store.engine) as connection:
        score_bins = queries.score_histogram(connection, session.project_id, task, span.since)

    hourly = window.interval == "hour"
    moments = [(datetime.fromisoformat(point["start"]), point) for point in series]
    chart_volume = charts.bar_chart([(moment, point["trace_count"]) for moment, point in moments], title="Traces", hourly=hourly)
    chart_score = charts.line_chart(
        {"mean score": [(moment, point["mean_score"]) for moment, point in moments]}, title="Mean score", low=0.0, high=1.0,
        hourly=hourly, digits=1,
    )
    chart_latency = charts.line_chart(
        {
            "p50": [(moment, point["p50_latency_ms"]) for moment, point in moments],
            "p95": [(moment, point["p95_latency_ms"]) for moment, point in moments],
        },
        title="Latency (ms)", low=0.0, hourly=hourly, unit=" ms",
    )
    chart_histogram = charts.histogram(score_bins["bins"], title="Scores")

    versions = detail["prompt_versions"]
    for number, version in enumerate(versions, start=1):
        version["number"] = number
    hashes = [version["prompt_version"] for version in versions if version["prompt_version"]]
    # By default the diff compares the two newest versions.
    diff_a = diff_b = None
    if len(hashes) >= 2:
        diff_a, diff_b = hashes[-2], hashes[-1]
    if params.get("diff_a") in hashes:
        diff_a = params.get("diff_a")
    if params.get("diff_b") in hashes:
        diff_b = params.get("diff_b")
    diff_rows = None
    if diff_a and diff_b:
        templates = {version["prompt_version"]: version["template"] or "" for version in versions}
        diff_rows = side_by_side(templates[diff_a], templates[diff_b])

    for row in trace_rows:
        row["preview"] = _last_user_text(row)
    models = sorted({row["model"] for row in trace_rows if row["model"]})
    current = {
        "window": window.key, "version": filters.get("version"), "model": filters.get("model"),
        "min_score": params.get("min_score") if "min_score" in filters else None,
        "max_score": params.get("max_score") if "max_score" in filters else None,
        "unscored": "1" if filters["unscored"] else None, "errors": "1" if filters["errors"] else None,
        "q": filters.get("q"),
    }
    version_numbers = {version["prompt_version"]: version["number"] for version in versions}
    return render(
        request, "task.html", session=session, task=detail, task_url=task_url(task), window=window, windows=CHOICES.values(),
        traces=trace_rows, next_cursor=next_cursor, cursor=cursor, filters=current, errors=errors, versions=versions,
        version_numbers=version_numbers, diff_a=diff_a, diff_b=diff_b, diff_rows=diff_rows, models=models,
        chart_volume=chart_volume, chart_score=chart_score, chart_latency=chart_latency, chart_histogram=chart_histogram,
        histogram=score_bins, filtered=any(value for name, value in current.items() if name != "window"),
        capped=capped, scan_size=queries.FILTER_SCAN,
    )


def _list_traces(store, project_id: int, trace_filter: TraceFilter, cursor: str | None, narrowed: bool):
    """Return (rows, next cursor, capped) of one page of the task's trace list.

    An unfiltered list is a plain keyset page. A filtered one is a bounded scan, because a
    filter that matches nothing would otherwise read every trace of the task.
    """
    if not narrowed:
        rows, next_cursor = store.list_traces(project_id, trace_filter, TRACES_PER_PAGE, cursor)
        return rows, next_cursor, False

    with read(store.engine) as connection:
        page = queries.scan_traces(connection, project_id, trace_filter, TRACES_PER_PAGE, cursor)
    return page["items"], page["next_cursor"], page["capped"]


def _trace_page(request: Request, session: Session, trace_id: str, *, error: str | None = None, status_code: int = 200, form: dict | None = None) -> Response:
    store = request.app.state.store
    trace = store.get_trace(session.project_id, trace_id)
    if trace is None:
        return not_found(request, session, f"No trace {trace_id} in project {session.project!r}.")

    # The next unscored trace is looked up only when asked for (GET .../next-unscored), because
    # in a fully scored task the lookup reads thousands of rows.
    return render(
        request, "trace.html", status_code=status_code, session=session, trace=trace, task_url=task_url(trace["task"]),
        error=error, form=form or {}, scored=request.query_params.get("scored") == "1",
        review=request.query_params.get("review") == "1", none_unscored=request.query_params.get("none") == "1",
        review_scan=queries.REVIEW_SCAN,
    )


def _trace_id_or_none(value: str) -> str | None:
    try:
        return normalize_uuid(value)
    except ValueError:
        return None


@router.get("/traces/{trace_id}")
def trace_page(request: Request, trace_id: str) -> Response:
    """Render the transcript, response, metadata, score history and hand-scoring form of one trace."""
    session = current_session(request)
    if session is None:
        return redirect_to_login(request)

    canonical = _trace_id_or_none(trace_id)
    if canonical is None:
        return not_found(request, session, f"{trace_id[:80]!r} is not a trace id: trace ids are UUIDs.")

    return _trace_page(request, session, canonical)


@router.get("/traces/{trace_id}/next-unscored")
def next_unscored(request: Request, trace_id: str) -> Response:
    """Redirect to the next unscored trace of this trace's task, or back here with a notice."""
    session = current_session(request)
    if session is None:
        return redirect_to_login(request)

    canonical = _trace_id_or_none(trace_id)
    if canonical is None:
        return not_found(request, session, f"{trace_id[:80]!r} is not a trace id: trace ids are UUIDs.")

    review = "review=1&" if request.query_params.get("review") == "1" else ""
    with read(request.app.state.store.engine) as connection:
        task = queries.task_of_trace(connection, session.project_id, canonical)
        if task is None:
            return not_found(request, session, f"No trace {canonical} in project {session.project!r}.")

        next_id = queries.next_unscored_trace(connection, session.project_id, task, canonical)
    if next_id is None:
        return RedirectResponse(f"/traces/{canonical}?{review}none=1", status_code=303)

    return RedirectResponse(f"/traces/{next_id}" + (f"?{review.rstrip('&')}" if review else ""), status_code=303)


@router.post("/traces/{trace_id}/score")
def score_trace(
    request: Request,
    trace_id: str,
    csrf_token: str = Form(""),
    score: str = Form(""),
    comment: str = Form(""),
    name: str = Form(""),
    review: str = Form(""),
) -> Response:
    """Store a hand score (`scored_by="human"`), then show the trace again or, in review mode, the next unscored one."""
    session = current_session(request)
    if session is None:
        return redirect_to_login(request)

    canonical = _trace_id_or_none(trace_id)
    if canonical is None:
        return not_found(request, session, f"{trace_id[:80]!r} is not a trace id: trace ids are UUIDs.")

    form = {"score": score, "comment": comment, "name": name}
    if not csrf_ok(session, csrf_token):
        return _trace_page(request, session, canonical, error="The form expired; reload the page and score again.", status_code=403, form=form)

    try:
        value = float(score)
    except ValueError:
        value = None
    if value is None or not 0.0 <= value <= 1.0:
        return _trace_page(request, session, canonical, error=f"Invalid score {score[:40]!r}: enter a number from 0 to 1.", status_code=422, form=form)

    if any("\x00" in text or any("\ud800" <= char <= "\udfff" for char in text) for text in (comment, name)):
        return _trace_page(request, session, canonical, error="The comment or name contains a NUL character; remove it.", status_code=422, form=form)

    if len(name) > 200 or len(comment) > 100_000:
        return _trace_page(request, session, canonical, error="The name is limited to 200 characters and the comment to 100,000.", status_code=422, form=form)

    store = request.app.state.store
    record = ScoreIn(
        id=str(uuid.uuid4()), trace_id=canonical, score=value, scored_by="human",
        name=name.strip() or None, comment=comment.strip() or None,
    )
    status = store.add_score(session.project_id, record)
    if status is None:
        return not_found(request, session, f"No trace {canonical} in project {session.project!r}.")

    logger.info("hand score %.3f on trace %s by %s in project %r", value, canonical, session.signed_in_as, session.project)
    if review == "1":
        with read(store.engine) as connection:
            task = queries.task_of_trace(connection, session.project_id, canonical)
            next_id = queries.next_unscored_trace(connection, session.project_id, task, canonical) if task else None
        if next_id is not None:
            return RedirectResponse(f"/traces/{next_id}?review=1&scored=1", status_code=303)

    return RedirectResponse(f"/traces/{canonical}?scored=1" + ("&review=1" if review == "1" else ""), status_code=303)

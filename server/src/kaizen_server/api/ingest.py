"""`POST /api/v1/ingest`: a batch of traces and scores with one result per item.

The body is read here rather than by FastAPI for two reasons. The byte limit is enforced while
reading, before a huge body sits in memory. And a bad item is rejected with its own reason
while the others are stored. A body is first parsed and validated whole, in one pydantic call
on the JSON text. When that fails, json.loads parses it, each list is validated in one call,
and a list that fails is validated again item by item. The OpenAPI document still shows the
full request schema (`IngestRequest`).

After the API key check, everything runs in one trip to the thread pool: parsing,
validation, and the store's write transaction, which commits before the response is sent.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import types as types_module
import typing
from datetime import datetime
from typing import Any, Union

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from kaizen_server.api.auth import authenticate
from kaizen_server.api.errors import Problem
from kaizen_server.api.schemas import IngestRequest, IngestResponse
from kaizen_server.store import ApiKey
from kaizen_server.wire import (
    ScoreIn,
    TraceIn,
    UnstorableValue,
    check_structure,
    clean_value,
    cleaning_warnings,
    describe_validation_error,
)

logger = logging.getLogger("kaizen_server.ingest")

router = APIRouter()

_PROBLEM = {"content": {"application/problem+json": {}}}
# A \u escape of NUL or of a UTF-16 surrogate (D800-DFFF), in either case.
_CLEANING_NEEDED = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


async def read_limited_body(request: Request, max_bytes: int) -> bytes:
    """Read the request body; raise a 413 problem as soon as it exceeds `max_bytes`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise Problem(413, f"request body of {int(declared)} bytes exceeds the limit of {max_bytes} bytes; send smaller batches")

    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise Problem(413, f"request body exceeds the limit of {max_bytes} bytes; send smaller batches")
        chunks.append(chunk)

    return b"".join(chunks)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON; send numbers as finite decimals")


def parse_batch(body: bytes, max_items: int) -> tuple[list, list]:
    """Parse the JSON body into the raw trace and score lists, or raise a problem."""
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise Problem(400, "the request body is nested too deeply to parse; send flatter JSON") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, f"the request body is not valid JSON ({exc}); send a JSON object like {{\"traces\": [...], \"scores\": [...]}}") from None

    if not isinstance(document, dict):
        raise Problem(422, f"the request body is a JSON {type(document).__name__}; send an object like {{\"traces\": [...], \"scores\": [...]}}")

    unknown = sorted(set(document) - {"traces", "scores"})
    if unknown:
        raise Problem(422, f"unknown top-level field(s) {', '.join(repr(name) for name in unknown)}; the body has only 'traces' and 'scores'")

    raw_traces = document.get("traces", [])
    raw_scores = document.get("scores", [])
    for name, value in (("traces", raw_traces), ("scores", raw_scores)):
        if not isinstance(value, list):
            raise Problem(422, f"field '{name}' is a JSON {type(value).__name__}; send a list of objects")

    count = len(raw_traces) + len(raw_scores)
    if count > max_items:
        raise Problem(413, f"batch of {count} items exceeds the limit of {max_items} items per request; split it")

    return raw_traces, raw_scores


def _raw_id(raw: Any) -> str | None:
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        return raw["id"].encode("utf-8", "replace").decode("utf-8")[:100]

    return None


def body_needs_cleaning(body: bytes) -> bool:
    """Tell whether the JSON text may contain a NUL character or a surrogate code point.

    Both can only appear as \\u escapes (raw NUL bytes are invalid JSON, raw surrogates invalid
    UTF-8), so a body without such escapes skips the per-string cleaning entirely.
    """
    return _CLEANING_NEEDED.search(body) is not None


def _validate(kind: str, model, raw: Any, needs_cleaning: bool):
    """Return (model instance, warnings) or (None, error text) for one raw item."""
    if not isinstance(raw, dict):
        return None, f"a {kind} must be a JSON object, got {type(raw).__name__}"

    counts: dict[str, int] = {}
    try:
        if needs_cleaning:
            cleaned = {}
            for key, value in raw.items():
                field = clean_value(key, "field names", counts)
                cleaned[field] = clean_value(value, field, counts)
        else:
            cleaned = raw
            for key, value in raw.items():
                if type(value) in (dict, list, float):
                    check_structure(value, key)
    except UnstorableValue as exc:
        return None, str(exc)

    try:
        item = model.model_validate(cleaned)
    except ValidationError as exc:
        return None, describe_validation_error(exc)

    return item, item.unknown_field_warnings() + cleaning_warnings(counts)


def _validate_all(adapter: TypeAdapter, raws: list, needs_cleaning: bool) -> list[tuple] | None:
    """Validate a whole list of well-formed items in one pydantic call; None when any item fails.

    Most batches contain only valid objects without NUL or surrogate escapes, and one call over
    the list costs less than one call per item. On any failure the caller validates item by
    item again, which produces the exact error of each bad item. That is also why the
    structure check here passes no field name.
    """
    if needs_cleaning:
        return None

    try:
        for raw in raws:
            if type(raw) is not dict:
                return None

            for value in raw.values():
                if type(value) in (dict, list, float):
                    check_structure(value, "")
        items = adapter.validate_python(raws)
    except (UnstorableValue, ValidationError):
        return None

    return _with_warnings(items)


_ADAPTERS = {TraceIn: TypeAdapter(list[TraceIn]), ScoreIn: TypeAdapter(list[ScoreIn])}


def validate_body_at_once(body: bytes, max_items: int) -> tuple[list[TraceIn], list[ScoreIn]] | None:
    """Return the traces and scores of a body parsed and validated in one pydantic call, or None.

    pydantic reads the JSON text itself, which takes about half the time of json.loads
    followed by validation of the parsed lists. None means that the body or an item failed,
    and then the caller takes the slow way (`parse_batch`, then `validate_batch`), which
    returns the exact error of the body or of each bad item. The slow way also takes every
    body that may need cleaning.

    pydantic parses the NaN and Infinity tokens that json.loads is set to reject, and a
    number such as 1e999 as infinity. Such a value still never passes here. A typed field
    rejects it, because the float fields forbid non-finite values and the int, str and bool
    fields are strict. Inside a JSON object or array, or in an unknown field,
    `check_structure` raises for it.
    """
    if body_needs_cleaning(body):
        return None

    try:
        batch = IngestRequest.model_validate_json(body)
    except ValidationError:
        return None

    # The slow way rejects an oversized batch with 413.
    if len(batch.traces) + len(batch.scores) > max_items:
        return None

    try:
        for items, names in ((batch.traces, _UNCHECKED_FIELDS[TraceIn]), (batch.scores, _UNCHECKED_FIELDS[ScoreIn])):
            for item in items:
                for name in names:
                    value = getattr(item, name)
                    if type(value) in (dict, list, float):
                        check_structure(value, "")

                for value in (item.model_extra or {}).values():
                    if type(value) in (dict, list, float):
                        check_structure(value, "")
    except UnstorableValue:
        return None

    return batch.traces, batch.scores


def _value_types(annotation) -> list:
    """Return the types that a field annotation allows, without Annotated metadata and unions."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _value_types(typing.get_args(annotation)[0])

    if origin in (Union, types_module.UnionType):
        return [kind for argument in typing.get_args(annotation) for kind in _value_types(argument)]

    return [annotation]


def _unchecked_fields(model) -> tuple[str, ...]:
    """Return the fields of `model` that may hold a JSON object, a JSON array or a float.

    Validation bounds no value inside an object or array, so `check_structure` has to visit
    them. A float field that forbids non-finite values gets visited too, which costs little.
    """
    names = []
    for name, field in model.model_fields.items():
        if any(kind not in (str, int, bool, datetime, type(None)) for kind in _value_types(field.annotation)):
            names.append(name)

    return tuple(names)


_UNCHECKED_FIELDS = {model: _unchecked_fields(model) for model in (TraceIn, ScoreIn)}


def validate_batch(raw_traces: list, raw_scores: list, needs_cleaning: bool = True):
    """Validate every item; return (results in order, valid traces, valid scores).

    A result is a dict that the store's statuses complete; an id repeated inside the batch is a
    duplicate of its first occurrence.
    """
    checked = {}
    for model, raws in ((TraceIn, raw_traces), (ScoreIn, raw_scores)):
        checked[model] = _validate_all(_ADAPTERS[model], raws, needs_cleaning) if raws else []
        if checked[model] is None:
            kind = "trace" if model is TraceIn else "score"
            checked[model] = [_validate(kind, model, raw, needs_cleaning) for raw in raws]

    return collect_results(raw_traces, checked[TraceIn], raw_scores, checked[ScoreIn])


def collect_results(raw_traces: list, checked_traces: list[tuple], raw_scores: list, checked_scores: list[tuple]):
    """Return (results in order, valid traces, valid scores) from (item or None, warnings or error) pairs.

    The raw items only give the id of a rejected item.
    """
    results: list[dict] = []
    valid_traces: list[TraceIn] = []
    valid_scores: list[ScoreIn] = []
    for kind, raws, checked, valid in (("trace", raw_traces, checked_traces, valid_traces), ("score", raw_scores, checked_scores, valid_scores)):
        seen: set[str] = set()
        for raw, (item, extra) in zip(raws, checked):
            if item is None:
                results.append({"type": kind, "id": _raw_id(raw), "status": "rejected", "error": extra, "warnings": []})
                continue

            result = {"type": kind, "id": item.id, "status": None, "error": None, "warnings": extra}
            if item.id in seen:
                result["status"] = "duplicate"
                result["warnings"] = extra + ["the same id appears earlier in this batch; the first one is kept"]
            else:
                seen.add(item.id)
                valid.append(item)
            results.append(result)

    return results, valid_traces, valid_scores


def _with_warnings(items: list) -> list[tuple]:
    return [(item, item.unknown_field_warnings() if item.model_extra else []) for item in items]


@router.post(
    "/api/v1/ingest",
    response_model=IngestResponse,
    summary="Ingest a batch of traces and scores",
    description=(
        "Stores traces and scores idempotently on their ids and answers one result per item, in "
        "request order: `accepted`, `duplicate` (already stored, nothing changed) or `rejected` "
        "(with `error`). One bad item never rejects the batch. A score may name a trace that has "
        "not arrived yet; it attaches when the trace arrives. A 200 means every accepted item is "
        "committed. Limits: items per request and bytes per request, answered with 413."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestRequest"}}},
        }
    },
    responses={400: _PROBLEM, 401: _PROBLEM, 413: _PROBLEM, 422: _PROBLEM},
)
async def ingest(request: Request, key: ApiKey = Depends(authenticate)) -> JSONResponse:
    settings = request.app.state.settings
    body = await read_limited_body(request, settings.max_request_bytes)
    # One trip to the thread pool for the CPU and database work. The response is built
    # directly, because validating 1000 item results against IngestResponse again would only
    # repeat what this module guarantees.
    content = await run_in_threadpool(ingest_body, request.app.state.store, key.project_id, body, settings.max_batch_items)
    return JSONResponse(content)


def ingest_body(store, project_id: int, body: bytes, max_items: int) -> dict:
    """Parse, validate and store one request body; return the IngestResponse document."""
    valid = validate_body_at_once(body, max_items)
    if valid is not None:
        results, traces, scores = collect_results(valid[0], _with_warnings(valid[0]), valid[1], _with_warnings(valid[1]))
    else:
        raw_traces, raw_scores = parse_batch(body, max_items)
        results, traces, scores = validate_batch(raw_traces, raw_scores, body_needs_cleaning(body))

    trace_statuses, score_statuses, pending = store.ingest(project_id, traces, scores)

    for result in results:
        if result["status"] is not None:
            continue

        statuses = trace_statuses if result["type"] == "trace" else score_statuses
        result["status"] = statuses[result["id"]]
        if result["type"] == "score" and result["id"] in pending:
            result["warnings"].append("its trace is not stored yet; the score attaches when the trace arrives")

    counts = {status: sum(1 for result in results if result["status"] == status) for status in ("accepted", "duplicate", "rejected")}
    if counts["rejected"]:
        _log_rejections(project_id, counts["rejected"], next(result["error"] for result in results if result["status"] == "rejected"))
    return {"items": results, **counts}


_REJECTION_LOG_INTERVAL_S = 10.0
# {project id: (monotonic time of the last log line, rejections not logged since)}
_rejection_log_state: dict[int, tuple[float, int]] = {}
_rejection_log_lock = threading.Lock()


def _log_rejections(project_id: int, rejected: int, first_error: str) -> None:
    """Log rejected items at most once per interval and project, with the count held back."""
    now = time.monotonic()
    with _rejection_log_lock:
        last, held_back = _rejection_log_state.get(project_id, (-math.inf, 0))
        if now - last < _REJECTION_LOG_INTERVAL_S:
            _rejection_log_state[project_id] = (last, held_back + rejected)
            return

        _rejection_log_state[project_id] = (now, 0)

    logger.warning(
        "ingest for project %d rejected %d item(s) (plus %d since the last report); first reason: %s",
        project_id, rejected, held_back, first_error,
    )

"""`CTClient`: a small synchronous client for the CT server's JSON API.

It reads and scores traces on behalf of scripts, notebooks and evaluation jobs. Unlike the
tracing path it raises: every failure becomes a `KaizenError` subclass whose message names
the request that failed and what to do, so callers can catch one base class or react to
the specific kind.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, Iterator
from urllib.parse import quote

import httpx

from kaizen_sdk import _exporter
from kaizen_sdk._config import resolve_base_url
from kaizen_sdk._transport import Transport
from kaizen_sdk.errors import (
    AuthenticationError,
    InvalidRequestError,
    KaizenError,
    NotFoundError,
    ServerError,
)

logger = logging.getLogger("kaizen_sdk.client")

DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_PAGE_SIZE = 1000


def _detail(response: httpx.Response) -> str:
    """Return the server's explanation from a problem+json (or any JSON or text) error body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase

    if isinstance(body, dict):
        for key in ("detail", "title", "error", "message"):
            value = body.get(key)
            if value:
                return value if isinstance(value, str) else str(value)[:300]

    return str(body)[:300]


def _error_for(response: httpx.Response, what: str) -> KaizenError:
    status = response.status_code
    message = f"{what} failed with HTTP {status}: {_detail(response)}"
    try:
        body = response.json()
    except ValueError:
        body = response.text

    if status in (401, 403):
        return AuthenticationError(
            message + "; check the API key (api_key= or KAIZEN_API_KEY) and that it exists on this server",
            status_code=status,
            body=body,
        )
    if status == 404:
        return NotFoundError(message, status_code=status, body=body)
    if status in (400, 413, 422):
        return InvalidRequestError(message, status_code=status, body=body)

    return ServerError(message, status_code=status, body=body)


def _check_trace_id(trace_id: Any) -> str:
    if not isinstance(trace_id, str) or not trace_id.strip():
        raise InvalidRequestError(f"invalid trace_id {trace_id!r}: expected the trace's id string, e.g. result.ct_trace_id")

    return trace_id.strip()


class CTClient:
    """Synchronous client of a CT server; use it as a context manager or call `close()`.

    `api_key` and `base_url` default to `KAIZEN_API_KEY` and `KAIZEN_BASE_URL` (then
    http://localhost:8000). A missing key raises `AuthenticationError` here rather than on
    the first request.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        api_key = api_key or os.environ.get("KAIZEN_API_KEY") or None
        if not api_key:
            raise AuthenticationError("missing API key: pass CTClient(api_key=...) or set KAIZEN_API_KEY")

        try:
            self.base_url = resolve_base_url(base_url)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None

        self._transport = Transport(self.base_url, api_key, timeout=timeout, http_transport=http_transport)

    def __enter__(self) -> CTClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._transport.close()

    def __repr__(self) -> str:
        return f"CTClient(base_url={self.base_url!r})"

    def _request(self, method: str, path: str, what: str, *, params: dict | None = None, json: Any = None) -> Any:
        try:
            response = self._transport.request(method, path, params=params, json=json)
        except httpx.TimeoutException as exc:
            raise ServerError(f"{what} timed out talking to {self.base_url} ({type(exc).__name__}); is the CT server up?") from exc
        except httpx.TransportError as exc:
            raise ServerError(
                f"{what} failed: cannot reach the CT server at {self.base_url} ({type(exc).__name__}: {exc}); "
                "start it with `kaizen serve` or set KAIZEN_BASE_URL"
            ) from exc

        if response.status_code >= 400:
            raise _error_for(response, what)

        if response.status_code == 204 or not response.content:
            return None

        try:
            return response.json()
        except ValueError as exc:
            raise ServerError(
                f"{what} returned a body that is not JSON (HTTP {response.status_code}): {response.text[:200]!r}",
                status_code=response.status_code,
            ) from exc

    def score(
        self,
        trace_id: str,
        score: float,
        scored_by: str = "sdk",
        *,
        name: str | None = None,
        comment: str | None = None,
    ) -> dict:
        """Record a score in [0, 1] for a trace and return the server's response body.

        A trace made in this process moments ago may still be in the exporter's queue: on a
        404 the queue is flushed (for at most the request timeout) and the score sent once more.
        """
        trace_id = _check_trace_id(trace_id)
        if isinstance(score, bool) or not isinstance(score, (int, float)) or math.isnan(score) or not 0 <= score <= 1:
            raise InvalidRequestError(f"invalid score {score!r} for trace {trace_id}: expected a number from 0 to 1")
        if not isinstance(scored_by, str) or not scored_by.strip():
            raise InvalidRequestError(f"invalid scored_by {scored_by!r}: expected a non-empty string such as 'sdk' or 'human'")

        body: dict[str, Any] = {"score": float(score), "scored_by": scored_by}
        if name is not None:
            body["name"] = name
        if comment is not None:
            body["comment"] = comment

        path = f"/api/v1/traces/{quote(trace_id, safe='')}/score"
        what = f"scoring trace {trace_id}"
        try:
            return self._request("POST", path, what, json=body)
        except NotFoundError:
            exporter = _exporter.get_exporter()
            if exporter is None or exporter.stats()["queued"] == 0:
                raise
            logger.debug("trace %s not on the server yet; flushing the exporter before scoring again", trace_id)
            exporter.flush(timeout=DEFAULT_TIMEOUT_SECONDS)
            return self._request("POST", path, what, json=body)

    def get_trace(self, trace_id: str) -> dict:
        """Return one trace with its latest `score`, `scored_by` and the `scores` history."""
        trace_id = _check_trace_id(trace_id)
        return self._request("GET", f"/api/v1/traces/{quote(trace_id, safe='')}", f"getting trace {trace_id}")

    def list_traces(self, task: str | None = None, limit: int = 50, cursor: str | None = None) -> list[dict]:
        """Return up to `limit` traces, newest first, optionally of one task.

        `cursor` continues from an earlier page; `iter_traces()` follows the pages for you.
        """
        return self._list_page(task, limit, cursor)["items"]

    def iter_traces(self, task: str | None = None, page_size: int = 100) -> Iterator[dict]:
        """Yield every trace (of `task`, if given), newest first, fetching pages as needed."""
        cursor = None
        while True:
            page = self._list_page(task, page_size, cursor)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def _list_page(self, task: str | None, limit: int, cursor: str | None) -> dict:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidRequestError(f"invalid limit {limit!r}: expected a whole number from 1 to {MAX_PAGE_SIZE}")

        params: dict[str, Any] = {"limit": limit}
        if task is not None:
            params["task"] = task
        if cursor is not None:
            params["cursor"] = cursor

        what = "listing traces" + (f" of task {task!r}" if task is not None else "")
        page = self._request("GET", "/api/v1/traces", what, params=params)
        if not isinstance(page, dict) or not isinstance(page.get("items"), list):
            raise ServerError(f"{what} returned an unexpected body: {str(page)[:200]}")

        return page

    def list_tasks(self) -> list[dict]:
        """Return every task with its trace count, scored count and mean score."""
        body = self._request("GET", "/api/v1/tasks", "listing tasks")
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise ServerError(f"listing tasks returned an unexpected body: {str(body)[:200]}")

        return body["items"]

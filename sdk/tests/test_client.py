"""CTClient against an in-process API (httpx.MockTransport): requests, results and errors."""

from __future__ import annotations

import json

import httpx
import pytest

from kaizen_sdk import _exporter
from kaizen_sdk._config import Settings
from kaizen_sdk.client import CTClient
from kaizen_sdk.errors import (
    AuthenticationError,
    InvalidRequestError,
    KaizenError,
    NotFoundError,
    ServerError,
)

TRACE_ID = "123e4567-e89b-42d3-a456-426614174000"


def client_for(handler, **kwargs) -> CTClient:
    return CTClient(api_key="key-1", base_url="http://ct.test", http_transport=httpx.MockTransport(handler), **kwargs)


def problem(status: int, detail: str) -> httpx.Response:
    return httpx.Response(status, json={"title": "error", "status": status, "detail": detail}, headers={"Content-Type": "application/problem+json"})


@pytest.fixture(autouse=True)
def reset_global():
    yield
    _exporter.reset(0.5)


def test_score_posts_body_and_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"trace_id": TRACE_ID, "score": 0.5})

    with client_for(handler) as client:
        result = client.score(TRACE_ID, 0.5, "human", name="helpful", comment="ok")

    assert result == {"trace_id": TRACE_ID, "score": 0.5}
    assert seen[0].method == "POST"
    assert seen[0].url.path == f"/api/v1/traces/{TRACE_ID}/score"
    assert seen[0].headers["X-API-Key"] == "key-1"
    assert json.loads(seen[0].content) == {"score": 0.5, "scored_by": "human", "name": "helpful", "comment": "ok"}


def test_score_defaults_scored_by_sdk() -> None:
    bodies: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={})

    with client_for(handler) as client:
        client.score(TRACE_ID, 1)

    assert bodies == [{"score": 1.0, "scored_by": "sdk"}]


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), "0.5", True, None])
def test_score_out_of_range_rejected_locally(value) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    with client_for(handler) as client, pytest.raises(InvalidRequestError) as caught:
        client.score(TRACE_ID, value)

    assert repr(value) in str(caught.value)
    assert "0 to 1" in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (413, InvalidRequestError),
        (422, InvalidRequestError),
        (500, ServerError),
        (503, ServerError),
    ],
)
def test_status_maps_to_error(status: int, error_class: type) -> None:
    with client_for(lambda request: problem(status, "server detail here")) as client:
        with pytest.raises(error_class) as caught:
            client.get_trace(TRACE_ID)

    assert isinstance(caught.value, KaizenError)
    assert caught.value.status_code == status
    assert f"getting trace {TRACE_ID}" in str(caught.value)
    assert "server detail here" in str(caught.value)


def test_auth_error_says_what_to_check() -> None:
    with client_for(lambda request: problem(401, "invalid API key")) as client:
        with pytest.raises(AuthenticationError, match="KAIZEN_API_KEY"):
            client.list_tasks()


def test_connection_error_is_server_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with client_for(handler) as client, pytest.raises(ServerError) as caught:
        client.list_tasks()

    assert "http://ct.test" in str(caught.value)
    assert caught.value.status_code is None


def test_timeout_is_server_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    with client_for(handler) as client, pytest.raises(ServerError, match="timed out"):
        client.get_trace(TRACE_ID)


def test_non_json_body_is_server_error() -> None:
    with client_for(lambda request: httpx.Response(200, text="<html>")) as client:
        with pytest.raises(ServerError, match="not JSON"):
            client.get_trace(TRACE_ID)


def test_missing_key_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAIZEN_API_KEY", raising=False)

    with pytest.raises(AuthenticationError, match="KAIZEN_API_KEY"):
        CTClient()


def test_key_and_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIZEN_API_KEY", "env-key")
    monkeypatch.setenv("KAIZEN_BASE_URL", "http://127.0.0.1:4321/")

    with CTClient() as client:
        assert client.base_url == "http://127.0.0.1:4321"


def test_invalid_base_url_raises() -> None:
    with pytest.raises(InvalidRequestError, match="http:// or https://"):
        CTClient(api_key="k", base_url="localhost")


def test_invalid_trace_id_raises() -> None:
    with client_for(lambda request: httpx.Response(200, json={})) as client:
        with pytest.raises(InvalidRequestError, match="trace_id"):
            client.get_trace("")


def test_list_traces_passes_filters() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": [{"id": TRACE_ID}], "next_cursor": None})

    with client_for(handler) as client:
        items = client.list_traces(task="SUMMARIZE_PROMPT", limit=10)

    assert items == [{"id": TRACE_ID}]
    assert seen[0].url.params["task"] == "SUMMARIZE_PROMPT"
    assert seen[0].url.params["limit"] == "10"


def test_list_traces_rejects_bad_limit() -> None:
    with client_for(lambda request: httpx.Response(200, json={"items": []})) as client:
        with pytest.raises(InvalidRequestError, match="limit"):
            client.list_traces(limit=0)


def test_iter_traces_follows_cursor() -> None:
    pages = {
        None: {"items": [{"id": "a"}, {"id": "b"}], "next_cursor": "c1"},
        "c1": {"items": [{"id": "c"}], "next_cursor": None},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("cursor")])

    with client_for(handler) as client:
        ids = [trace["id"] for trace in client.iter_traces(page_size=2)]

    assert ids == ["a", "b", "c"]


def test_list_tasks_returns_items() -> None:
    tasks = [{"task": "T", "trace_count": 3, "scored_count": 1, "mean_score": 0.5}]

    with client_for(lambda request: httpx.Response(200, json={"items": tasks})) as client:
        assert client.list_tasks() == tasks


def test_score_flushes_queue_on_not_found() -> None:
    stored: set[str] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/ingest":
            stored.update(trace["id"] for trace in json.loads(request.content)["traces"])
            return httpx.Response(200, json={"items": []})
        if TRACE_ID in stored:
            return httpx.Response(200, json={"trace_id": TRACE_ID})
        return problem(404, "trace not found")

    exporter = _exporter.configure(
        Settings(api_key="key-1", base_url="http://ct.test", flush_interval=60),
        http_transport=httpx.MockTransport(handler),
    )
    exporter.enqueue_trace({"id": TRACE_ID, "task": "T"})

    with client_for(handler) as client:
        assert client.score(TRACE_ID, 1.0) == {"trace_id": TRACE_ID}


def test_score_unknown_trace_raises_not_found() -> None:
    with client_for(lambda request: problem(404, f"trace {TRACE_ID} not found")) as client:
        with pytest.raises(NotFoundError, match=TRACE_ID):
            client.score(TRACE_ID, 1.0)


def test_repr_hides_key() -> None:
    with client_for(lambda request: httpx.Response(200, json={})) as client:
        assert "key-1" not in repr(client)


def test_ids_are_quoted_in_path() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return problem(404, "nope")

    with client_for(handler) as client, pytest.raises(NotFoundError):
        client.get_trace("../tasks")

    assert seen[0].url.raw_path.startswith(b"/api/v1/traces/..%2Ftasks")

"""Bad input: each case gets a clear error or warning and loses nothing already stored."""

from __future__ import annotations

import json
import uuid

import pytest
from server_test_data import make_score, make_trace

TEXT_FIELDS = ["task", "prompt_text", "response_text", "model", "error", "source_variable", "source_file", "detection_rule", "library", "template"]


def post_raw(api, body: bytes, path: str = "/api/v1/ingest"):
    return api.post(path, content=body, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_nul_in_text_field_replaced(api, field):
    trace = make_trace(**{field: "before\x00after"})
    result = api.ingest([trace])
    item = result["items"][0]
    assert item["status"] == "accepted"
    assert any(f"'{field}'" in warning and "U+FFFD" in warning for warning in item["warnings"])

    stored = api.get(f"/api/v1/traces/{trace['id']}").json()
    assert stored[field] == "before\ufffdafter"


def test_nul_in_nested_json_replaced(api):
    trace = make_trace(
        messages=[{"role": "user", "content": "a\x00b"}],
        inputs={"key\x00": "v\x00"},
        parameters={"stop": ["\x00"]},
    )
    item = api.ingest([trace])["items"][0]
    assert item["status"] == "accepted"
    assert len(item["warnings"]) == 3

    stored = api.get(f"/api/v1/traces/{trace['id']}").json()
    assert stored["messages"][0]["content"] == "a\ufffdb"
    assert stored["inputs"] == {"key\ufffd": "v\ufffd"}
    assert stored["parameters"] == {"stop": ["\ufffd"]}


@pytest.mark.parametrize("field", ["prompt_text", "response_text", "task", "error"])
def test_lone_surrogate_replaced(api, field):
    trace = make_trace(**{field: "x\ud800y"})
    # ensure_ascii keeps the lone surrogate as the JSON escape \ud800, as a buggy client sends it.
    response = post_raw(api, json.dumps({"traces": [trace]}, ensure_ascii=True).encode())
    assert response.status_code == 200, response.text
    item = response.json()["items"][0]
    assert item["status"] == "accepted"
    assert any(f"'{field}'" in warning for warning in item["warnings"])

    stored = api.get(f"/api/v1/traces/{trace['id']}").json()
    assert stored[field] == "x\ufffdy"


def test_lone_surrogate_in_score_replaced(api):
    trace = make_trace()
    score = make_score(trace["id"], comment="ok\udfff", scored_by="me\x00")
    response = post_raw(api, json.dumps({"traces": [trace], "scores": [score]}, ensure_ascii=True).encode())
    assert response.status_code == 200
    assert response.json()["items"][1]["status"] == "accepted"

    stored = api.get(f"/api/v1/traces/{trace['id']}").json()
    assert stored["scores"][0]["comment"] == "ok\ufffd"
    assert stored["scored_by"] == "me\ufffd"


def test_nul_in_score_endpoint_rejected(api):
    trace = make_trace()
    api.ingest([trace])
    response = api.post(f"/api/v1/traces/{trace['id']}/score", json={"score": 0.5, "scored_by": "a\x00b"})
    assert response.status_code == 422
    assert "scored_by" in response.json()["detail"]


def test_two_megabyte_prompt_stored(api):
    prompt = "x" * (2 * 1024 * 1024)
    trace = make_trace(prompt_text=prompt, messages=[{"role": "user", "content": prompt}])
    assert api.ingest([trace])["items"][0]["status"] == "accepted"

    stored = api.get(f"/api/v1/traces/{trace['id']}").json()
    assert stored["prompt_text"] == prompt
    assert stored["messages"][0]["content"] == prompt


def test_naive_timestamp_is_utc(api):
    trace = make_trace(started_at="2026-03-01T12:34:56.789")
    api.ingest([trace])
    stored = api.get(f"/api/v1/traces/{trace['id']}").json()
    assert stored["started_at"] == "2026-03-01T12:34:56.789000+00:00"


def test_other_zone_normalised_once(api):
    trace = make_trace(task="ZONES", started_at="2026-03-01T12:00:00+05:00")
    api.ingest([trace])
    again = api.ingest([{**trace, "started_at": "2026-03-01T07:00:00Z"}])
    assert again["items"][0]["status"] == "duplicate"

    stored = api.get(f"/api/v1/traces/{trace['id']}").json()
    assert stored["started_at"] == "2026-03-01T07:00:00+00:00"
    listed = api.get("/api/v1/traces", params={"task": "ZONES"}).json()["items"]
    assert len(listed) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("latency_ms", -1.0),
        ("latency_ms", 1e12),
        ("prompt_tokens", -5),
        ("completion_tokens", 10**12),
        ("total_tokens", -1),
        ("source_line", -3),
    ],
)
def test_absurd_numbers_rejected(api, field, value):
    bad = make_trace(**{field: value})
    good = make_trace()
    result = api.ingest([bad, good])
    rejected, accepted = result["items"]
    assert rejected["status"] == "rejected"
    assert f"'{field}'" in rejected["error"]
    assert rejected["id"] == bad["id"]
    assert accepted["status"] == "accepted"
    assert api.get(f"/api/v1/traces/{bad['id']}").status_code == 404


def test_nan_literal_is_400(api):
    body = json.dumps({"traces": [make_trace()]}).replace('"latency_ms": 250.0', '"latency_ms": NaN').encode()
    response = post_raw(api, body)
    assert response.status_code == 400
    assert "NaN" in response.json()["detail"]


def test_infinite_number_in_json_field_rejected(api):
    body = json.dumps({"traces": [make_trace(parameters={"temperature": 0.5})]}).replace("0.5", "1e999").encode()
    item = post_raw(api, body).json()["items"][0]
    assert item["status"] == "rejected"
    assert "parameters" in item["error"]


def test_deep_nesting_rejected(api):
    nested: object = "leaf"
    for _ in range(100):
        nested = {"a": nested}
    item = api.ingest([make_trace(inputs=nested)])["items"][0]
    assert item["status"] == "rejected"
    assert "nested" in item["error"]


@pytest.mark.parametrize("place", ["messages", "inputs", "unknown_field"])
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_literal_in_json_value_is_400(api, place, literal):
    trace = make_trace()
    if place == "messages":
        trace["messages"] = [{"role": "user", "content": "PLACEHOLDER"}]
    elif place == "inputs":
        trace["inputs"] = {"n": "PLACEHOLDER"}
    else:
        trace["unknown_field"] = "PLACEHOLDER"
    body = json.dumps({"traces": [trace]}).replace('"PLACEHOLDER"', literal).encode()
    response = post_raw(api, body)
    assert response.status_code == 400
    assert literal.lstrip("-") in response.json()["detail"]


def nested_dicts(levels: int) -> dict:
    nested: object = "leaf"
    for _ in range(levels):
        nested = {"a": nested}
    return nested


def test_nesting_at_limit_accepted(api):
    trace = make_trace(inputs=nested_dicts(64))
    item = api.ingest([trace])["items"][0]
    assert item["status"] == "accepted"
    assert api.get(f"/api/v1/traces/{trace['id']}").json()["inputs"] == trace["inputs"]


def test_nesting_over_limit_rejected(api):
    bad, good = make_trace(inputs=nested_dicts(65)), make_trace()
    items = api.ingest([bad, good])["items"]
    assert items[0]["status"] == "rejected"
    assert "'inputs'" in items[0]["error"]
    assert "nested" in items[0]["error"]
    assert items[1]["status"] == "accepted"


def test_unknown_item_field_ignored_with_warning(api):
    trace = make_trace(sdk_version="9.9")
    item = api.ingest([trace])["items"][0]
    assert item["status"] == "accepted"
    assert item["warnings"] == ["unknown field 'sdk_version' ignored"]


def test_unknown_top_level_field_is_422(api):
    response = api.post("/api/v1/ingest", json={"trace": [make_trace()]})
    assert response.status_code == 422
    assert "'trace'" in response.json()["detail"]


def test_unknown_score_body_field_is_422(api):
    trace = make_trace()
    api.ingest([trace])
    response = api.post(f"/api/v1/traces/{trace['id']}/score", json={"score": 0.5, "scored_by": "a", "commnet": "typo"})
    assert response.status_code == 422
    assert "commnet" in response.json()["detail"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("latency_ms", "fast"),
        ("prompt_tokens", "12"),
        ("prompt_tokens", 12.5),
        ("prompt_tokens", True),
        ("messages", "hello"),
        ("messages", ["hello"]),
        ("started_at", "yesterday"),
        ("started_at", "0001-01-01T00:00:00"),
        ("incomplete", "yes"),
        ("task", 42),
        ("task", ""),
        ("id", "not-a-uuid"),
        ("inputs", [1, 2]),
    ],
)
def test_wrong_types_rejected(api, field, value):
    trace = make_trace(**{field: value})
    item = api.ingest([trace])["items"][0]
    assert item["status"] == "rejected"
    assert f"field '{field}" in item["error"]


def test_bad_timestamp_error_names_format(api):
    item = api.ingest([make_trace(started_at="yesterday")])["items"][0]
    assert item["status"] == "rejected"
    assert "field 'started_at' = 'yesterday'" in item["error"]
    assert "ISO 8601" in item["error"]


def test_missing_required_fields_rejected(api):
    item = api.ingest([{"id": str(uuid.uuid4())}])["items"][0]
    assert item["status"] == "rejected"
    for field in ("task", "latency_ms", "started_at"):
        assert f"'{field}' is missing" in item["error"]


def test_non_object_items_rejected(api):
    result = api.ingest(["a string", 5], [None])
    assert [item["status"] for item in result["items"]] == ["rejected", "rejected", "rejected"]
    assert "JSON object" in result["items"][0]["error"]


@pytest.mark.parametrize(
    "body",
    [{"traces": "x"}, {"scores": {}}, [], "text", 5],
)
def test_wrong_body_shape_is_422(api, body):
    response = api.post("/api/v1/ingest", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"score": 1.5}, "score"),
        ({"score": -0.1}, "score"),
        ({"score": "0.5"}, "score"),
        ({"scored_by": ""}, "scored_by"),
        ({"trace_id": "nope"}, "trace_id"),
        ({"created_at": "tomorrow"}, "created_at"),
    ],
)
def test_bad_scores_rejected(api, overrides, field):
    score = {**make_score(str(uuid.uuid4())), **overrides}
    item = api.ingest(scores=[score])["items"][0]
    assert item["status"] == "rejected"
    assert f"'{field}'" in item["error"]


def test_unknown_task_is_404(api):
    response = api.get("/api/v1/tasks/NO_SUCH_TASK")
    assert response.status_code == 404
    assert "NO_SUCH_TASK" in response.json()["detail"]


def test_revoked_key_ingest_stores_nothing(http, store, api):
    key, record = store.create_key(api.project, "revoked")
    store.revoke_key(str(record.id))
    trace = make_trace()
    response = http.post("/api/v1/ingest", json={"traces": [trace]}, headers={"X-API-Key": key})
    assert response.status_code == 401
    assert api.get(f"/api/v1/traces/{trace['id']}").status_code == 404


@pytest.mark.parametrize("body", [b"{", b'{"traces": [}', b"\xff\xfe", b""])
def test_malformed_json_is_400(api, body):
    response = post_raw(api, body)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]


def test_malformed_json_on_score_is_400(api):
    trace = make_trace()
    api.ingest([trace])
    response = post_raw(api, b'{"score": ', f"/api/v1/traces/{trace['id']}/score")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]


def test_html_stored_verbatim(api):
    html = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    trace = make_trace(prompt_text=html, response_text=html, messages=[{"role": "user", "content": html}])
    api.ingest([trace])
    stored = api.get(f"/api/v1/traces/{trace['id']}").json()
    assert stored["prompt_text"] == html
    assert stored["response_text"] == html
    assert stored["messages"][0]["content"] == html


def test_too_many_items_is_413(api, app):
    limit = app.state.settings.max_batch_items
    traces = [make_trace() for _ in range(limit + 1)]
    response = api.post("/api/v1/ingest", json={"traces": traces})
    assert response.status_code == 413
    assert str(limit) in response.json()["detail"]
    assert api.get(f"/api/v1/traces/{traces[0]['id']}").status_code == 404


def test_too_many_bytes_is_413(api, app):
    limit = app.state.settings.max_request_bytes
    trace = make_trace(prompt_text="y" * (limit + 10))
    response = api.post("/api/v1/ingest", json={"traces": [trace]})
    assert response.status_code == 413
    assert str(limit) in response.json()["detail"]


def test_too_many_bytes_chunked_is_413(api, app):
    limit = app.state.settings.max_request_bytes
    chunk = b" " * (1024 * 1024)

    def body():
        yield b'{"traces": []'
        for _ in range(limit // len(chunk) + 2):
            yield chunk
        yield b"}"

    response = api.post("/api/v1/ingest", content=body(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert str(limit) in response.json()["detail"]


def test_nul_in_query_is_422(api):
    response = api.get("/api/v1/traces", params={"task": "a\x00b"})
    assert response.status_code == 422
    assert "'task'" in response.json()["detail"]


def test_bad_query_timestamp_names_format(api):
    response = api.get("/api/v1/traces", params={"since": "last week"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "query field 'since' = 'last week'" in detail
    assert "ISO 8601" in detail


def test_bad_query_values_are_422(api):
    for params, field in (
        ({"min_score": 2}, "min_score"),
        ({"since": "noon"}, "since"),
        ({"min_score": 0.9, "max_score": 0.1}, "min_score"),
        ({"prompt_version": "zz"}, "prompt_version"),
        ({"scored": "maybe"}, "scored"),
    ):
        response = api.get("/api/v1/traces", params=params)
        assert response.status_code == 422, params
        assert field in response.json()["detail"], params

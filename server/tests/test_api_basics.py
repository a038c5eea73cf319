"""The core path: ingest, read back, score, list, tasks, health, auth."""

from __future__ import annotations

import uuid

from server_test_data import make_score, make_trace

TRACE_FIELDS = {
    "id", "task", "messages", "prompt_text", "response_text", "model", "prompt_tokens", "completion_tokens",
    "total_tokens", "latency_ms", "started_at", "error", "source_variable", "source_file", "source_line",
    "score", "scored_by",
}


def test_health_needs_no_key(http):
    response = http.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_ingest_then_get_trace(api):
    trace = make_trace()
    result = api.ingest([trace])
    assert result["items"] == [{"type": "trace", "id": trace["id"], "status": "accepted", "error": None, "warnings": []}]

    stored = api.get(f"/api/v1/traces/{trace['id']}").json()
    assert TRACE_FIELDS <= set(stored)
    for field in ("task", "messages", "prompt_text", "response_text", "model", "prompt_tokens", "completion_tokens",
                  "total_tokens", "latency_ms", "source_variable", "source_file", "source_line", "inputs",
                  "template", "library", "parameters", "detection_rule", "incomplete"):
        assert stored[field] == trace[field], field
    assert stored["score"] is None
    assert stored["scored_by"] is None
    assert stored["scores"] == []
    assert len(stored["prompt_version"]) == 64


def test_ingest_is_idempotent(api):
    trace = make_trace()
    score = make_score(trace["id"], 0.5)
    api.ingest([trace], [score])
    again = api.ingest([trace], [score])
    assert [item["status"] for item in again["items"]] == ["duplicate", "duplicate"]
    assert again["duplicate"] == 2

    listed = api.get("/api/v1/traces", params={"task": trace["task"]}).json()["items"]
    assert [item["id"] for item in listed] == [trace["id"]]
    assert len(api.get(f"/api/v1/traces/{trace['id']}").json()["scores"]) == 1


def test_same_id_twice_in_one_batch(api):
    trace = make_trace()
    result = api.ingest([trace, trace])
    assert [item["status"] for item in result["items"]] == ["accepted", "duplicate"]


def test_score_endpoint_updates_latest(api):
    trace = make_trace()
    api.ingest([trace])
    first = api.post(f"/api/v1/traces/{trace['id']}/score", json={"score": 0.2, "scored_by": "alice"})
    assert first.status_code == 200, first.text
    second = api.post(f"/api/v1/traces/{trace['id']}/score", json={"score": 0.9, "scored_by": "bob", "name": "helpful", "comment": "ok"})
    assert second.status_code == 200

    stored = api.get(f"/api/v1/traces/{trace['id']}").json()
    assert stored["score"] == 0.9
    assert stored["scored_by"] == "bob"
    assert [(item["score"], item["scored_by"]) for item in stored["scores"]] == [(0.2, "alice"), (0.9, "bob")]
    assert stored["scores"][1]["name"] == "helpful"
    assert stored["scores"][1]["comment"] == "ok"


def test_score_unknown_trace_is_404(api):
    response = api.post(f"/api/v1/traces/{uuid.uuid4()}/score", json={"score": 0.5, "scored_by": "alice"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "not found" in response.json()["detail"]


def test_score_out_of_range_is_422(api):
    trace = make_trace()
    api.ingest([trace])
    response = api.post(f"/api/v1/traces/{trace['id']}/score", json={"score": 1.5, "scored_by": "alice"})
    assert response.status_code == 422
    assert "score" in response.json()["detail"]
    assert "1.5" in response.json()["detail"]


def test_score_before_trace_attaches(api):
    trace = make_trace()
    early = make_score(trace["id"], 0.25)
    result = api.ingest(scores=[early])
    assert result["items"][0]["status"] == "accepted"
    assert "not stored yet" in result["items"][0]["warnings"][0]

    api.ingest([trace])
    stored = api.get(f"/api/v1/traces/{trace['id']}").json()
    assert stored["score"] == 0.25
    assert [item["id"] for item in stored["scores"]] == [early["id"]]
    tasks = api.get("/api/v1/tasks").json()["items"]
    assert tasks[0]["scored_count"] == 1
    assert tasks[0]["mean_score"] == 0.25


def test_get_unknown_trace_is_404(api):
    response = api.get(f"/api/v1/traces/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["status"] == 404


def test_get_trace_with_bad_id_is_422(api):
    response = api.get("/api/v1/traces/not-a-uuid")
    assert response.status_code == 422
    assert "not-a-uuid" in response.json()["detail"]


def test_list_newest_first_with_cursor(api):
    traces = [make_trace(task="PAGED", started_at=f"2026-03-01T10:00:{second:02d}Z") for second in range(7)]
    api.ingest(traces)
    seen = []
    cursor = None
    while True:
        params = {"task": "PAGED", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/api/v1/traces", params=params).json()
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        assert page["has_more"] == (cursor is not None)
        if cursor is None:
            break

    assert seen == [trace["id"] for trace in reversed(traces)]


def test_list_rejects_limit_over_max(api):
    response = api.get("/api/v1/traces", params={"limit": 5000})
    assert response.status_code == 422
    assert "limit" in response.json()["detail"]


def test_list_rejects_bad_cursor(api):
    response = api.get("/api/v1/traces", params={"cursor": "garbage"})
    assert response.status_code == 422
    assert "cursor" in response.json()["detail"]


def test_tasks_counts_and_mean(api):
    a1, a2, b1 = make_trace(task="A"), make_trace(task="A"), make_trace(task="B")
    api.ingest([a1, a2, b1], [make_score(a1["id"], 1.0), make_score(a2["id"], 0.5)])
    items = {item["task"]: item for item in api.get("/api/v1/tasks").json()["items"]}
    assert set(items) == {"A", "B"}
    assert items["A"]["trace_count"] == 2
    assert items["A"]["scored_count"] == 2
    assert items["A"]["mean_score"] == 0.75
    assert items["B"]["trace_count"] == 1
    assert items["B"]["mean_score"] is None


def test_bearer_auth_works(http, api):
    response = http.get("/api/v1/tasks", headers={"Authorization": f"Bearer {api.key}"})
    assert response.status_code == 200


def test_missing_key_is_401(http):
    response = http.get("/api/v1/tasks")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "X-API-Key" in response.json()["detail"]


def test_wrong_key_is_401(http):
    response = http.get("/api/v1/tasks", headers={"X-API-Key": "kz_nope"})
    assert response.status_code == 401
    assert "invalid API key" in response.json()["detail"]


def test_revoked_key_is_401(http, store, api):
    key, record = store.create_key(api.project, "to revoke")
    assert http.get("/api/v1/tasks", headers={"X-API-Key": key}).status_code == 200
    store.revoke_key(str(record.id))
    response = http.get("/api/v1/tasks", headers={"X-API-Key": key})
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_openapi_document_lists_endpoints(http):
    document = http.get("/openapi.json").json()
    for path in ("/api/v1/ingest", "/api/v1/traces", "/api/v1/traces/{trace_id}", "/api/v1/traces/{trace_id}/score", "/api/v1/tasks", "/health"):
        assert path in document["paths"], path
    assert "IngestRequest" in document["components"]["schemas"]
    assert http.get("/docs").status_code == 200

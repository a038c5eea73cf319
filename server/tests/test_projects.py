"""Projects keep their data apart: a key reads, scores and writes only its own project."""

from __future__ import annotations

import uuid

import pytest
from server_test_data import ApiClient, make_score, make_trace


@pytest.fixture
def other(http, store) -> ApiClient:
    project = f"other-{uuid.uuid4().hex[:10]}"
    key, _ = store.create_key(project, "other")
    return ApiClient(http=http, key=key, project=project)


def test_same_trace_id_two_projects(api, other):
    trace_id = str(uuid.uuid4())
    first = api.ingest([make_trace(id=trace_id, task="MINE", prompt_text="mine")])
    second = other.ingest([make_trace(id=trace_id, task="THEIRS", prompt_text="theirs")])
    assert first["items"][0]["status"] == "accepted"
    assert second["items"][0]["status"] == "accepted"

    assert api.get(f"/api/v1/traces/{trace_id}").json()["prompt_text"] == "mine"
    assert other.get(f"/api/v1/traces/{trace_id}").json()["prompt_text"] == "theirs"


def test_other_project_cannot_read(api, other):
    trace = make_trace(task="PRIVATE")
    api.ingest([trace])
    assert other.get(f"/api/v1/traces/{trace['id']}").status_code == 404
    assert other.get("/api/v1/traces").json()["items"] == []
    assert other.get("/api/v1/tasks").json()["items"] == []
    assert other.get("/api/v1/tasks/PRIVATE").status_code == 404
    assert other.get("/api/v1/traces/export").text == ""


def test_other_project_cannot_score(api, other):
    trace = make_trace()
    api.ingest([trace])
    response = other.post(f"/api/v1/traces/{trace['id']}/score", json={"score": 0.0, "scored_by": "mallory"})
    assert response.status_code == 404

    # Through ingest the score is kept in the other project, waiting for a trace of its own.
    other.ingest(scores=[make_score(trace["id"], 0.0, scored_by="mallory")])
    stored = api.get(f"/api/v1/traces/{trace['id']}").json()
    assert stored["score"] is None
    assert stored["scores"] == []


def test_other_project_cannot_overwrite(api, other):
    trace = make_trace(prompt_text="original")
    api.ingest([trace])
    other.ingest([{**trace, "prompt_text": "overwritten"}])
    assert api.get(f"/api/v1/traces/{trace['id']}").json()["prompt_text"] == "original"


def test_project_endpoint_names_project(api):
    body = api.get("/api/v1/project").json()
    assert body["project"] == api.project
    assert body["key_name"] == "tests"
    assert api.key.startswith(body["key_prefix"])

"""Filters, export, prompt versions, latency percentiles and time series."""

from __future__ import annotations

import json

from server_test_data import make_score, make_trace


def ids(response) -> list[str]:
    return [item["id"] for item in response.json()["items"]]


def test_trace_filters(api):
    ok = make_trace(task="F", model="m-1", started_at="2026-02-01T10:00:00Z", prompt_text="about cats")
    failed = make_trace(task="F", model="m-2", started_at="2026-02-02T10:00:00Z", error="RateLimitError: slow down", response_text=None)
    scored = make_trace(task="F", model="m-1", started_at="2026-02-03T10:00:00Z", response_text="Dogs bark")
    other_task = make_trace(task="G", started_at="2026-02-04T10:00:00Z")
    api.ingest([ok, failed, scored, other_task], [make_score(scored["id"], 0.8), make_score(ok["id"], 0.2)])

    def listed(**params):
        return ids(api.get("/api/v1/traces", params={"task": "F", **params}))

    assert listed() == [scored["id"], failed["id"], ok["id"]]
    assert listed(model="m-1") == [scored["id"], ok["id"]]
    assert listed(has_error="true") == [failed["id"]]
    assert listed(has_error="false") == [scored["id"], ok["id"]]
    assert listed(scored="true") == [scored["id"], ok["id"]]
    assert listed(scored="false") == [failed["id"]]
    assert listed(min_score=0.5) == [scored["id"]]
    assert listed(max_score=0.5) == [ok["id"]]
    assert listed(since="2026-02-02T00:00:00Z") == [scored["id"], failed["id"]]
    assert listed(until="2026-02-02T00:00:00Z") == [ok["id"]]
    assert listed(q="CATS") == [ok["id"]]
    assert listed(q="dogs") == [scored["id"]]
    assert listed(q="%") == []
    assert ids(api.get("/api/v1/traces")) == [other_task["id"], scored["id"], failed["id"], ok["id"]]


def test_prompt_version_filter_and_figures(api):
    old = [make_trace(task="V", template="Old {x}", latency_ms=100.0) for _ in range(3)]
    new = [make_trace(task="V", template="New {x}", latency_ms=300.0) for _ in range(2)]
    untemplated = make_trace(task="V", template=None)
    api.ingest(old + new + [untemplated], [make_score(old[0]["id"], 0.0), make_score(new[0]["id"], 1.0), make_score(new[1]["id"], 0.5)])

    detail = api.get("/api/v1/tasks/V").json()
    assert detail["trace_count"] == 6
    versions = detail["prompt_versions"]
    templates = [version["template"] for version in versions]
    assert sorted(templates[:2]) == ["New {x}", "Old {x}"]
    assert templates[2] is None
    by_template = {version["template"]: version for version in versions}
    assert by_template["Old {x}"]["trace_count"] == 3
    assert by_template["Old {x}"]["mean_score"] == 0.0
    assert by_template["New {x}"]["mean_score"] == 0.75
    assert by_template["New {x}"]["p50_latency_ms"] == 300.0
    assert by_template[None]["trace_count"] == 1

    new_hash = by_template["New {x}"]["prompt_version"]
    assert sorted(ids(api.get("/api/v1/traces", params={"prompt_version": new_hash[:12]}))) == sorted(t["id"] for t in new)
    tasks = api.get("/api/v1/tasks").json()["items"]
    assert tasks[0]["prompt_version_count"] == 2


def test_latency_percentiles_close(api):
    latencies = [float(value) for value in range(1, 101)]
    api.ingest([make_trace(task="P", latency_ms=value) for value in latencies])
    task = api.get("/api/v1/tasks").json()["items"][0]
    assert abs(task["p50_latency_ms"] - 50) / 50 < 0.03
    assert abs(task["p95_latency_ms"] - 95) / 95 < 0.03
    assert task["mean_latency_ms"] == 50.5


def test_task_figures(api):
    traces = [
        make_trace(task="T", prompt_tokens=10, completion_tokens=5, total_tokens=15, started_at="2026-01-01T10:00:00Z"),
        make_trace(task="T", prompt_tokens=None, completion_tokens=None, total_tokens=None, error="ValueError: x", started_at="2026-01-02T10:00:00Z"),
    ]
    api.ingest(traces)
    task = api.get("/api/v1/tasks").json()["items"][0]
    assert task["trace_count"] == 2
    assert task["error_count"] == 1
    assert task["error_rate"] == 0.5
    assert task["prompt_tokens"] == 10
    assert task["total_tokens"] == 15
    assert task["first_seen"] == "2026-01-01T10:00:00+00:00"
    assert task["last_seen"] == "2026-01-02T10:00:00+00:00"


def test_task_window(api):
    api.ingest([
        make_trace(task="W", started_at="2026-01-01T10:15:00Z"),
        make_trace(task="W", started_at="2026-01-03T10:15:00Z"),
    ])
    body = api.get("/api/v1/tasks", params={"since": "2026-01-02T00:00:00Z"}).json()
    assert body["items"][0]["trace_count"] == 1
    body = api.get("/api/v1/tasks", params={"until": "2026-01-01T10:20:00Z"}).json()
    assert body["items"][0]["trace_count"] == 1
    assert body["window"]["until"] == "2026-01-01T11:00:00+00:00"
    empty = api.get("/api/v1/tasks/W", params={"since": "2027-01-01T00:00:00Z"})
    assert empty.status_code == 200
    assert empty.json()["trace_count"] == 0


def test_rescoring_updates_mean(api):
    trace = make_trace(task="R")
    api.ingest([trace], [make_score(trace["id"], 0.0, created_at="2026-01-01T00:00:00Z")])
    api.ingest(scores=[make_score(trace["id"], 1.0, created_at="2026-01-02T00:00:00Z")])
    # An older score arriving late does not replace the latest.
    api.ingest(scores=[make_score(trace["id"], 0.3, created_at="2025-12-31T00:00:00Z")])
    task = api.get("/api/v1/tasks").json()["items"][0]
    assert task["scored_count"] == 1
    assert task["mean_score"] == 1.0
    stored = api.get(f"/api/v1/traces/{trace['id']}").json()
    assert stored["score"] == 1.0
    assert len(stored["scores"]) == 3


def test_timeseries_hour_and_day(api):
    api.ingest([
        make_trace(task="S", started_at="2026-01-01T10:15:00Z", latency_ms=100.0),
        make_trace(task="S", started_at="2026-01-01T10:45:00Z", latency_ms=300.0),
        make_trace(task="S", started_at="2026-01-01T12:00:00Z", latency_ms=200.0),
        make_trace(task="S", started_at="2026-01-02T01:00:00Z", latency_ms=200.0),
    ])
    hourly = api.get("/api/v1/timeseries", params={"task": "S", "interval": "hour", "since": "2026-01-01T00:00:00Z"}).json()
    assert [(point["start"], point["trace_count"]) for point in hourly["points"]] == [
        ("2026-01-01T10:00:00+00:00", 2),
        ("2026-01-01T12:00:00+00:00", 1),
        ("2026-01-02T01:00:00+00:00", 1),
    ]
    assert hourly["points"][0]["mean_latency_ms"] == 200.0
    daily = api.get("/api/v1/timeseries", params={"task": "S", "interval": "day", "since": "2026-01-01T00:00:00Z"}).json()
    assert [(point["start"], point["trace_count"]) for point in daily["points"]] == [
        ("2026-01-01T00:00:00+00:00", 3),
        ("2026-01-02T00:00:00+00:00", 1),
    ]


def test_export_jsonl(api):
    trace = make_trace(task="E", inputs={"ticket": "t-1"})
    api.ingest([trace, make_trace(task="OTHER")], [make_score(trace["id"], 0.4)])
    response = api.get("/api/v1/traces/export", params={"task": "E"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert len(lines) == 1
    assert lines[0]["id"] == trace["id"]
    assert lines[0]["inputs"] == {"ticket": "t-1"}
    assert lines[0]["template"] == trace["template"]
    assert [score["score"] for score in lines[0]["scores"]] == [0.4]


def test_export_pages_through_everything(api, monkeypatch):
    from kaizen_server.store import queries

    monkeypatch.setattr(queries, "EXPORT_PAGE_SIZE", 3)
    traces = [make_trace(task="BIG", started_at=f"2026-01-01T00:00:{second:02d}Z") for second in range(8)]
    api.ingest(traces)
    lines = api.get("/api/v1/traces/export", params={"task": "BIG"}).text.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [trace["id"] for trace in reversed(traces)]

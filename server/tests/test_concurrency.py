"""Concurrent writers: retried batches, racing duplicates, and scores racing their traces."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from server_test_data import make_score, make_trace

from kaizen_server.store import TraceFilter, Window
from kaizen_server.wire import ScoreIn, TraceIn


def test_racing_duplicates_store_once(store):
    project_id = store.create_key(f"race-{uuid.uuid4().hex[:8]}")[1].project_id
    traces = [TraceIn.model_validate(make_trace(task="RACE")) for _ in range(50)]

    def send(offset: int):
        batch = traces[offset:] + traces[:offset]
        return store.ingest(project_id, batch, [])[0]

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(send, range(0, 60, 10)))

    accepted = sum(1 for result in results for status in result.values() if status == "accepted")
    assert accepted == 50
    page, _ = store.list_traces(project_id, TraceFilter(task="RACE"), 1000, None)
    assert len(page) == 50
    assert store.list_tasks(project_id, Window())[0]["trace_count"] == 50


def test_scores_racing_traces_attach(store):
    project_id = store.create_key(f"race-{uuid.uuid4().hex[:8]}")[1].project_id
    traces = [TraceIn.model_validate(make_trace(task="ATTACH")) for _ in range(40)]
    scores = [ScoreIn.model_validate(make_score(trace.id, 0.5)) for trace in traces]

    def send(index: int):
        if index % 2:
            store.ingest(project_id, [traces[index // 2]], [])
        else:
            store.ingest(project_id, [], [scores[index // 2]])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(send, range(80)))

    page, _ = store.list_traces(project_id, TraceFilter(task="ATTACH"), 1000, None)
    assert len(page) == 40
    assert all(item["score"] == 0.5 for item in page)
    task = store.list_tasks(project_id, Window())[0]
    assert task["scored_count"] == 40

"""Read latency of the CT server at volume: task list, task detail, trace list, one trace.

For each backend: fill a fresh database with N traces of about 2 KB (10 tasks, 3 prompt
versions each, spread over the last 30 days) and 3 scores per trace, written through the
store's own ingest path (scores first, so each trace picks up its scores on arrival). Then
start `kaizen serve` on it and time each request R times over HTTP; the table shows the median
and the maximum. The SQL statement count per request is measured in-process with a
SQLAlchemy event hook.

    .venv/bin/python benchmarks/server_queries.py --traces 1000000
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import timedelta

import httpx
from server_common import fresh_database, machine_description, make_trace, running_server, utc_start
from sqlalchemy import event

from kaizen_server.store import Store
from kaizen_server.store.engine import run_write
from kaizen_server.store.ingest import ingest_batch
from kaizen_server.wire import ScoreIn, TraceIn

TASK_COUNT = 10
VERSIONS_PER_TASK = 3
SCORES_PER_TRACE = 3
DAYS = 30
CHUNK = 2000


def fill(store: Store, project_id: int, count: int) -> str:
    """Write `count` traces with their scores; return the id of one trace in the middle."""
    start = utc_start(DAYS)
    step_ms = DAYS * 86_400_000 / count
    middle_id = ""
    began = time.perf_counter()
    for offset in range(0, count, CHUNK):
        traces = []
        scores = []
        for index in range(offset, min(offset + CHUNK, count)):
            task = f"TASK_{index % TASK_COUNT}_PROMPT"
            raw = make_trace(task, start + timedelta(milliseconds=index * step_ms), index)
            raw["template"] = f"{task} version {index // 7 % VERSIONS_PER_TASK}: {{ticket}}"
            trace = TraceIn.model_validate(raw)
            traces.append(trace)
            for number in range(SCORES_PER_TRACE):
                scores.append(ScoreIn(id=str(uuid.uuid4()), trace_id=trace.id, score=((index + number) % 11) / 10,
                                      scored_by=f"rater-{number}", created_at=trace.started_at + timedelta(minutes=number + 1)))
            if index == count // 2:
                middle_id = trace.id

        def work(connection, traces=traces, scores=scores):
            ingest_batch(connection, project_id, [], scores)
            ingest_batch(connection, project_id, traces, [])

        run_write(store.engine, work)
        done = min(offset + CHUNK, count)
        if done % 100_000 == 0 or done == count:
            print(f"  filled {done:,} traces in {time.perf_counter() - began:,.0f} s", flush=True)

    return middle_id


def requests_to_time(trace_id: str, cursor: str) -> list[tuple[str, str, dict]]:
    since = (utc_start(7)).isoformat()
    return [
        ("task list, all time", "/api/v1/tasks", {}),
        ("task list, last 7 days", "/api/v1/tasks", {"since": since}),
        ("task detail with prompt versions", "/api/v1/tasks/TASK_3_PROMPT", {}),
        ("time series, 30 days by day", "/api/v1/timeseries", {"task": "TASK_3_PROMPT", "interval": "day"}),
        ("trace list, newest 50", "/api/v1/traces", {"limit": 50}),
        ("trace list of one task, 50", "/api/v1/traces", {"task": "TASK_3_PROMPT", "limit": 50}),
        ("trace list of one task, page 11", "/api/v1/traces", {"task": "TASK_3_PROMPT", "limit": 50, "cursor": cursor}),
        ("trace list, scored >= 0.9, 50", "/api/v1/traces", {"task": "TASK_3_PROMPT", "min_score": 0.9, "limit": 50}),
        ("one trace with 3 scores", f"/api/v1/traces/{trace_id}", {}),
    ]


def count_statements(store: Store, key: str, path: str, params: dict) -> int:
    from fastapi.testclient import TestClient

    from kaizen_server.api import create_app
    from kaizen_server.config import Settings

    statements = []

    def record(*_args) -> None:
        statements.append(1)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        with TestClient(create_app(Settings(database_url=store.url), store=store)) as client:
            statements.clear()
            response = client.get(path, params=params, headers={"X-API-Key": key})
            response.raise_for_status()
    finally:
        event.remove(store.engine, "before_cursor_execute", record)

    return len(statements)


def run_backend(backend: str, count: int, repeats: int) -> None:
    with fresh_database(backend) as db_url:
        store = Store(db_url)
        store.upgrade()
        key, record = store.create_key("bench", "bench")
        print(f"{backend}: filling {count:,} traces with {SCORES_PER_TRACE} scores each", flush=True)
        trace_id = fill(store, record.project_id, count)
        if backend == "postgres":
            with store.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
                connection.exec_driver_sql("VACUUM ANALYZE")
        with running_server(db_url) as base_url, httpx.Client(base_url=base_url, headers={"X-API-Key": key}, timeout=60) as client:
            cursor = None
            for _ in range(10):
                page = client.get("/api/v1/traces", params={"task": "TASK_3_PROMPT", "limit": 50, **({"cursor": cursor} if cursor else {})}).json()
                cursor = page["next_cursor"]

            print(f"{'request':<36} {'median ms':>10} {'max ms':>8} {'SQL statements':>15}")
            for label, path, params in requests_to_time(trace_id, cursor):
                client.get(path, params=params).raise_for_status()  # warm the caches once
                durations = []
                for _ in range(repeats):
                    began = time.perf_counter()
                    client.get(path, params=params).raise_for_status()
                    durations.append((time.perf_counter() - began) * 1000)
                statements = count_statements(store, key, path, params)
                print(f"{label:<36} {statistics.median(durations):>10.1f} {max(durations):>8.1f} {statements:>15}", flush=True)
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--traces", type=int, default=1_000_000, help="traces to store per backend (default 1000000)")
    parser.add_argument("--repeats", type=int, default=20, help="timed requests per row (default 20)")
    args = parser.parse_args()

    print(f"machine: {machine_description()}")
    for backend in ["sqlite", "postgres"] if args.backend == "both" else [args.backend]:
        run_backend(backend, args.traces, args.repeats)


if __name__ == "__main__":
    main()

"""Each request runs a fixed number of SQL statements, however many rows it returns."""

from __future__ import annotations

import pytest
from server_test_data import make_score, make_trace
from sqlalchemy import event


@pytest.fixture
def statement_counter(store):
    statements: list[str] = []

    def record(_connection, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    yield statements
    event.remove(store.engine, "before_cursor_execute", record)


def count_for(api, counter, path: str, **params) -> int:
    counter.clear()
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    return len(counter)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/traces", {"limit": 100}),
        ("/api/v1/traces", {"limit": 100, "task": "TASK_1"}),
        ("/api/v1/tasks", {}),
        ("/api/v1/tasks", {"since": "2026-01-01T05:00:00Z", "until": "2026-01-03T07:00:00Z"}),
        ("/api/v1/tasks/TASK_1", {}),
        ("/api/v1/timeseries", {"interval": "hour", "since": "2026-01-01T00:00:00Z"}),
        ("/api/v1/traces/export", {}),
    ],
)
def test_statement_count_fixed(api, statement_counter, path, params):
    def add(count: int) -> None:
        traces = [
            make_trace(task=f"TASK_{index % 3}", template=f"v{index % 4} {{x}}", started_at=f"2026-01-0{1 + index % 3}T0{index % 9}:00:00Z")
            for index in range(count)
        ]
        api.ingest(traces, [make_score(trace["id"], 0.5) for trace in traces])

    add(3)
    small = count_for(api, statement_counter, path, **params)
    add(60)
    large = count_for(api, statement_counter, path, **params)
    assert small == large


def test_one_trace_statement_count(api, statement_counter):
    trace = make_trace()
    api.ingest([trace], [make_score(trace["id"], value / 10) for value in range(8)])
    assert count_for(api, statement_counter, f"/api/v1/traces/{trace['id']}") <= 6

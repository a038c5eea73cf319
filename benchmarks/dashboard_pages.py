"""Server time of the dashboard pages at volume: overview, task page, trace page, settings.

For each backend: fill a fresh database with N traces of about 2 KB and 3 scores each, the
same data as benchmarks/server_queries.py (10 tasks, 3 prompt versions each, over 30 days),
through the store's own ingest path. Then start `kaizen serve`, sign in one browser session
and time each page R times over HTTP; the table shows the median and the maximum in ms. The
SQL statement count per page is measured in-process with a SQLAlchemy event hook.

    .venv/bin/python benchmarks/dashboard_pages.py --traces 1000000
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx
from server_common import fresh_database, machine_description, running_server
from server_queries import fill
from sqlalchemy import event

from kaizen_server.dashboard.auth import SESSION_COOKIE, create_session
from kaizen_server.store import Store
from kaizen_server.store.engine import run_write


def pages_to_time(trace_id: str) -> list[tuple[str, str]]:
    task = "/tasks/TASK_3_PROMPT"
    return [
        ("overview, 24 hours", "/?window=24h"),
        ("overview, 7 days", "/?window=7d"),
        ("overview, 30 days", "/?window=30d"),
        ("overview, all time", "/?window=all"),
        ("task page, 24 hours", f"{task}?window=24h"),
        ("task page, 7 days", f"{task}?window=7d"),
        ("task page, all time", f"{task}?window=all"),
        ("task page, unscored only", f"{task}?window=all&unscored=1"),
        ("task page, errors only", f"{task}?window=all&errors=1"),
        ("task page, score 0.9 to 1", f"{task}?window=all&min_score=0.9"),
        ("task page, one version", f"{task}?window=all&version={{version}}"),
        ("task page, text search", f"{task}?window=all&q=Liechtenstein"),
        ("trace page with 3 scores", f"/traces/{trace_id}"),
        ("settings", "/settings"),
    ]


def count_statements(store: Store, token: str, path: str) -> int:
    from fastapi.testclient import TestClient

    from kaizen_server.api import create_app
    from kaizen_server.config import Settings

    statements = []

    def record(*_args) -> None:
        statements.append(1)

    with TestClient(create_app(Settings(database_url=store.url), store=store)) as client:
        client.cookies.set(SESSION_COOKIE, token)
        event.listen(store.engine, "before_cursor_execute", record)
        try:
            client.get(path).raise_for_status()
        finally:
            event.remove(store.engine, "before_cursor_execute", record)

    return len(statements)


def run_backend(backend: str, count: int, repeats: int) -> None:
    with fresh_database(backend) as db_url:
        store = Store(db_url)
        store.upgrade()
        _, record = store.create_key("bench", "bench")
        print(f"{backend}: filling {count:,} traces with 3 scores each", flush=True)
        trace_id = fill(store, record.project_id, count)
        if backend == "postgres":
            with store.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
                connection.exec_driver_sql("VACUUM ANALYZE")
        token = run_write(store.engine, lambda c: create_session(c, record.project_id, api_key_id=record.id))
        version = store.task_detail(record.project_id, "TASK_3_PROMPT", _all_time())["prompt_versions"][0]["prompt_version"]

        with running_server(db_url) as base_url, httpx.Client(base_url=base_url, cookies={SESSION_COOKIE: token}, timeout=120) as client:
            print(f"{'page':<30} {'median ms':>10} {'max ms':>8} {'SQL statements':>15}")
            for label, path in pages_to_time(trace_id):
                path = path.replace("{version}", version)
                response = client.get(path)  # warm the caches once
                response.raise_for_status()
                assert "Sign in" not in response.text[:2000], "the benchmark session was not accepted"
                durations = []
                for _ in range(repeats):
                    began = time.perf_counter()
                    client.get(path).raise_for_status()
                    durations.append((time.perf_counter() - began) * 1000)
                statements = count_statements(store, token, path)
                print(f"{label:<30} {statistics.median(durations):>10.1f} {max(durations):>8.1f} {statements:>15}", flush=True)
        store.close()


def _all_time():
    from kaizen_server.store import Window

    return Window()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--traces", type=int, default=1_000_000, help="traces to store per backend (default 1000000)")
    parser.add_argument("--repeats", type=int, default=10, help="timed requests per page (default 10)")
    args = parser.parse_args()

    print(f"machine: {machine_description()}")
    for backend in ["sqlite", "postgres"] if args.backend == "both" else [args.backend]:
        run_backend(backend, args.traces, args.repeats)


if __name__ == "__main__":
    main()

"""The store: the only way the server reads and writes its database.

`Store` wraps one SQLAlchemy engine and exposes operations; each operation is one transaction
(writes through `run_write`, which commits before returning). The SQL lives in one module per
concept: `keys` (projects and API keys), `ingest` (writes), `queries` (traces), `stats`
(task figures from rollups), `retention` (pruning). The schema is in `schema` and is created
and evolved only by the Alembic migrations in kaizen_server/migrations.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterator, Sequence

from kaizen_server.store import ingest, keys, queries, retention, stats
from kaizen_server.store.engine import create_db_engine, read, run_write, upgrade_database
from kaizen_server.store.keys import AlreadyExists, ApiKey, NotFound, Project
from kaizen_server.store.queries import InvalidCursor, TraceFilter
from kaizen_server.store.stats import Window
from kaizen_server.wire import ScoreIn, TraceIn

__all__ = [
    "AlreadyExists",
    "ApiKey",
    "InvalidCursor",
    "NotFound",
    "Project",
    "Store",
    "TraceFilter",
    "Window",
]


class Store:
    """Operations on one database, given by its SQLAlchemy URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        self.key_cache = keys.KeyCache()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self) -> None:
        upgrade_database(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # Projects and keys

    def create_project(self, name: str) -> Project:
        return run_write(self.engine, lambda c: keys.create_project(c, name))

    def list_projects(self) -> list[Project]:
        with read(self.engine) as connection:
            return keys.list_projects(connection)

    def create_key(self, project: str = keys.DEFAULT_PROJECT, name: str | None = None) -> tuple[str, ApiKey]:
        return run_write(self.engine, lambda c: keys.create_key(c, project, name))

    def list_keys(self, project: str | None = None) -> list[ApiKey]:
        with read(self.engine) as connection:
            return keys.list_keys(connection, project)

    def revoke_key(self, key_ref: str) -> ApiKey:
        record = run_write(self.engine, lambda c: keys.revoke_key(c, key_ref))
        # After the commit, so no lookup can cache the key as active again.
        self.key_cache.clear()
        return record

    def find_key(self, key: str) -> ApiKey | None:
        """Look `key` up in the database, revoked or not, and put an active key into the key cache."""
        generation = self.key_cache.generation
        with read(self.engine) as connection:
            record = keys.find_key(connection, key)
        if record is not None:
            self.key_cache.put(keys.hash_key(key), record, generation)

        return record

    def cached_key(self, key: str) -> ApiKey | None:
        """Return the record of `key` when `find_key` found it active less than KEY_CACHE_TTL_S ago, without a query."""
        return self.key_cache.get(keys.hash_key(key))

    # Writes

    def ingest(self, project_id: int, traces: Sequence[TraceIn], scores: Sequence[ScoreIn]):
        """Store a batch; return (trace statuses, score statuses, ids of scores waiting for their trace)."""
        return run_write(self.engine, lambda c: ingest.ingest_batch(c, project_id, traces, scores))

    def add_score(self, project_id: int, score: ScoreIn) -> str | None:
        """Store a score of an existing trace; return its status, or None when the trace is unknown."""

        def work(connection):
            if not queries.trace_exists(connection, project_id, score.trace_id):
                return None

            _, statuses, _ = ingest.ingest_batch(connection, project_id, [], [score])
            return statuses[score.id]

        return run_write(self.engine, work)

    def prune(self, cutoff: datetime) -> dict[str, int]:
        return run_write(self.engine, lambda c: retention.prune(c, cutoff))

    # Reads

    def get_trace(self, project_id: int, trace_id: str) -> dict | None:
        with read(self.engine) as connection:
            return queries.get_trace(connection, project_id, trace_id)

    def list_traces(self, project_id: int, trace_filter: TraceFilter, limit: int, cursor: str | None):
        with read(self.engine) as connection:
            return queries.list_traces(connection, project_id, trace_filter, limit, cursor)

    def export_traces(self, project_id: int, trace_filter: TraceFilter) -> Iterator[dict]:
        """Yield matching traces with scores and templates; the read transaction lasts until exhausted."""
        with read(self.engine) as connection:
            yield from queries.iter_export(connection, project_id, trace_filter)

    def list_tasks(self, project_id: int, window: Window) -> list[dict]:
        with read(self.engine) as connection:
            return stats.list_tasks(connection, project_id, window)

    def task_detail(self, project_id: int, task: str, window: Window) -> dict | None:
        with read(self.engine) as connection:
            return stats.task_detail(connection, project_id, task, window)

    def timeseries(self, project_id: int, task: str | None, interval: str, window: Window) -> list[dict]:
        with read(self.engine) as connection:
            return stats.timeseries(connection, project_id, task, interval, window)
